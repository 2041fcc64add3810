"""The pinned stack: one set, stated identically everywhere, checked at import."""
import pathlib
import re
import tomllib

import pytest
import yaml

import ntk_utils
from ntk_utils import _compat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = project["project"]["dependencies"] + project["tool"]["ntk-limits"]["no-deps"]
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", p).groups() for p in pins)


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert all("==" in p for p in project["project"]["dependencies"])
    for name in ["jax", "jaxlib", "flax", "optax", "neural-tangents", "matplotlib", "jupyter", "jupytext",
                 "papermill", "pytest", "tqdm", "pyyaml", "scipy"]:
        assert name in _pyproject_pins(), name


def test_environment_yml_installs_the_same_set():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = dict(p.split("==") for p in pip if "==" in p)
    assert env_pins == _pyproject_pins()
    assert "-e ." in pip


def test_current_jax_stage_keeps_every_other_pin():
    """requirements-current-jax.txt changes only jax, jaxlib, flax and optax (to their newest
    versions) and drops neural-tangents: every other dependency is pyproject's, at its pin."""
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements-current-jax.txt").read_text().splitlines()]
    current = dict(line.split("==") for line in lines if line)
    pinned = _pyproject_pins()
    stack = {"jax", "jaxlib", "flax", "optax"}
    assert set(current) == set(pinned) - {"neural-tangents"}
    assert {k: v for k, v in current.items() if k not in stack} == {k: pinned[k] for k in current if k not in stack}
    assert all(current[k] != pinned[k] for k in stack - {"optax"})   # newer jax, jaxlib, flax (optax: same release)


@pytest.mark.pinned_stack
def test_import_time_check_matches_pyproject_and_installed():
    pins = _pyproject_pins()
    assert {k: pins[k] for k in _compat.PINNED} == _compat.PINNED
    assert _compat.installed_versions() == _compat.PINNED


def test_wrong_version_gives_clear_error(monkeypatch):
    monkeypatch.delenv("NTK_UTILS_SKIP_VERSION_CHECK", raising=False)   # the check itself, on any stack
    monkeypatch.setattr(_compat, "installed_versions", lambda: {**_compat.PINNED, "jax": "0.10.2", "optax": None})
    with pytest.raises(ImportError) as e:
        _compat.check_versions()
    message = str(e.value)
    assert "jax: need 0.5.3, found 0.10.2" in message and "optax: need 0.2.8, found nothing" in message
    assert "make install" in message
    monkeypatch.setenv("NTK_UTILS_SKIP_VERSION_CHECK", "1")
    _compat.check_versions()


@pytest.mark.needs_neural_tangents
def test_neural_tangents_imports_without_tensorflow():
    nt = _compat.neural_tangents()
    assert nt.__version__ == "0.6.5"
    import sys
    assert "tensorflow" not in sys.modules
    assert "neural_tangents.experimental" in sys.modules


@pytest.mark.pinned_stack
def test_versions_summary_names_the_stack():
    assert "neural-tangents 0.6.5" in ntk_utils.versions_summary()
