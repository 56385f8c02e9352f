"""AnalogKFAC with circuit solves: the hardware account's counts against a hand count, the methods, a Solver object."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from amc import MethodSolver
from training.torch import AnalogKFAC

RRAM_DIRECT = {"backend": "circuit", "circuit": "rram", "method": {"preset": "direct"}}


def tiny():
    """Linear 4->3 (A 5x5, G 3x3), tanh, Linear 3->2 (A 4x4, G 2x2)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()


def train(model, opt, steps):
    torch.manual_seed(1)
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 2, (8,))
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def test_circuit_step_hardware_account_matches_a_hand_count():
    """Three steps, inverse update every 2 (steps 0 and 2), one-step INV on the rram preset. Hand count:
    - programmings: 4 factors x 2 inverse updates = 8, each a differential pair of n x n cells (2 n^2):
      2 (25 + 9 + 16 + 4) x 2 = 216 cells;
    - settles: one per right-hand side column. A_d^-1 dW^T has `out` columns, G_d^-1 (.)^T has `in + 1`:
      (3 + 5) + (2 + 4) = 14 a step, 42 in three steps;
    - conversions: each settle drives n DAC inputs and reads n ADC outputs: 3*5 + 5*3 + 2*4 + 4*2 = 46 each a step;
    - on top, the ``direct`` preset's read-verified controller (amc/hw/controller.py), reported apart: at most
      VERIFY_SETTLES Lanczos settles per programming, n conversions each way per settle, and all the digital flops."""
    from amc.hw.controller import VERIFY_SETTLES
    model = tiny()
    opt = AnalogKFAC(model, solver=RRAM_DIRECT, inv_update_steps=2)
    train(model, opt, 3)
    h = opt.hardware()
    assert h["programmings"] == 8 and h["cells_programmed"] == 216
    c = h["controller"]
    assert 0 < c["inv_settles"] <= VERIFY_SETTLES * 8 and c["programmings"] == 0
    assert h["inv_settles"] - c["inv_settles"] == 42 and h["mvm_reads"] == 0
    assert h["dac_conversions"] - c["dac_conversions"] == h["adc_conversions"] - c["adc_conversions"] == 3 * 46
    assert h["solves"] == 12 and h["fallbacks"] == 0 and h["digital_flops"] == c["digital_flops"] > 0
    assert h["ngspice_runs"] >= h["programmings"]          # every programming is one ngspice .op at least
    assert 0 < h["analog_error_mean"] < 0.5                # an 8-level array's inverse, not the exact one
    assert h["cost"]["energy_j"] > 0 and h["cost"]["time_s"] > 0
    assert opt.stats()["inverse_updates"] == 2


def test_circuit_step_is_close_to_the_exact_step():
    """The same step with exact and with circuit solves: the parameter updates point the same way (cosine > 0.9)
    but are not identical (the analog inverse is 8-level)."""
    exact_model, circuit_model = tiny(), tiny()
    start = [p.detach().clone() for p in exact_model.parameters()]
    train(exact_model, AnalogKFAC(exact_model), 1)
    train(circuit_model, AnalogKFAC(circuit_model, solver=RRAM_DIRECT), 1)
    d_exact = torch.cat([(p.detach() - s).ravel() for p, s in zip(exact_model.parameters(), start)])
    d_circ = torch.cat([(p.detach() - s).ravel() for p, s in zip(circuit_model.parameters(), start)])
    cos = float(d_exact @ d_circ / (d_exact.norm() * d_circ.norm()))
    assert 0.9 < cos < 1 - 1e-9


def test_a_solver_object_is_accepted_and_accounted():
    """An amc Solver object (the protocol) is wrapped with the same account."""
    model = tiny()
    opt = AnalogKFAC(model, solver=MethodSolver("ideal", method="direct"))
    train(model, opt, 1)
    h = opt.hardware()
    assert h["programmings"] == 4 and h["inv_settles"] - h["controller"]["inv_settles"] == 14   # + the verify reads


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["hpinv-pcg", "blockamc", "repast"])
def test_method_presets_precondition_through_the_circuit(preset):
    """HP-INV, BlockAMC and RePAST each precondition a step: the account shows their own operations (MVM reads
    where the method reads MVM arrays) and the update stays close to the exact one."""
    exact_model, model = tiny(), tiny()
    start = [p.detach().clone() for p in model.parameters()]
    train(exact_model, AnalogKFAC(exact_model), 1)
    circuit = {"preset": "rram", "device": {"levels": 16}}     # (at 8 levels one PCG diverges: a fallback)
    opt = AnalogKFAC(model, solver={"backend": "circuit", "circuit": circuit, "method": {"preset": preset}})
    train(model, opt, 1)
    h = opt.hardware()
    assert h["solves"] == 4 and h["fallbacks"] == 0 and h["programmings"] >= 4
    assert h["inv_settles"] > 0
    if preset in ("hpinv-pcg", "repast"):                       # refined on analog MVM residuals
        assert h["mvm_reads"] > 0 and h["final_error_max"] < 0.1 * h["analog_error_mean"]
    assert preset.split("-")[0] in h["method"].lower().replace("-", "")
    d_exact = torch.cat([(p.detach() - s).ravel() for p, s in zip(exact_model.parameters(), start)])
    d = torch.cat([(p.detach() - s).ravel() for p, s in zip(model.parameters(), start)])
    assert float(d_exact @ d / (d_exact.norm() * d.norm())) > 0.9
