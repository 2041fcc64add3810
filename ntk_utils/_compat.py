"""Version checks and the one place that imports neural-tangents.

Why this module exists
----------------------
neural-tangents 0.6.5 (its last release) imports only with jax/jaxlib <= 0.5.3, and
its ``__init__`` imports ``neural_tangents.experimental`` (a TensorFlow-model bridge)
that needs TensorFlow and tf2jax. We install neural-tangents with ``--no-deps``
(1.1 GB venv instead of 3.1 GB, 0.45 s import instead of 3.7 s) and keep that one
module from importing by placing an empty stand-in in ``sys.modules``. Nothing in
ntk_utils uses the TF bridge.

Its structured-derivatives eNTK (implementation 3) also reaches for
``jax.interpreters.ad.source_info_util`` and ``ad.config``, which jax 0.5.3 no longer
re-exports; we alias them back (results then match implementation 1 to ~5e-7).

Everything else in ntk_utils imports neural-tangents through :func:`neural_tangents`,
lazily, so code paths that do not need it (the fast infinite-NTK engine, training)
also run on newer jax, e.g. on a GPU image with jax 0.11.
"""
import importlib.util
import os
import sys
import types
from importlib import metadata

# Keep in sync with pyproject.toml (tests/test_environment.py checks it).
PINNED = {
    "jax": "0.5.3",
    "jaxlib": "0.5.3",
    "flax": "0.10.6",
    "optax": "0.2.8",
    "neural-tangents": "0.6.5",
}
FIX = ("Install the pinned set with `make install` (creates .venv), or by hand:\n"
       "    pip install -e . && pip install --no-deps neural-tangents==0.6.5\n"
       "Set NTK_UTILS_SKIP_VERSION_CHECK=1 to run anyway (e.g. on a GPU image with a newer jax:\n"
       "training, the eNTK and the fast infinite NTK work there; neural-tangents does not;\n"
       "`make test-current-jax` tests that stack, requirements-current-jax.txt).")


def installed_versions():
    """{package: installed version or None} for the pinned packages."""
    found = {}
    for name in PINNED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def check_versions():
    """Raise ImportError naming every pinned package that is missing or at another version."""
    if os.environ.get("NTK_UTILS_SKIP_VERSION_CHECK"):
        return
    wrong = [f"  {name}: need {want}, found {installed_versions()[name] or 'nothing'}"
             for name, want in PINNED.items() if installed_versions()[name] != want]
    if wrong:
        raise ImportError("ntk_utils needs its pinned package versions:\n" + "\n".join(wrong) + "\n" + FIX)


def neural_tangents():
    """Import and return the ``neural_tangents`` module, patched as described above.

    Raises ImportError, saying why, when it is not installed or cannot import (on jax > 0.5.3
    it fails in several ways, not all of them ImportError): callers that have a plain-jax path
    catch ImportError and take it (``kernels.empirical_ntk``), the others name the fix.
    """
    if "neural_tangents" not in sys.modules:
        if importlib.util.find_spec("neural_tangents") is None:
            raise ImportError("neural-tangents is not installed (it serves only the reference kernels: "
                              "models.stax_kernel_fn, eNTK implementations 1-3, architectures fast_ntk does "
                              f"not cover).\n{FIX}")
        sys.modules.setdefault("neural_tangents.experimental",
                               types.ModuleType("neural_tangents.experimental"))
        from jax import config
        from jax._src import source_info_util
        from jax.interpreters import ad
        if not hasattr(ad, "source_info_util"):
            ad.source_info_util = source_info_util
        if not hasattr(ad, "config"):
            ad.config = config
        try:
            import neural_tangents  # noqa: F401
        except Exception as e:  # noqa: BLE001 -- any failure to import is "not available" to callers
            raise ImportError(f"neural-tangents could not be imported ({type(e).__name__}: {e}).\n{FIX}") from e
    return sys.modules["neural_tangents"]
