"""The ledger's INV settle (exact linear model of the programmed array) against ngspice transients."""
import numpy as np
import pytest

from amc.cost import HardwareCostModel, cost_of, settle_of_matrix, settle_of_size
from amc.cost.settle import settle_law
from amc.hw.counters import OperationCounts
from amc.solver import AnalogSolver


def spd(n, seed, lam_min):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([[lam_min], rng.uniform(1.0, 2.0, n - 1)])
    return (q * lam) @ q.T


# three arrays of different size and loop lambda_min (0.54, 0.099, 0.084; settles of 3.7, 20, 20 ns)
CASES = [(4, 1.0, 11), (8, 0.2, 2), (16, 0.3, 4)]


@pytest.mark.parametrize("n,lam,seed", CASES)
def test_ledger_settle_time_and_energy_within_10_percent_of_ngspice(n, lam, seed):
    hw = HardwareCostModel.preset("rram-ic")
    h = spd(n, seed, lam)
    g = np.random.default_rng(seed).standard_normal(n)
    sol = AnalogSolver(hw.circuit).solve(h, g, transient=True)
    assert sol.settled
    settle = settle_of_matrix(h, hw, g)
    one = OperationCounts(inv_settles=1, dac_conversions=n, adc_conversions=n)
    cost = cost_of(one, hw, n=n, settle=settle)
    ledger_time = cost.time_breakdown["INV settles"]
    ledger_energy = cost.breakdown["opamps"] + cost.breakdown["crosspoint array"]
    assert ledger_time == pytest.approx(float(sol.settling_time_s), rel=0.10)
    assert ledger_energy == pytest.approx(float(sol.energy_j), rel=0.10)


def test_lambda_min_sets_the_time_not_n():
    hw = HardwareCostModel.preset("rram-ic")
    small, large = settle_of_size(8, 0.05, hw), settle_of_size(64, 0.05, hw)
    assert small.time_s == large.time_s
    assert settle_of_size(8, 0.025, hw).time_s == pytest.approx(2 * small.time_s)
    # energy: 2n op-amps (row amplifiers and inverters) at quiescent power for the settle window, times the fit
    o = hw.circuit.opamp
    expected = small.time_s * 16 * 2 * o.supply_v * o.quiescent_current_a * 1.034
    assert small.energy_j == pytest.approx(expected, rel=1e-12)
    assert large.energy_j == pytest.approx(8 * small.energy_j, rel=1e-12)


def test_law_by_hand():
    # (ln(1000) + 0.28) / (2 pi 695.1 MHz 0.1) = 16.46 ns
    assert settle_law(0.1, 695.1e6, 1e-3) == pytest.approx((np.log(1000) + 0.28) / (2 * np.pi * 695.1e6 * 0.1))
    assert settle_law(0.1, 695.1e6, 1e-3) == pytest.approx(16.46e-9, rel=1e-3)


@pytest.mark.parametrize("preset", ["ideal-dynamic", "rram"])
def test_exact_model_matches_ngspice_with_ideal_inverters_and_board_op_amps(preset):
    hw = HardwareCostModel.for_circuit(preset)
    h, g = spd(8, 2, 0.3), np.random.default_rng(1).standard_normal(8)
    sol = AnalogSolver(hw.circuit).solve(h, g, transient=True)
    s = settle_of_matrix(h, hw, g)
    assert s.time_s == pytest.approx(float(sol.settling_time_s), rel=0.02)
    assert s.energy_j == pytest.approx(float(sol.energy_j), rel=0.02)


@pytest.mark.parametrize("n,lam,seed", CASES)
def test_closed_form_law_against_ngspice(n, lam, seed):
    """The law from lambda_min alone: within 25 % of ngspice on these arrays (0.43-1.6x on the 23 fit systems)."""
    hw = HardwareCostModel.preset("rram-ic")
    h = spd(n, seed, lam)
    g = np.random.default_rng(seed).standard_normal(n)
    sol = AnalogSolver(hw.circuit).solve(h, g, transient=True)
    law = settle_of_size(n, float(sol.lambda_min), hw)
    assert law.time_s == pytest.approx(float(sol.settling_time_s), rel=0.25)
    assert law.energy_j == pytest.approx(float(sol.energy_j), rel=0.25)
