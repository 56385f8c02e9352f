"""`make sim`: the project's main job, end to end, on embedded data (no download).

1. Circuit: generate an SPD test matrix (a damped K-FAC-like factor), solve H x = g through the simulated INV
   circuit (.op and .tran), write its ngspice deck (rerun it with ``ngspice -b``), the solution and the output
   waveforms under ``results/sim/circuit/``.
2. Training: the letter CNN on the embedded synthetic letters with K-FAC whose factor solves go through the
   circuit, beside SGD-momentum and Adam, over a few seeds. The runs are sweep points (``workflow.engine``): they
   run in worker processes, show a progress bar, and a rerun resumes where an interrupted one stopped.
3. Figures (PNG + SVG) and a summary (``summary.md``, ``summary.json``) under ``results/sim/``; the summary
   table is printed at the end.

    python -m workflow.main_job [--quick] [--out results/sim] [--workers N] [--seeds 0 1] [--epochs 3]

The default finishes in a few minutes on 2 cores; ``--quick`` (for tests) in well under a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from amc.units import si

# Sized for <= 2 minutes on a quiet 2-core machine (README, "make sim"). Condition 10: three CG iterations alone
# cannot solve it, so the analog preconditioner decides the answer (the identity control is clearly worse).
DEFAULTS = dict(n=16, condition=10.0, preset="rram", levels=8, training_levels=16, n_classes=10, n_train=1500,
                n_test=500, epochs=3.0, seeds=[0, 1], target=0.6, max_block=32)
QUICK = dict(n=8, condition=10.0, preset="rram", levels=8, training_levels=16, n_classes=6, n_train=300, n_test=120,
             epochs=1.0, seeds=[0], target=0.3, max_block=16)
COST_PRESET = "rram-ic"     # the integrated circuit the README's cost section prices (amc/cost)
# The circuit stage's refinement and its control: the same PCG iterations with the identity for the analog INV.
CIRCUIT_METHOD = {"preset": "hpinv-pcg", "iterations": 3, "operators": "extracted"}
KFAC = {"name": "kfac", "lr": 0.03, "damping": 1e-2, "ema": 0.95, "factor_every": 1, "inverse_every": 10}
DIRECT = {"name": "direct", "equilibrate": True, "operators": "extracted"}
# The control of the one-step INV row: the same K-FAC loop with the identity in place of every inverse the array
# computes. With K-FAC's momentum 0 and no KL clip the step is then lr * gradient: plain SGD at K-FAC's lr.
IDENTITY_CONTROL = "sgd"
OPTIMIZERS = {
    # label: (optimizer section of the training config, extra point keys); lrs from
    # configs/compare/synthetic-letters.yaml.
    "kfac-exact": ({**KFAC, "solver": {"backend": "numpy"}}, {}),
    "kfac-direct": ({**KFAC, "solver": {"backend": "circuit", "method": DIRECT}}, {}),
    "identity-control": ({"name": "sgd", "lr": KFAC["lr"], "momentum": 0.0, "solver": {"backend": "numpy"}}, {}),
    "sgd-momentum": ({"name": "sgd", "lr": 0.03, "momentum": 0.9, "solver": {"backend": "numpy"}}, {}),
    "adam": ({"name": "adam", "lr": 0.01, "solver": {"backend": "numpy"}}, {}),
}


def _say(message: str) -> None:
    print(message, flush=True)


# ---- 1. the circuit ------------------------------------------------------------------------------
def circuit_stage(out: Path, settings: dict) -> dict:
    from amc import AnalogSolver, CircuitConfig
    from .matrices import make_problem, validate_matrix_spec

    out.mkdir(parents=True, exist_ok=True)
    config = CircuitConfig.preset(settings["preset"]).replace(**{"device.levels": settings["levels"]})
    spec = validate_matrix_spec({"n": settings["n"], "kind": "spd", "condition": settings["condition"]}, "main job")
    h, g = make_problem(spec)
    exact = np.linalg.solve(h, g)
    solver = AnalogSolver(config)
    _say(f"[1/3] circuit: {config.describe()}")
    _say(f"      solving a {h.shape[0]}x{h.shape[0]} SPD system (condition {np.linalg.cond(h):.3g}): .op ...")
    t0 = time.perf_counter()
    op = solver.solve(h, g)
    t_op = time.perf_counter() - t0
    _say("      .tran (settling time, energy) ...")
    t0 = time.perf_counter()
    tran = solver.solve(h, g, transient=True)
    t_tran = time.perf_counter() - t0
    _say("      HP-INV: 3 PCG iterations preconditioned by the 8-level INV array, residuals from the bit-sliced "
         "analog MVM, beside the control without the analog INV ...")
    from amc import solve_system
    t0 = time.perf_counter()
    refined = solve_system(h, g, method=CIRCUIT_METHOD, config=config)
    t_refined = time.perf_counter() - t0
    control = solve_system(h, g, method={**CIRCUIT_METHOD, "preconditioner": "identity"}, config=config)
    from amc.hw.netlist import standalone, with_g_scale
    g_scale = float(np.max(np.abs(g)))  # the header then holds all it takes to turn V(out_j) back into x
    (out / "inv_circuit_op.cir").write_text(standalone(with_g_scale(op.netlist, g_scale)))
    (out / "inv_circuit_tran.cir").write_text(with_g_scale(tran.netlist, g_scale))
    np.save(out / "H.npy", h)
    np.save(out / "g.npy", g)
    np.savetxt(out / "solution.csv", np.column_stack([exact, op.x, tran.x]), delimiter=",",
               header="x_numpy,x_circuit_op,x_circuit_tran", comments="")
    summary = {
        "n": int(h.shape[0]), "preset": config.name, "opamp": config.opamp.name, "condition_number": float(np.linalg.cond(h)),
        "relative_error_op": op.error_against(exact), "relative_error_tran": tran.error_against(exact),
        "relative_residual": float(op.relative_residual), "saturated": bool(np.any(op.saturated)),
        "static_power_w": float(np.max(op.static_power_w)), "settling_time_s": float(np.max(tran.settling_time_s)),
        "energy_j": float(np.max(tran.energy_j)), "lambda_min": op.lambda_min, "g0_s": op.g0_s,
        "op_wall_s": t_op, "tran_wall_s": t_tran, "levels": config.device.levels,
        "relative_error_hpinv_pcg": float(np.linalg.norm(refined.x - exact) / np.linalg.norm(exact)),
        "relative_error_identity_control": float(np.linalg.norm(control.x - exact) / np.linalg.norm(exact)),
        "hpinv_iterations": CIRCUIT_METHOD["iterations"],
        "hpinv_operations": refined.operations.to_dict(), "control_operations": control.operations.to_dict(),
        "hpinv_wall_s": t_refined,
        "deck": str(out / "inv_circuit_op.cir"), "deck_tran": str(out / "inv_circuit_tran.cir"),
    }
    summary["on_chip"] = on_chip_cost(h, g, config.device.levels)
    (out / "circuit.json").write_text(json.dumps(summary, indent=2))
    _waveform_figure(tran, out, summary)
    _say(f"      relative error {summary['relative_error_op']:.2e} (.op, one {config.device.levels}-level INV), "
         f"{summary['relative_error_hpinv_pcg']:.2e} (3 PCG iterations with the INV), "
         f"{summary['relative_error_identity_control']:.2e} (same without it); deck: {summary['deck']}")
    _say(f"      board-level parts ({config.opamp.name} op-amps, ngspice .tran): settling "
         f"{si(summary['settling_time_s'], 's')}, energy {si(summary['energy_j'], 'J')}, static power "
         f"{si(summary['static_power_w'], 'W')}")
    c = summary["on_chip"]
    _say(f"      on chip ({c['preset']}, the cost ledger of the README's cost section): one solve "
         f"{si(c['time_s'], 's')}, {si(c['energy_j'], 'J')} with programming; the settle alone "
         f"{si(c['settle_time_s'], 's')}, {si(c['settle_energy_j'], 'J')}")
    return summary


def on_chip_cost(h: np.ndarray, g: np.ndarray, levels) -> dict:
    """The same solve priced on the integrated circuit of the README's cost section (amc.cost, preset rram-ic):
    programming of the 2n^2 cells, the settle from the array's own dynamics, the conversions."""
    from amc.config import CircuitConfig
    from amc.cost import HardwareCostModel, direct_solve_cost
    hw = HardwareCostModel.for_circuit(CircuitConfig.preset(COST_PRESET).replace(**{"device.levels": levels}))
    cost = direct_solve_cost(h, g, hw)
    settle_t = cost.time_breakdown.get("INV settles", 0.0)
    settle_e = sum(v for k, v in cost.breakdown.items() if k in ("opamps", "crosspoint array"))
    return {"preset": COST_PRESET, "hardware_model": hw.describe(), "time_s": cost.time_s,
            "energy_j": cost.energy_j, "settle_time_s": settle_t, "settle_energy_j": settle_e,
            "breakdown": cost.breakdown}


def _waveform_figure(tran, out: Path, summary: dict) -> None:
    from .plots import _new_figure, _save
    wave = tran.waveforms[0]
    fig, ax = _new_figure(f"INV circuit transient: op-amp outputs (n = {summary['n']}), "
                          f"settling {summary['settling_time_s'] * 1e6:.3g} µs",
                          f"preset {summary['preset']}, cond(H) = {summary['condition_number']:.3g}, "
                          "all inputs stepped at t = 0")
    t = np.asarray(wave["time"]) * 1e6
    for row in np.asarray(wave["outputs"]):
        ax.plot(t, row, lw=0.8)
    ax.axvline(summary["settling_time_s"] * 1e6, color="k", ls=":", lw=1, label="settling time")
    ax.set_xlabel("time (µs)")
    ax.set_ylabel("op-amp output voltage V(out_j) (V)")
    ax.legend(fontsize=8)
    _save(fig, out, "transient_outputs")


# ---- 2. training ---------------------------------------------------------------------------------
def training_sweep(settings: dict, circuit_preset: str, levels: Optional[int]):
    from .spec import build_sweep
    training = {
        "target_accuracy": settings["target"],
        "data": {"source": "synthetic-letters", "n_classes": settings["n_classes"], "n_train": settings["n_train"],
                 "n_test": settings["n_test"], "seed": 0},
        "model": {"channels": 8, "kernel": 5, "pool": 4},
        "optimizer": {"name": "sgd", "solver": {"backend": "numpy"}},
        "train": {"epochs": settings["epochs"], "batch_size": 64, "evals_per_epoch": 4,
                  "train_eval_size": min(500, settings["n_train"])},
    }
    points = []
    for seed in settings["seeds"]:  # seeds outer: the optimisers interleave, so the progress bar's ETA is fair
        for label, (opt, extra) in OPTIMIZERS.items():
            opt = dict(opt)
            if opt["name"] == "kfac":
                opt["max_block"] = settings["max_block"]
            point = {**{f"training.optimizer.{k}": v for k, v in opt.items() if k != "solver"},
                     **{f"training.optimizer.solver.{k}": v for k, v in opt["solver"].items()}, **extra, "seed": seed}
            if opt["solver"]["backend"] == "numpy":
                point["training.optimizer.solver.method"] = "direct"
            points.append(point)
    data = {"name": "sim_training", "kind": "training",
            "description": "circuit-in-the-loop K-FAC vs its identity control (plain SGD at K-FAC's lr), "
                           "SGD-momentum and Adam on synthetic letters",
            "base": {"circuit": {"preset": circuit_preset, "device": {"levels": levels}}, "training": training},
            "points": points, "timeout_s": 900,
            "plots": ["training_curves", "epochs_to_target"]}
    return build_sweep(data, source="main job")


def training_stage(out: Path, settings: dict, workers: int, progress: bool) -> list[dict]:
    from .engine import run_sweep
    from .store import RECORDS, latest_by_id, read_records
    sweep = training_sweep(settings, settings["preset"], settings["training_levels"])
    _say(f"[2/3] training: {len(sweep)} runs ({', '.join(OPTIMIZERS)} x seeds {settings['seeds']}), "
         f"synthetic letters {settings['n_classes']} classes, {settings['n_train']}/{settings['n_test']} images, "
         f"{settings['epochs']:g} epoch(s), {workers} worker(s)")
    report = run_sweep(sweep, out, workers=workers, progress=progress, plot=True)
    _say(f"      {report.summary()}")
    records, _ = read_records(out / RECORDS)
    ids = {p.id for p in sweep.points}
    return [r for r in latest_by_id(records).values() if r["id"] in ids]


# ---- 3. summary ----------------------------------------------------------------------------------
CONTROL_LABEL = "identity control (K-FAC, identity for the inverses = SGD lr 0.03)"


def _group(r: dict, levels) -> str:
    label = (r.get("metrics") or {}).get("optimizer") or "?"
    if label == IDENTITY_CONTROL:
        return CONTROL_LABEL
    return f"{label} ({levels} levels)" if label.startswith("kfac-circuit") else label


def verdict(circuit: dict, table: dict, settings: dict) -> str:
    """One line: where the analog array decided the outcome (its control clearly worse), and where it did not."""
    a, b = circuit["relative_error_hpinv_pcg"], circuit["relative_error_identity_control"]
    parts = []
    if b > 2 * a:
        parts.append(f"the analog array decides the solve: {circuit['hpinv_iterations']} PCG iterations preconditioned "
                     f"by the {circuit['levels']}-level INV reach relative error {a:.2g}, the identity control "
                     f"{b:.2g} ({b / a:.1f}x worse)")
    else:
        parts.append(f"the analog INV made no clear difference to the solve ({a:.2g} with it, {b:.2g} without)")
    circ = next((e for k, e in table.items() if k.startswith("kfac-circuit")), None)
    ctrl = table.get(CONTROL_LABEL)
    if circ and ctrl:
        x, y = circ["epochs_to_target_mean"], ctrl["epochs_to_target_mean"]
        all_x = circ["reached_target"].split("/")
        reached_all = all_x[0] == all_x[1] and int(all_x[1]) > 0
        target = f"{100 * settings['target']:g} %"
        if reached_all and (y is None or y > 1.5 * x):
            shown = f"not reached in {settings['epochs']:g} epochs" if y is None else f"{y:.2f} epochs"
            parts.append(f"in training it decides too: K-FAC on the {settings['training_levels']}-level one-step INV "
                         f"reaches {target} in {x:.2f} epochs, its identity control {shown}")
        else:
            parts.append(f"in training the array made no measurable difference against its identity control "
                         f"(epochs to {target}: {x if x is None else round(x, 2)} vs "
                         f"{y if y is None else round(y, 2)})")
    return "Verdict: " + "; ".join(parts) + "."


def summarise(circuit: dict, runs: list[dict], settings: dict) -> tuple[str, dict]:
    from training.report import fallback_mark
    by_opt: dict[str, list[dict]] = {}
    for r in runs:
        by_opt.setdefault(_group(r, settings["training_levels"]), []).append(r)
    rows, hw_rows, table = [], [], {}
    for label in sorted(by_opt):
        rs = by_opt[label]
        ok = [r for r in rs if r["status"] == "ok"]
        acc = [r["metrics"]["final_test_accuracy"] for r in ok]
        ett = [r["metrics"].get("epochs_to_target") for r in ok]
        reached = [e for e in ett if e is not None and np.isfinite(e)]
        entry = {"runs": len(rs), "failed": len(rs) - len(ok),
                 "final_test_accuracy_mean": float(np.mean(acc)) if acc else None,
                 "final_test_accuracy_std": float(np.std(acc)) if acc else None,
                 "epochs_to_target_mean": float(np.mean(reached)) if reached else None,
                 "epochs_to_target_std": float(np.std(reached)) if reached else None,
                 "reached_target": f"{len(reached)}/{len(ok)}"}
        circuit_runs = [r["metrics"] for r in ok if r["metrics"].get("hw_method")]
        mark = ""
        if circuit_runs:
            def mean(key):
                vals = [m.get(key) for m in circuit_runs if m.get(key) is not None]
                return float(np.mean(vals)) if vals else None
            fallbacks = sum(m.get("hw_fallbacks") or 0 for m in circuit_runs)
            solves = sum(m.get("solver_solves") or 0 for m in circuit_runs)
            mark = fallback_mark({"solves": solves, "fallback_fraction": fallbacks / solves if solves else 0.0})
            entry["hardware"] = {k: mean(f"hw_{k}") for k in ("inv_settles_per_step", "mvm_reads_per_step",
                                                               "digital_flops_per_step", "programmings",
                                                               "ngspice_runs", "analog_error_mean")}
            entry["hardware"].update(fallbacks=fallbacks, solves=solves, mark=mark)
            h = entry["hardware"]
            analog = "n/a (no analog INV)" if h["analog_error_mean"] is None else f"{h['analog_error_mean']:.3f}"
            hw_rows.append(f"| {label} | {h['inv_settles_per_step']:.0f} | {h['mvm_reads_per_step']:.0f} | "
                           f"{h['programmings']:.0f} | {h['ngspice_runs']:.0f} | {h['digital_flops_per_step']:.3g} | "
                           f"{analog} | {fallbacks}/{solves}{' **' + mark + '**' if mark else ''} |")
        table[label] = entry
        acc_s = "-" if not acc else f"{100 * entry['final_test_accuracy_mean']:.1f} ± {100 * entry['final_test_accuracy_std']:.1f}"
        ett_s = "not reached" if not reached else f"{entry['epochs_to_target_mean']:.2f} ± {entry['epochs_to_target_std']:.2f}"
        shown = label + (f" **{mark}**" if mark else "")
        rows.append(f"| {shown} | {len(ok)}/{len(rs)} | {acc_s} | {ett_s} ({entry['reached_target']}) |")
    c = circuit
    chip = c["on_chip"]
    lines = [
        verdict(circuit, table, settings),
        "",
        "## Circuit (INV, one solve)",
        "",
        f"Settling time, energy and static power: board-level {c['opamp']} op-amps simulated by ngspice (.tran), "
        "the published PCB demonstrations, not a chip.",
        "",
        "| n | preset | levels | cond(H) | rel. error (.op) | rel. error (.tran) | settling time (board) | "
        "energy (board) | static power (board) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {c['n']} | {c['preset']} | {c['levels'] or 'continuous'} | {c['condition_number']:.3g} | {c['relative_error_op']:.2e} | "
        f"{c['relative_error_tran']:.2e} | {si(c['settling_time_s'], 's')} | "
        f"{si(c['energy_j'], 'J')} | {si(c['static_power_w'], 'W')} |",
        "",
        f"On chip (preset {chip['preset']}, the cost ledger behind the README's cost section: integrated op-amps, "
        f"8-bit converters, write-verify): this solve costs {si(chip['time_s'], 's')} and {si(chip['energy_j'], 'J')} "
        f"including the programming of the {2 * c['n'] ** 2} cells; the settle alone {si(chip['settle_time_s'], 's')}, "
        f"{si(chip['settle_energy_j'], 'J')}.",
        "",
        f"{c['hpinv_iterations']} PCG iterations preconditioned by this INV array (residuals on the 6-slice analog MVM): "
        f"relative error {c['relative_error_hpinv_pcg']:.2e}; the same iterations with the identity instead of the "
        f"analog INV (the control): {c['relative_error_identity_control']:.2e}.",
        "",
        f"## Training (synthetic letters, {settings['n_classes']} classes, {settings['epochs']:g} epoch(s), "
        f"seeds {settings['seeds']}, target {100 * settings['target']:g}%)",
        "",
        "| optimiser | runs ok | final test accuracy (%) | epochs to target |",
        "|---|---|---|---|",
        *rows,
        "",
        "What the arrays did (means over the runs; every circuit solve is analog unless counted as a fallback):",
        "",
        "| circuit run | INV settles / step | MVM reads / step | programmings / run | ngspice runs / run | "
        "digital flops / step | analog error before refinement | fallbacks |",
        "|---|---|---|---|---|---|---|---|",
        *hw_rows,
    ]
    return "\n".join(lines) + "\n", {"circuit": circuit, "training": table, "settings": settings,
                                      "verdict": lines[0]}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.main_job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/sim", help="results directory (default results/sim)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    parser.add_argument("--workers", type=int, default=None, help="training worker processes (default: CPUs, max 2)")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds")
    parser.add_argument("--epochs", type=float, help="training epochs per run")
    parser.add_argument("--n", type=int, help="size of the circuit test matrix")
    parser.add_argument("--target", type=float, help="target test accuracy (fraction) for epochs-to-target")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else DEFAULTS)
    for key in ("seeds", "epochs", "n", "target"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    workers = args.workers or max(1, min(2, os.cpu_count() or 1))
    out = Path(args.out)
    started = time.time()
    from amc.cli import run as run_guarded  # AmcError -> one line on stderr

    def job(_argv) -> int:
        t0 = time.time()
        circuit = circuit_stage(out / "circuit", settings)
        circuit_wall = time.time() - t0
        runs = training_stage(out / "training", settings, workers, progress=not args.no_progress)
        _say("[3/3] summary")
        text, data = summarise(circuit, runs, settings)
        (out / "summary.md").write_text(text)
        (out / "summary.json").write_text(json.dumps(data, indent=2, default=str))
        print()
        print(text)
        figures = sorted(str(p) for p in out.rglob("figures/*.png")) + sorted(str(p) for p in (out / "circuit").glob("*.png"))
        import resource
        cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for f in ("ru_utime", "ru_stime"))     # this process and its finished worker processes
        print(f"results in {out.resolve()}  ({time.time() - started:.0f} s wall, {cpu:.0f} s CPU; circuit stage "
              f"{circuit_wall:.0f} s)")
        print(f"  circuit deck: {circuit['deck']}  (rerun: ngspice -b {circuit['deck']} > ngspice.out; x: "
              f"amc readback {circuit['deck']} ngspice.out)")
        print(f"  training records: {out / 'training' / 'records.jsonl'} (CSV: records.csv)")
        for f in figures:
            print(f"  figure: {f}")
        print(f"  summary: {out / 'summary.md'}")
        print(data["verdict"])
        return 0

    return run_guarded(job, [])


if __name__ == "__main__":
    sys.exit(main())
