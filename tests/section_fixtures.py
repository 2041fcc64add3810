"""The two fixtures every section test module defines alike, made once: ``setup``, the Setup of
the module's tiny parameters, and ``result``, the section's run on it (once per module, on a fresh
cache: conftest's ``module_cache``)."""
import pytest

from ntk_utils import setup as shared


def section_fixtures(run, parameters, options):
    """(setup, result) fixtures of a section's test module: assign them to those two names."""
    @pytest.fixture
    def setup():
        return shared.Setup.from_parameters(parameters)

    @pytest.fixture(scope="module")
    def result(module_cache):
        return run(shared.Setup.from_parameters(parameters), **options)

    return setup, result
