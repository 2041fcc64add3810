"""Notebook 01's comparison of the two infinite-width limits (ntk_utils.sections.data_scaling)."""
import pytest

from ntk_utils import claims, models
from ntk_utils.sections import data_scaling

SP, NTK = (models.arch_from_config("myrtle", 8, 5, p) for p in ("standard", "ntk"))


def _verdicts(*deltas):
    """Verdicts in kernel_names' order with these (delta, delta_low) for eNTK, linearized, limits."""
    return [claims.Verdict("c", "held", "t", {"delta": d, "delta_low": low}) for d, low in deltas]


def test_a_standard_network_meets_both_limits_its_own_first():
    assert data_scaling.kernel_names(SP) == ("eNTK (init)", "linearized network", "infinite NTK (SP)",
                                             "infinite NTK (NTK param.)")
    assert data_scaling.kernel_names(NTK) == ("eNTK (init)", "linearized network", "infinite NTK (NTK param.)")


def test_the_share_the_choice_of_limit_explains():
    choice = data_scaling.limit_choice(SP, _verdicts((0.2, 0.1), (0.2, 0.1), (0.03, 0.01), (0.08, 0.04)))
    assert choice["own"] == "infinite NTK (SP)" and choice["textbook"] == "infinite NTK (NTK param.)"
    assert choice["share"] == pytest.approx((0.08 - 0.03) / 0.08)
    # No clear advantage over the NTK-parameterization limit: no share of it (not 212%).
    unclear = data_scaling.limit_choice(SP, _verdicts((0.2, 0.1), (0.2, 0.1), (-0.003, -0.07), (0.003, -0.06)))
    assert unclear["share"] is None and unclear["delta"]["infinite NTK (SP)"] == -0.003
    assert data_scaling.limit_choice(NTK, _verdicts((0.2, 0.1), (0.2, 0.1), (0.05, 0.01)))["share"] is None
