"""The hardware account of a circuit-backed run: counts equal the operations counted by hand; fallbacks are loud."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.optimizers import KFAC
from training.report import hardware_line
from training.solvers import make_solver
from batches import learnable_batch

ROOT = Path(__file__).resolve().parents[2]


def _three_circuit_steps(model, method: dict) -> dict:
    """The hardware account of 3 K-FAC steps on ideal arrays, inverse updates at steps 0 and 2."""
    solver = make_solver({"backend": "circuit", "circuit": "ideal", "method": method})
    kfac = KFAC(model.layers, lr=0.05, inverse_every=2, solver=solver, on_circuit_failure="stop")
    params = model.init_params(0)
    x, y = learnable_batch(model, 24)
    state = kfac.init(params)
    for _ in range(3):
        _, g, c = model.loss_and_grads(params, x, y)
        params, state = kfac.step(params, g, state, model=model, cache=c)
    return kfac.hardware(state)


def test_counts_of_a_small_run_equal_the_hand_count(small_model):
    """3 K-FAC steps, inverse updates at steps 0 and 2, one settle per right-hand-side column."""
    steps = 3
    hw = _three_circuit_steps(small_model, {"name": "direct", "operators": "extracted"})
    layers = small_model.layers
    # per step and layer: A^-1 dW^T has `out` columns on the A array (in+1), G^-1 (.) has `in+1` columns on G (out)
    settles = steps * sum(l.out_dim + (l.in_dim + 1) for l in layers)
    conversions = 2 * steps * sum(l.out_dim * (l.in_dim + 1) + (l.in_dim + 1) * l.out_dim for l in layers)
    updates = 2                                               # steps 0 and 2
    programmings = updates * 2 * len(layers)
    cells = updates * sum(2 * (l.in_dim + 1) ** 2 + 2 * l.out_dim ** 2 for l in layers)
    assert hw["inv_settles"] == settles
    assert hw["conversions"] == conversions and hw["dac_conversions"] == hw["adc_conversions"]
    assert hw["programmings"] == programmings and hw["cells_programmed"] == cells
    # 4 topologies (each layer's A and G): the first programming of each is ngspice's .op of its deck, the second
    # (update 2, within simulation.verify_every = 25) re-stamps that template: one ngspice run per verified one
    assert hw["programmings_verified"] == 2 * len(layers) and hw["programmings_restamped"] == 2 * len(layers)
    assert hw["ngspice_runs"] == hw["programmings_verified"]
    assert hw["mvm_reads"] == 0 and hw["digital_flops"] == 0   # ideal preset: no equilibration, no refinement
    assert hw["fallbacks"] == 0 and hw["solves"] == steps * 2 * len(layers)
    assert hw["analog_error_mean"] < 1e-8                   # ideal parts: the analog answer is exact
    # every solve records its array's loop lambda_min by factor size (the cost ledger prices the run with them)
    solves_by_size: dict = {}
    for l in layers:
        for n in (l.in_dim + 1, l.out_dim):
            solves_by_size[n] = solves_by_size.get(n, 0) + steps
    measured = hw["loop_lambda_min_by_size"]
    assert {int(n): e["solves"] for n, e in measured.items()} == solves_by_size
    assert all(0 < e["min"] <= e["geomean"] for e in measured.values())
    # the analog error by factor size: the same solves, and their means recombine to the run's mean
    by_size = hw["analog_error_by_size"]
    assert {int(n): e["solves"] for n, e in by_size.items()} == solves_by_size
    total = sum(e["mean"] * e["solves"] for e in by_size.values()) / sum(e["solves"] for e in by_size.values())
    assert total == pytest.approx(hw["analog_error_mean"], rel=1e-12, abs=1e-300)


def test_fallbacks_are_counted_with_their_reason_and_marked(small_model):
    solver = make_solver({"backend": "circuit", "circuit": "ideal", "max_relative_residual": 1e-30,
                          "method": {"name": "direct", "operators": "extracted"}})
    kfac = KFAC(small_model.layers, lr=0.05, inverse_every=2, solver=solver, on_circuit_failure="fallback")
    params = small_model.init_params(0)
    x, y = learnable_batch(small_model, 24)
    state = kfac.init(params)
    _, g, c = small_model.loss_and_grads(params, x, y)
    params, state = kfac.step(params, g, state, model=small_model, cache=c)
    hw = kfac.hardware(state)
    assert hw["fallbacks"] == hw["solves"] == 2 * len(small_model.layers)
    assert hw["fallback_reasons"] == {"residual above limit": hw["solves"]}
    assert hw["digital_flops"] > 0                          # the exact fallbacks are digital work
    line = hardware_line(hw)
    assert line.startswith("*** FALLBACKS 100.0% ***") and "residual above limit" in line


@pytest.mark.slow
def test_train_summary_shows_fallbacks(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"""
name: fallback-run
data: {{source: synthetic-letters, n_classes: 4, n_train: 64, n_test: 32, seed: 0}}
model: {{channels: 2, kernel: 5, pool: 4}}
optimizer:
  name: kfac
  lr: 0.03
  inverse_every: 2
  solver:
    backend: circuit
    circuit: {{preset: ideal}}
    method: {{name: direct, operators: extracted}}
    max_relative_residual: 1.0e-30
train: {{epochs: 1, batch_size: 32, evals_per_epoch: 1, out_dir: "{tmp_path / 'out'}", progress: false}}
""")
    run = subprocess.run([sys.executable, "-m", "amc.cli", "train", str(config)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "*** FALLBACKS 100.0% ***" in run.stdout and "residual above limit" in run.stdout
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("event") == "eval"]
    assert all("hardware" in r for r in evals) and evals[-1]["hardware"]["fallbacks"] > 0


@pytest.mark.slow
def test_a_method_inside_the_circuit_spec_is_rejected_by_name(tmp_path):
    """The newcomer's sweep: a method placed under the circuit must never be silently dropped."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("""
name: newcomer
kind: training
base:
  circuit: rram
  training:
    data: {source: synthetic-letters, n_classes: 4, n_train: 64, n_test: 32}
    optimizer:
      name: kfac
      solver:
        backend: circuit
        circuit: {preset: rram, method: {name: hp-inv, refinement: pcg}}
    train: {epochs: 1}
grid:
  seed: [0, 1]
""")
    run = subprocess.run([sys.executable, "-m", "amc.cli", "sweep", str(sweep), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "training.optimizer.solver.circuit" in run.stderr and "Traceback" not in run.stderr
    direct = tmp_path / "run.yaml"
    direct.write_text("""
name: newcomer-run
data: {source: synthetic-letters, n_classes: 4, n_train: 64, n_test: 32}
optimizer:
  name: kfac
  solver: {backend: circuit, circuit: {preset: rram, method: {name: hp-inv}}}
""")
    run = subprocess.run([sys.executable, "-m", "amc.cli", "train", str(direct)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 2 and "optimizer.solver.circuit.method" in run.stderr and str(direct) in run.stderr


@pytest.mark.slow
def test_circuit_training_without_libngspice_is_an_error_not_a_digital_run(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"""
name: no-ngspice
data: {{source: synthetic-letters, n_classes: 4, n_train: 64, n_test: 32, seed: 0}}
model: {{channels: 2, kernel: 5, pool: 4}}
optimizer: {{name: kfac, solver: {{backend: circuit, circuit: ideal}}}}
train: {{epochs: 1, batch_size: 32, out_dir: "{tmp_path / 'out'}", progress: false}}
""")
    import os
    env = dict(os.environ, NGSPICE_LIBRARY_PATH=str(tmp_path / "missing" / "libngspice.so"))
    run = subprocess.run([sys.executable, "-m", "amc.cli", "train", str(config)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env=env)
    assert run.returncode != 0 and "ngspice" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "completed" not in run.stdout


def test_the_controllers_reads_and_flops_in_a_small_run_equal_the_hand_count(small_model):
    """The same 3 steps with the `direct` preset: each programming is verified by min(8, n) Lanczos settles; the
    ideal arrays pass at shift 0, so nothing else changes. Its settles, conversions and flops, counted by hand."""
    steps = 3
    hw = _three_circuit_steps(small_model, {"preset": "direct", "operators": "extracted"})
    sizes = [n for l in small_model.layers for n in (l.in_dim + 1, l.out_dim)] * 2      # 2 inverse updates

    def verify_settles(n):
        return min(8, n)

    def verify_flops(n):          # start vector 3n; Lanczos step k: 8n + 10 k^2; w / beta n on all but the last
        s = verify_settles(n)
        return 3 * n + sum(8 * n + 10 * k * k for k in range(1, s + 1)) + (s - 1) * n
    ctrl = hw["controller"]
    assert ctrl["programmings_verified"] == len(sizes) and ctrl["shifted_programmings"] == 0
    assert ctrl["inv_settles"] == sum(verify_settles(n) for n in sizes)
    assert ctrl["dac_conversions"] == ctrl["adc_conversions"] == sum(n * verify_settles(n) for n in sizes)
    assert ctrl["digital_flops"] == sum(verify_flops(n) for n in sizes) and ctrl["mvm_reads"] == 0
    solve_settles = steps * sum(l.out_dim + (l.in_dim + 1) for l in small_model.layers)
    assert hw["inv_settles"] == solve_settles + ctrl["inv_settles"]         # the account includes the controller
    assert hw["digital_flops"] == ctrl["digital_flops"]                      # ideal preset: no other digital work
    assert hw["bias_error_mean"] == 0.0 and hw["step_cosine_mean"] > 1 - 1e-9
