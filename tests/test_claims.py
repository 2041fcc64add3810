"""Claim rules on synthetic error curves with known answers (ntk_utils.claims)."""
import json
import time

import numpy as np
import pytest

from ntk_utils import claims, scaling

N = 64 * 2 ** np.arange(7)                      # training-set sizes 64 ... 4096
WIDTHS = 16 * 2 ** np.arange(6)                 # widths 16 ... 512
TIMES = np.array([0, 1, 4, 16, 64, 256, 1024])  # training times, t = 0 is initialization


def curve(p, *, D=2, S=4, T=3000, seed=0, seed_offsets=None):
    """wrong ~ Bernoulli(p[k] + seed_offsets[s]) of shape (D, S, K, T), from a fixed numpy seed."""
    p = np.asarray(p, dtype=float)[None, None, :, None]
    if seed_offsets is not None:
        p = p + np.asarray(seed_offsets, dtype=float)[None, :, None, None]
    return (np.random.default_rng(seed).random((D, S, p.shape[2], T)) < p).astype(float)


def power(c, alpha, x=N):
    return c * (x / x[0]) ** -alpha


def assert_clean(verdict, status):
    """The expected status, no 'nan' in the text, and numbers that survive strict JSON."""
    assert verdict.status == status, str(verdict)
    assert "nan" not in verdict.text.lower(), verdict.text
    json.dumps(verdict.as_dict(), allow_nan=False)


# ----------------------------------------------------------------------------- estimates

def test_mean_errors_ignores_nan_slices():
    wrong = curve([0.2, 0.3], D=2, S=2, T=500)
    wrong[0, 1, 0] = np.nan
    keep = np.ones((2, 2), bool)
    keep[0, 1] = False
    np.testing.assert_allclose(claims.mean_errors(wrong)[0], wrong[:, :, 0][keep].mean())
    np.testing.assert_allclose(claims.mean_errors(wrong)[1], wrong[:, :, 1].mean())


def test_fit_alpha_recovers_exponent_exactly():
    assert scaling.fit_alpha(N, power(0.35, 0.3)) == pytest.approx(0.3, abs=1e-12)
    rows = np.stack([power(0.3, a) for a in (0.1, 0.25, 0.5)])          # vectorized: (3, K) -> (3,)
    np.testing.assert_allclose(scaling.fit_alpha(N, rows), [0.1, 0.25, 0.5], atol=1e-12)
    assert scaling.fit_alpha(N, np.stack([rows, rows])).shape == (2, 3)


def test_bootstrap_shapes_and_centre():
    net = curve(power(0.35, 0.3))
    boot = claims.bootstrap_errors({"network": net}, n_boot=400)["network"]
    assert boot.shape == (400, 7)
    np.testing.assert_allclose(boot.mean(0), claims.mean_errors(net), atol=0.01)


def test_bootstrap_pairs_identical_curves():
    net = curve(power(0.35, 0.3))
    boot = claims.bootstrap_errors({"a": net, "b": net.copy()})
    np.testing.assert_array_equal(boot["a"], boot["b"])
    v = claims.scales_better(N, net, net.copy(), names=("a", "b"))
    assert (v.numbers["delta_low"], v.numbers["delta_high"]) == (0.0, 0.0)
    assert_clean(v, "inconclusive")


def test_bootstrap_broadcasts_single_seed_curves():
    kernel = curve(power(0.3, 0.15), S=1, seed=1)
    boot = claims.bootstrap_errors({"network": curve(power(0.35, 0.3)), "kernel": kernel,
                                    "kernel x4": np.repeat(kernel, 4, axis=1)})
    np.testing.assert_allclose(boot["kernel"], boot["kernel x4"], rtol=1e-12)


@pytest.mark.parametrize("shape, word", [((3, 4, 7, 100), "D"), ((2, 4, 6, 100), "K"),
                                         ((2, 4, 7, 99), "T"), ((2, 2, 7, 100), "S")])
def test_shape_mismatch_raises_naming_the_curve(shape, word):
    with pytest.raises(ValueError, match=f"'kernel'.*{word}"):
        claims.bootstrap_errors({"network": np.zeros((2, 4, 7, 100)), "kernel": np.zeros(shape)})


def test_bootstrap_is_fast():
    curves = {f"c{i}": curve(power(0.35, 0.3), T=2000, seed=i) for i in range(5)}
    start = time.perf_counter()
    claims.bootstrap_errors(curves, n_boot=1000)
    assert time.perf_counter() - start < 2.0


def test_degenerate_bootstrap_uses_point_values():
    wrong = np.array([1.0, 1.0, 0.0]).reshape(1, 1, 3, 1)            # D = S = T = 1
    boot = claims.bootstrap_errors({"c": wrong}, n_boot=50)["c"]
    assert np.all(boot == [1.0, 1.0, 0.0])
    v = claims.keeps_improving([1, 2, 4], wrong, name="c")
    assert v.numbers["late_low"] == v.numbers["late_high"] == 1.0
    assert_clean(v, "held")


# ----------------------------------------------------------------------------- Verdict

def test_verdict_caveat_and_dict():
    v = claims.scales_better(N, curve(power(0.35, 0.3)), curve(power(0.38, 0.15), S=1, seed=1))
    w = v.with_caveat("one data draw only").with_caveat("CIFAR-10 stand-in.")
    assert w.status == v.status and w.claim == v.claim
    assert w.text.startswith(v.text) and w.text.endswith("one data draw only. CIFAR-10 stand-in.")
    assert w.numbers["caveats"] == ["one data draw only.", "CIFAR-10 stand-in."]
    assert "caveats" not in v.numbers
    d = json.loads(json.dumps(w.as_dict(), allow_nan=False))
    assert d["status"] == "held" and d["numbers"]["worse_start"] is False
    with pytest.raises(ValueError):
        claims.Verdict("c", "maybe", "t", {})


# ----------------------------------------------------------------------------- scales_better

def test_scales_better_held_and_reports_errors_at_the_ends():
    v = claims.scales_better(N, curve(power(0.35, 0.3)), curve(power(0.38, 0.15), S=1, seed=1),
                             names=("network", "eNTK"))
    assert_clean(v, "held")
    assert v.numbers["delta"] == pytest.approx(0.15, abs=0.03) and v.numbers["delta_low"] > 0
    assert "n=4096: network" in v.text and "eNTK" in v.text
    assert not v.numbers["worse_start"] and "worse start" not in v.text


def test_scales_better_not_held():
    v = claims.scales_better(N, curve(power(0.3, 0.15), S=1, seed=1), curve(power(0.35, 0.3)),
                             names=("eNTK", "network"))
    assert_clean(v, "not held")
    assert v.numbers["delta_high"] < 0


def test_scales_better_margin():
    better, worse = curve(power(0.35, 0.30)), curve(power(0.35, 0.28), seed=1)
    assert claims.scales_better(N, better, worse).status != "not held"
    v = claims.scales_better(N, better, worse, margin=0.1)
    assert_clean(v, "not held")
    assert "margin 0.1" in v.text and v.numbers["margin"] == 0.1


def test_scales_better_noise_is_inconclusive():
    p = power(0.35, 0.3)
    assert_clean(claims.scales_better(N, curve(p, seed=2), curve(p, seed=3)), "inconclusive")


def test_scales_better_nan_is_inconclusive():
    net = curve(power(0.35, 0.3))
    net[:, :, 3] = np.nan
    v = claims.scales_better(N, net, curve(power(0.3, 0.15), S=1, seed=1))
    assert_clean(v, "inconclusive")
    assert "network curve has no value at n=512" in v.text


def test_scales_better_zero_error_and_too_few_points_are_inconclusive():
    net = curve(power(0.35, 0.3))
    net[:, :, -1] = 0.0
    v = claims.scales_better(N, net, curve(power(0.3, 0.15), seed=1))
    assert_clean(v, "inconclusive")
    assert "zero error at n=4096" in v.text
    v = claims.scales_better(N[:1], net[:, :, :1], net[:, :, :1])
    assert_clean(v, "inconclusive")


def test_worse_start_note():
    # The network is steeper but starts higher; it still ends lower.
    v = claims.scales_better(N, curve(power(0.38, 0.35)), curve(power(0.25, 0.2), seed=1))
    assert_clean(v, "held")
    assert v.numbers["worse_start"] and "comes partly from a worse start (at n=64: network 0.3" in v.text
    assert "still worse" not in v.text
    # Steeper, higher start, and still worse at n=4096.
    v = claims.scales_better(N, curve(power(0.40, 0.25)), curve(power(0.25, 0.15), seed=1))
    assert v.numbers["worse_start"] and "and network is still worse at n=4096" in v.text


# ----------------------------------------------------------------------------- scale_alike

def test_scale_alike_held():
    v = claims.scale_alike(N, curve(power(0.35, 0.3)), curve(power(0.28, 0.3), seed=1), names=("a", "b"),
                           tolerance=0.1)
    assert_clean(v, "held")


def test_scale_alike_not_held():
    v = claims.scale_alike(N, curve(power(0.35, 0.3)), curve(power(0.3, 0.1), seed=1), names=("a", "b"),
                           tolerance=0.05)
    assert_clean(v, "not held")


def test_scale_alike_wide_intervals_are_inconclusive():
    p = power(0.35, 0.3)
    v = claims.scale_alike(N, curve(p, D=1, S=2, T=300, seed=2), curve(p, D=1, S=2, T=300, seed=3),
                           names=("a", "b"), tolerance=0.02)
    assert_clean(v, "inconclusive")


def test_scale_alike_nan_is_inconclusive():
    b = curve(power(0.35, 0.3), seed=1)
    b[1, 2, 0] = np.nan   # one seed of one draw: still has a value
    b[:, :, 6] = np.nan
    v = claims.scale_alike(N, curve(power(0.35, 0.3)), b, names=("a", "b"), tolerance=0.1)
    assert_clean(v, "inconclusive")
    assert "b curve has no value at n=4096" in v.text


# ----------------------------------------------------------------------------- tracks

P_NET = power(0.3, 0.3)


def test_tracks_held():
    v = claims.tracks(N, curve(P_NET * 1.02, seed=1), curve(P_NET), curve(P_NET * 1.4, S=1, seed=2),
                      names=("after-kernel", "network", "eNTK (init)"), tolerance=1.15)
    assert_clean(v, "held")
    assert "x1.0" in v.text and "x1.4" in v.text


def test_tracks_not_held():
    v = claims.tracks(N, curve(P_NET * 1.5, seed=1), curve(P_NET), curve(P_NET * 1.4, S=1, seed=2),
                      names=("after-kernel", "network", "eNTK (init)"), tolerance=1.15)
    assert_clean(v, "not held")


def test_tracks_noise_is_inconclusive():
    v = claims.tracks(N, curve(P_NET, seed=1), curve(P_NET), curve(P_NET, seed=2),
                      names=("after-kernel", "network", "eNTK (init)"), tolerance=1.15)
    assert_clean(v, "inconclusive")


def test_tracks_nan_is_inconclusive():
    ref = curve(P_NET * 1.4, S=1, seed=2)
    ref[:, :, 2] = np.nan
    v = claims.tracks(N, curve(P_NET * 1.02, seed=1), curve(P_NET), ref,
                      names=("after-kernel", "network", "eNTK (init)"), tolerance=1.15)
    assert_clean(v, "inconclusive")
    assert "eNTK (init) curve has no value at n=256" in v.text


# ----------------------------------------------------------------------------- keeps_improving

def test_keeps_improving_held_from_initialization():
    v = claims.keeps_improving(TIMES, curve(0.4 - 0.04 * np.log1p(TIMES)), name="network")
    assert_clean(v, "held")
    assert "t=0" in v.text and "t=32" in v.text and "t=1024" in v.text
    assert v.numbers["err_first"] == pytest.approx(0.4, abs=0.01)


def test_keeps_improving_not_held_when_it_stops():
    v = claims.keeps_improving(TIMES, curve([0.4, 0.3, 0.2, 0.15, 0.15, 0.16, 0.18]), name="network")
    assert_clean(v, "not held")


def test_keeps_improving_small_late_share_is_inconclusive():
    v = claims.keeps_improving(TIMES, curve([0.4, 0.25, 0.15, 0.12, 0.11, 0.105, 0.10]), name="network")
    assert_clean(v, "inconclusive")
    assert v.numbers["late_low"] > 0 and "only" in v.text


def test_keeps_improving_noise_is_inconclusive():
    assert_clean(claims.keeps_improving(TIMES, curve(np.full(7, 0.2)), name="network"), "inconclusive")


def test_keeps_improving_nan_and_too_few_points_are_inconclusive():
    c = curve(0.4 - 0.04 * np.log1p(TIMES))
    c[:, :, 0] = np.nan
    v = claims.keeps_improving(TIMES, c, name="network")
    assert_clean(v, "inconclusive")
    assert "no value at t=0" in v.text
    assert_clean(claims.keeps_improving(TIMES[:2], c[:, :, 1:3], name="network"), "inconclusive")


# ----------------------------------------------------------------------------- width rules

LIMIT = curve([0.2], S=1, seed=9)   # a width-independent limit, (D, 1, 1, T)


def test_moves_toward_held():
    v = claims.moves_toward(WIDTHS, curve(np.linspace(0.12, 0.19, 6)), LIMIT, names=("network", "infinite NTK"))
    assert_clean(v, "held")


def test_moves_toward_not_held():
    v = claims.moves_toward(WIDTHS, curve(np.linspace(0.18, 0.10, 6)), LIMIT, names=("network", "infinite NTK"))
    assert_clean(v, "not held")


def test_moves_toward_noise_is_inconclusive_and_full_limit_accepted():
    v = claims.moves_toward(WIDTHS, curve(np.full(6, 0.15)), np.repeat(LIMIT, 6, axis=2),
                            names=("network", "infinite NTK"))
    assert_clean(v, "inconclusive")


def test_moves_toward_nan_is_inconclusive():
    limit = LIMIT.copy()
    limit[:] = np.nan
    v = claims.moves_toward(WIDTHS, curve(np.linspace(0.12, 0.19, 6)), limit, names=("network", "infinite NTK"))
    assert_clean(v, "inconclusive")
    assert "infinite NTK curve has no value" in v.text


def test_improves_then_degrades_held():
    v = claims.improves_then_degrades(WIDTHS, curve([0.2, 0.15, 0.12, 0.14, 0.16, 0.18]), LIMIT,
                                      names=("network", "infinite NTK"))
    assert_clean(v, "held")
    assert v.numbers["best_x"] == 64 and "width=64" in v.text


def test_improves_then_degrades_not_held():
    names = ("network", "infinite NTK")
    v = claims.improves_then_degrades(WIDTHS, curve(np.linspace(0.2, 0.1, 6)), LIMIT, names=names)
    assert_clean(v, "not held")
    assert "still clearly improving" in v.text
    v = claims.improves_then_degrades(WIDTHS, curve(np.linspace(0.1, 0.2, 6)), LIMIT, names=names)
    assert_clean(v, "not held")


def test_improves_then_degrades_inconclusive():
    names = ("network", "infinite NTK")
    assert_clean(claims.improves_then_degrades(WIDTHS, curve(np.full(6, 0.15)), LIMIT, names=names),
                 "inconclusive")
    # Falls, then rises, but away from the limit (0.05).
    away = claims.improves_then_degrades(WIDTHS, curve([0.2, 0.15, 0.12, 0.14, 0.16, 0.18]),
                                         curve([0.05], S=1, seed=9), names=names)
    assert_clean(away, "inconclusive")
    assert "not toward" in away.text


def test_improves_then_degrades_nan_and_too_few_points_are_inconclusive():
    c = curve([0.2, 0.15, 0.12, 0.14, 0.16, 0.18])
    c[:, :, 4] = np.nan
    v = claims.improves_then_degrades(WIDTHS, c, LIMIT, names=("network", "infinite NTK"))
    assert_clean(v, "inconclusive")
    assert "no value at width=256" in v.text
    v = claims.improves_then_degrades(WIDTHS[:2], c[:, :, :2], LIMIT, names=("network", "infinite NTK"))
    assert_clean(v, "inconclusive")


def test_underfit_and_diverged_networks_are_named_and_few_runs_flagged():
    train_error = np.array([[[0.0, 0.05], [np.nan, 0.0]]])           # (D=1, S=2, K=2)
    text = claims.underfit(train_error, 0.02, [0], [0, 1], [64, 128])
    assert "1 of 4 networks diverged" in text and "seed 1 n=64" in text
    assert "1 of 4 networks underfit" in text and "seed 0 n=128: 0.050" in text
    assert claims.underfit(np.zeros((2, 4, 3)), 0.02, [0, 1], [0, 1, 2, 3], [1, 2, 3]) == ""
    assert "1 data draw(s)" in claims.few_runs([0], [0, 1, 2, 3])
    assert "2 seed(s)" in claims.few_runs([0, 1, 2, 3], [0, 1])
    assert claims.few_runs([0, 1, 2, 3], [0, 1, 2, 3]) == ""
