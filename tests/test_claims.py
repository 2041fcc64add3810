"""Claim rules on synthetic error curves with known answers (ntk_utils.claims)."""
import json
import time

import numpy as np
import pytest

from ntk_utils import claims, scaling

N = 64 * 2 ** np.arange(7)                      # training-set sizes 64 ... 4096
WIDTHS = 16 * 2 ** np.arange(6)                 # widths 16 ... 512
TIMES = np.array([0, 1, 4, 16, 64, 256, 1024])  # training times, t = 0 is initialization


def curve(p, *, D=1, S=4, T=3000, seed=0):
    """wrong ~ Bernoulli(p[k]) of shape (D, S, K, T), from a fixed numpy seed (one draw by
    default: the rules' logic; draw and seed effects are simulated where intervals are tested)."""
    p = np.asarray(p, dtype=float)[None, None, :, None]
    return (np.random.default_rng(seed).random((D, S, p.shape[2], T)) < p).astype(float)


def power(c, alpha, x=N):
    return c * (x / x[0]) ** -alpha


def exact(*per_draw):
    """A noise-free curve (D, 1, K, 1) whose "outcomes" are the error rates themselves, one row
    per draw: every replicate and draw of it is known, so a rule's thresholds can be pinned."""
    return np.stack([np.asarray(p, dtype=float) for p in per_draw])[:, None, :, None]


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
    assert "at n=4096: network" in v.text and "At n=64: network" in v.text and "eNTK" in v.text
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


def test_worse_start_is_stated():
    # The network is steeper but starts higher; it still ends lower, and is steeper on the upper half too.
    v = claims.scales_better(N, curve(power(0.38, 0.35)), curve(power(0.25, 0.2), seed=1))
    assert_clean(v, "held")
    assert v.numbers["worse_start"] and "At n=64: network 0.3" in v.text
    assert "(network starts worse)" in v.text
    assert "upper half alone too" in v.text and v.numbers["delta_upper_low"] > 0


# Pinned on noise-free curves: the interval is the point, so each condition is met, missed or hit exactly.
KERNEL = power(0.3, 0.2)


@pytest.mark.parametrize("deltas, status", [((0.05, 0.05), "held"), ((0.01, 0.03), "inconclusive"),
                                            ((0.0, 0.0), "not held")], ids=["above", "at", "below"])
def test_scales_better_margin_pinned(deltas, status):
    # Two draws; "at": their advantages straddle the margin 0.02, so its interval does.
    v = claims.scales_better(N, exact(*(power(0.3, 0.2 + d) for d in deltas)), exact(KERNEL, KERNEL), margin=0.02)
    assert_clean(v, status)
    assert v.numbers["delta"] == pytest.approx(np.mean(deltas), abs=2e-3)


@pytest.mark.parametrize("end_gap, status", [(-1e-3, "held"), (0.0, "inconclusive"), (1e-3, "inconclusive")],
                         ids=["better", "equal", "worse"])
def test_scales_better_needs_the_network_better_at_the_largest_n(end_gap, status):
    # Steeper by 0.1 throughout, from a start chosen so that it ends end_gap above the kernel.
    steep = power(1.0, 0.3)
    steep = steep * (KERNEL[-1] + end_gap) / steep[-1]
    v = claims.scales_better(N, exact(steep), exact(KERNEL), margin=0.02)
    assert_clean(v, status)
    assert v.numbers["delta"] == pytest.approx(0.1, abs=1e-9)
    assert v.numbers["gap_at_max"] == pytest.approx(end_gap, abs=1e-12)


def test_scales_better_from_a_worse_start_needs_the_upper_half():
    # Falls fast from a worse start, then parallel to the kernel: steeper overall, not on the upper half.
    knee = np.where(N <= 512, power(0.6, 0.6), 0)
    net = np.where(N <= 512, knee, KERNEL * 0.9)
    net[N <= 512] = np.maximum(net[N <= 512], KERNEL[N <= 512] * 0.9)
    v = claims.scales_better(N, exact(net), exact(KERNEL), margin=0.02)
    assert v.numbers["worse_start"] and v.numbers["delta_low"] > 0.02 and v.numbers["gap_at_max"] < 0
    assert v.numbers["delta_upper"] == pytest.approx(0.0, abs=1e-9)
    assert_clean(v, "inconclusive")
    assert "worse start" in v.text and "upper half" in v.text
    # Fitted from n = 512 on (the declared fit range), the same curves are parallel: not held.
    assert_clean(claims.scales_better(N, exact(net), exact(KERNEL), margin=0.02, fit_from=512), "not held")


def test_scales_better_draw_effects_widen_the_interval():
    """With two draws the interval is a t interval over them: the same mean advantage holds when
    the draws agree and is inconclusive when they disagree by a draw effect of 0.1 in alpha."""
    mean = claims.scales_better(N, exact(power(0.3, 0.3), power(0.3, 0.3)), exact(KERNEL, KERNEL))
    split = claims.scales_better(N, exact(power(0.3, 0.25), power(0.3, 0.35)), exact(KERNEL, KERNEL))
    assert_clean(mean, "held")
    assert_clean(split, "inconclusive")
    assert split.numbers["delta_low"] < 0 < split.numbers["delta"] - 0.05


def _simulated(rng, D, S, T, alpha_net, alpha_kernel, draw_sd, seed_sd, level_sd, difficulty):
    """(network (D, S, K, T), kernel (D, 1, K, T)) outcomes with draw effects on both exponents,
    seed effects on the network's, level effects per run, and per-example difficulty shared by
    every curve (the one test set)."""
    def rates(alpha, runs_shape, log_c):
        slope = alpha + rng.normal(0, draw_sd, (D, 1, 1, 1)) + rng.normal(0, seed_sd, runs_shape)
        return np.log(0.35) + log_c - slope * np.log(N / N[0])[None, None, :, None]
    logits = lambda log_p: np.log(np.exp(log_p) / (1 - np.exp(log_p)))
    net_log = rates(alpha_net, (D, S, 1, 1), rng.normal(0, level_sd, (D, S, 1, 1)))
    kernel_log = rates(alpha_kernel, (D, 1, 1, 1), 0.0) + np.log(1.1)
    sample = lambda log_p: (rng.random(log_p.shape[:3] + (T,)) <
                            1 / (1 + np.exp(-(logits(log_p) + difficulty[None, None, None, :])))).astype(float)
    return sample(net_log), sample(kernel_log)


@pytest.mark.slow
def test_delta_alpha_intervals_reach_their_coverage():
    """Curves with random draw and seed effects of the size the CPU reference shows (the draws'
    exponents differ by about 0.03): the nominal 95% interval of Δα covers the true Δα (fitted on
    the expected curves of many draws) in at least 90% of 200 repetitions, at the 2 draws x 2
    seeds of the CPU reference, at 2 draws x 4 seeds and at 4 draws x 2 seeds."""
    rng = np.random.default_rng(0)
    params = dict(alpha_net=0.3, alpha_kernel=0.25, draw_sd=0.03, seed_sd=0.01, level_sd=0.05)
    difficulty = rng.normal(0, 1.0, 2000)
    big = _simulated(rng, 400, 8, 2000, **params, difficulty=difficulty)
    truth = scaling.fit_alpha(N, claims.mean_errors(big[0])) - scaling.fit_alpha(N, claims.mean_errors(big[1]))
    for D, S in ((2, 2), (2, 4), (4, 2)):
        covered = []
        for rep in range(200):
            net, kernel = _simulated(rng, D, S, 2000, **params, difficulty=difficulty)
            v = claims.scales_better(N, net, kernel, n_boot=200, seed=rep)
            covered.append(v.numbers["delta_low"] <= truth <= v.numbers["delta_high"])
        assert np.mean(covered) >= 0.9, (D, S, np.mean(covered))


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
    b = curve(power(0.35, 0.3), D=2, seed=1)
    b[1, 2, 0] = np.nan   # one seed of one draw: still has a value
    b[:, :, 6] = np.nan
    v = claims.scale_alike(N, curve(power(0.35, 0.3), D=2), b, names=("a", "b"), tolerance=0.1)
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
    v = claims.keeps_improving(TIMES, curve(0.4 - 0.04 * np.log1p(TIMES), T=20000), name="network")
    assert_clean(v, "held")
    assert "t=0" in v.text and "t=32" in v.text and "t=1024" in v.text
    assert v.numbers["err_first"] == pytest.approx(0.4, abs=0.01) and v.numbers["last_low"] > 0


def test_keeps_improving_not_held_when_it_stops():
    v = claims.keeps_improving(TIMES, curve([0.4, 0.3, 0.2, 0.15, 0.15, 0.16, 0.18]), name="network")
    assert_clean(v, "not held")


STEPS = np.array([0, 1, 4, 16, 64, 256, 1024])   # x_mid = sqrt(1 * 1024) = 32


@pytest.mark.parametrize("lates, status", [((0.03, 0.03), "held"), ((0.02, 0.03), "inconclusive"),
                                           ((0.02, 0.02), "not held")], ids=["above", "at", "below"])
def test_keeps_improving_fraction_pinned(lates, status):
    # total 0.1, late = err(32) - err(1024) per draw, against fraction 0.25 (late 0.025); the
    # err(x_mid) of x_mid = 32 is the mean of err(16) and err(64) (linear in log t).
    late_curve = lambda late: [0.3, 0.28, 0.25, 0.2 + late, 0.2 + late, 0.2 + late / 2, 0.2]
    v = claims.keeps_improving(STEPS, exact(*map(late_curve, lates)), name="K", fraction=0.25)
    assert v.numbers["total"] == pytest.approx(0.1) and v.numbers["late"] == pytest.approx(np.mean(lates))
    assert_clean(v, status)


@pytest.mark.parametrize("last, status", [(0.005, "held"), (0.0, "inconclusive"), (-0.005, "not held")],
                         ids=["improving", "plateau", "worse"])
def test_keeps_improving_last_step_pinned(last, status):
    err = np.array([0.3, 0.28, 0.26, 0.24, 0.22, 0.2, 0.2 - last])   # late share 26-30% of the total
    v = claims.keeps_improving(STEPS, exact(err), name="K", fraction=0.25)
    assert v.numbers["last"] == pytest.approx(last)
    assert_clean(v, status)


def test_keeps_improving_small_late_share_is_not_held():
    v = claims.keeps_improving(TIMES, curve([0.4, 0.25, 0.15, 0.12, 0.11, 0.105, 0.10], T=20000), name="network")
    assert_clean(v, "not held")
    assert v.numbers["late_low"] > 0 and v.numbers["excess_high"] < 0 and "< 25%" in v.text


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
    assert "1 data draw(s)" in claims.few_runs([0], [0, 1, 2, 3]) and "seed" not in claims.few_runs([0], [0, 1, 2, 3])
    assert "only 2 seed(s)" in claims.few_runs([0], [0, 1])
    assert claims.few_runs([0, 1], [0, 1]) == ""     # the t interval over draws holds draw and seed noise


def test_unfit_networks_make_a_verdict_inconclusive_unless_it_holds_at_chance():
    rule = lambda c: claims.scales_better(N, c, exact(KERNEL, KERNEL), margin=0.02)
    net = np.repeat(exact(power(0.3, 0.3), power(0.3, 0.3)), 2, axis=1)          # (2, 2, K, 1)
    assert claims.unless_unfit(rule, net, np.zeros((2, 2, 7), bool)) == rule(net)
    # One underfit network at the largest n: at chance (0.5) the network is no longer better there.
    unfit = np.zeros((2, 2, 7), bool)
    unfit[0, 1, -1] = True
    v = claims.unless_unfit(rule, net, unfit)
    assert rule(net).status == "held"
    assert_clean(v, "inconclusive")
    assert v.numbers["status_as_measured"] == "held" and v.numbers["status_unfit_at_chance"] != "held"
    assert "1 of 28 networks are underfit or diverged" in v.text
    # An underfit network at the smallest n only steepens the curve: it still holds, and says so.
    unfit_small = np.zeros((2, 2, 7), bool)
    unfit_small[:, 0, 0] = True   # in both draws: the recount keeps them alike
    held = claims.unless_unfit(rule, net, unfit_small)
    assert_clean(held, "held")
    assert "holds with them counted as errors of 0.5" in held.text and held.numbers["unfit_runs"] == 2
    # A "not held" resting on underfit networks is inconclusive too.
    flat = np.repeat(exact(KERNEL, KERNEL), 2, axis=1)
    assert_clean(claims.unless_unfit(rule, flat, unfit_small), "inconclusive")
    np.testing.assert_array_equal(claims.unfit_runs([[[0.0, 0.03, np.nan]]], 0.02), [[[False, True, True]]])


def test_network_scales_better_is_the_thresholds_rule_checked_for_unfit_networks():
    th = claims.Thresholds(alpha_margin=0.03, fit_min_n=128, n_boot=200)
    net, kernel = np.repeat(exact(power(0.3, 0.3), power(0.3, 0.3)), 2, axis=1), exact(KERNEL, KERNEL)
    unfit = np.zeros((2, 2, 7), bool)
    unfit[:, 0, -1] = True
    v = claims.network_scales_better(N, net, kernel, unfit, names=("network", "kernel"), thresholds=th)
    want = claims.unless_unfit(lambda c: claims.scales_better(N, c, kernel, margin=0.03, fit_from=128, n_boot=200),
                               net, unfit)
    assert v == want and v.numbers["fit_from"] == 128 and v.numbers["x_min"] == 128
