"""Training: learns, is deterministic, reports divergence, snapshots, and matches its eNTK when wide."""
import numpy as np
import pytest

from ntk_utils import kernels, models, regression, train


def _blobs(n, seed=0, size=4):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)
    x = rng.standard_normal((n, size, size, 3)).astype(np.float32) + 0.7 * y[:, None, None, None]
    return x, y


SMALL = train.TrainConfig(lr=0.05, batch_size=16, epochs=10, min_steps=30, eval_every=10, seed=0)


def test_same_seed_same_result_and_other_seed_differs():
    arch, (x, y) = models.myrtle(5, 8), _blobs(32)
    a = train.train(arch, x, y, SMALL, progress=False, use_cache=False)
    b = train.train(arch, x, y, SMALL, progress=False, use_cache=False)
    c = train.train(arch, x, y, train.TrainConfig(**{**SMALL.__dict__, "seed": 1}), progress=False, use_cache=False)
    assert a.history["loss"] == b.history["loss"]
    assert a.history["loss"] != c.history["loss"]


def test_divergence_is_reported():
    arch, (x, y) = models.Arch((models.Flatten(), models.Dense(1))), _blobs(32)   # linear model: lr 50 diverges
    with pytest.raises(train.TrainingDiverged, match="lower the learning rate"):
        train.train(arch, x, y, train.TrainConfig(lr=50.0, schedule="constant", momentum=0.9, batch_size=16,
                                                  min_steps=60, eval_every=20), progress=False, use_cache=False)


def test_snapshots_early_stopping_and_config_errors():
    arch, (x, y) = models.myrtle(5, 8), _blobs(32)
    xv, yv = _blobs(16, seed=1)
    cfg = train.TrainConfig(lr=0.05, batch_size=16, epochs=1, min_steps=40, eval_every=10, early_stopping=True,
                            snapshot_steps=(0, 20))
    out = train.train(arch, x, y, cfg, val=(xv, yv), progress=False, use_cache=False)
    assert sorted(out.snapshots) == [0, 20]
    assert out.best_step in out.history["step"]
    assert out.history["val_loss"][out.history["step"].index(out.best_step)] == min(out.history["val_loss"])
    with pytest.raises(ValueError, match="validation"):
        train.train(arch, x, y, cfg, progress=False, use_cache=False)
    with pytest.raises(ValueError, match="schedule"):
        train.TrainConfig(schedule="linear")


def test_training_cache_returns_identical_result(tmp_path, monkeypatch):
    monkeypatch.setenv("NTK_CACHE_DIR", str(tmp_path))
    arch, (x, y) = models.myrtle(5, 8), _blobs(32)
    first = train.train(arch, x, y, SMALL, progress=False)
    assert list(tmp_path.glob("train/*.pkl"))
    again = train.train(arch, x, y, SMALL, progress=False)
    assert again.seconds == first.seconds   # loaded, not retrained


def test_loss_decreases_on_real_cifar(real_data_dir):
    from ntk_utils import data
    x, y, xt, yt = data.load_task("cifar10-pair", 256, 256, image_size=8, data_dir=real_data_dir)
    cfg = train.TrainConfig(lr=2.0, batch_size=64, epochs=30, min_steps=0, eval_every=4)
    out = train.train(models.myrtle(5, 16), x, y, cfg, progress=False, use_cache=False)
    assert out.history["loss"][-1] < 0.6 * out.history["loss"][0]
    assert regression.test_error(train.predict(models.myrtle(5, 16), out.params, xt), yt) < 0.35


def test_wide_network_trained_by_gradient_descent_matches_entk_regression():
    """Lazy training: a wide NTK-parameterized net trained by small-step full-batch GD on MSE
    ends where kernel regression with its eNTK at init goes: f0(x*) + Θ(x*,X) Θ(X,X)^-1 (y - f0(X))."""
    arch = models.mlp(1, 4096)
    x, y = _blobs(12, size=2)
    xt, _ = _blobs(8, seed=3, size=2)
    x, xt = x / 3, xt / 3
    cfg = train.TrainConfig(lr=1.0, momentum=0.0, full_batch=True, epochs=0, min_steps=2000, schedule="constant",
                            eval_every=500)
    out = train.train(arch, x, y, cfg, progress=False, use_cache=False)
    f0, f0_test = (train.predict(arch, out.init_params, v) for v in (x, xt))
    apply = models.flax_model(arch).apply
    k, k_test = kernels.empirical_ntk(apply, out.init_params, x), kernels.empirical_ntk(apply, out.init_params, xt, x)
    want = f0_test + regression.kernel_regression(k, y - f0, k_test)
    got = train.predict(arch, out.params, xt)
    assert np.abs(train.predict(arch, out.params, x) - y).max() < 0.05     # converged
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.1, (got, want)


def test_config_from_notebook_parameters_takes_the_recipe_only():
    from ntk_utils.setup import Setup
    cfg = Setup.from_parameters({"lr": 0.5, "momentum": 0.0, "full_batch": True, "width": 8,
                                 "snapshot_steps": [3], "seed": 4}).recipe
    assert (cfg.lr, cfg.momentum, cfg.full_batch, cfg.seed, cfg.snapshot_steps) == (0.5, 0.0, True, 0, ())
    with pytest.raises(ValueError, match="batch_size"):
        train.TrainConfig(batch_size=None)


def test_same_batch_size_for_every_n_and_full_training_fit_recorded():
    """n < batch_size still trains on batches of batch_size (passes are concatenated), never silently
    full-batch; the returned network's loss and error on its whole training set are recorded."""
    rng = np.random.default_rng(0)
    stream = train.batches(5, 8, rng)
    first, second = next(stream), next(stream)
    assert len(first) == len(second) == 8 and set(first) == set(range(5))
    assert train.TrainConfig(batch_size=128).num_steps(64) == 400           # min_steps floor
    assert train.TrainConfig(batch_size=128, min_steps=0, epochs=40).num_steps(4096) == 1280
    arch, (x, y) = models.myrtle(5, 8), _blobs(32)
    out = train.train(arch, x, y, SMALL, progress=False, use_cache=False)
    assert 0 <= out.train_error <= 1 and out.train_loss >= 0
    assert out.train_error == regression.test_error(train.predict(arch, out.params, x), y)


def test_centered_network_starts_at_zero_and_early_stopping_uses_validation_loss():
    arch, (x, y) = models.myrtle(5, 8, parameterization="standard", W_std=1.0, b_std=0.0), _blobs(32)
    xv, yv = _blobs(16, seed=1)
    cfg = train.TrainConfig(lr=0.05, batch_size=16, epochs=1, min_steps=40, eval_every=10, early_stopping=True,
                            center=True, snapshot_steps=(0,))
    out = train.train(arch, x, y, cfg, val=(xv, yv), progress=False, use_cache=False)
    np.testing.assert_allclose(out.outputs(arch, xv, out.init_params), 0, atol=1e-6)
    assert np.abs(out.outputs(arch, xv)).max() > 1e-3
    losses = out.history["val_loss"]
    best = out.history["step"].index(out.best_step)
    assert losses[best] == min(losses) and all(v > losses[best] for v in losses[best + 1:])   # ties -> later
