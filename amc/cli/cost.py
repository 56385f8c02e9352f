"""`amc cost`: what a circuit, a K-FAC training config, a network or a finished study costs, against digital.

    amc cost circuit  --preset rram-ic --matrix H.npy [--rhs g.npy] | --n 64 --lambda-min 0.01 [--k 1]
    amc cost training configs/train/X.yaml [--dataflow direct] [--array-size 64] [--channels 7 --pool 8 --classes 13]
    amc cost network  {reference,cnn4,resnet18} [--array-size 128] [--inverse-every 10] [--classes 13 --study DIR]
    amc cost solve    --n 128 [--iterations 10 --slices 8]       one HP-INV solve against a GPU solve
    amc cost study    results/DIR                                priced operation counts of every record
    amc cost breakeven [--sizes ...] [--lambdas ...] [--levels ...]   digital/analog ratio map (--figure PATH)

Each prints a table (time, energy, split by component, ratios against the CPU measured here and the GPU model) and,
with --figure PATH, writes the stacked-bar figure. --json prints one JSON object instead of the table.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from amc.config import PRESETS, CircuitConfig
from amc.errors import InputError
from amc.cost.digital import GpuModel, gpu_kfac, gpu_solve, measure_cpu_kfac
from amc.cost.figure import plot_costs
from amc.cost.kfac import DEFAULT_LOOP_LAMBDA, REFERENCE_LOOP_LAMBDA, factor_settles, kfac_step_cost
from amc.cost.ledger import COMPONENTS, Cost, cost_of, direct_solve_cost, settle_of_size, solve_counts
from amc.cost.presets import HardwareCostModel
from amc.units import format_energy, format_time
from amc.cost.workloads import ARCHITECTURES, DATAFLOWS, Dataflow, LayerFactors, factor_counts, reference_cnn

USAGE = __doc__
fmt_time, fmt_energy = format_time, format_energy


def breakdown_line(cost: Cost) -> str:
    parts = [f"{c} {100 * cost.breakdown[c] / cost.energy_j:.1f}%" for c in COMPONENTS
             if cost.energy_j > 0 and cost.breakdown[c] > 0]
    return ", ".join(parts)


def _hw(args) -> HardwareCostModel:
    if getattr(args, "circuit_config", None):
        hw = HardwareCostModel.for_circuit(CircuitConfig.from_yaml(args.circuit_config))
    else:
        preset = getattr(args, "preset", None) or "rram-ic"
        hw = HardwareCostModel.for_circuit(preset)
    changes = {}
    if getattr(args, "adc_fom", None) is not None:
        import dataclasses
        changes["adc"] = dataclasses.replace(hw.adc, fom_j_per_step=args.adc_fom)
        changes["dac"] = dataclasses.replace(hw.dac, fom_j_per_step=args.adc_fom)
    if getattr(args, "pulses_per_cell", None) is not None:
        import dataclasses
        changes["write"] = dataclasses.replace(hw.write, pulses_per_cell=args.pulses_per_cell)
    return hw.replace(**changes) if changes else hw


POSITIVE_INTS = ("n", "k", "array_size", "iterations", "slices", "inverse_slices", "parallel_arrays", "channels",
                 "pool", "classes", "repeats", "inverse_every")
POSITIVE_FLOATS = ("lambda_min", "adc_fom", "pulses_per_cell")
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def _check_args(args) -> None:
    """Every number given is checked before any work (a bad --array-size fails at once, not after the CPU timing);
    an unset option stays None and takes its documented default."""
    for key in POSITIVE_INTS:
        value = getattr(args, key, None)
        if value is not None and value < 1:
            raise InputError(f"--{key.replace('_', '-')} must be a positive integer, got {value}")
    if getattr(args, "array_size", None) is not None and args.array_size < 2:
        raise InputError(f"--array-size must be at least 2 (rows of one array), got {args.array_size}")
    for key in POSITIVE_FLOATS:
        value = getattr(args, key, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"--{key.replace('_', '-')} must be a finite positive number, got {value}")
    figure = getattr(args, "figure", None)
    if figure:
        out = Path(figure)
        if out.suffix.lower() not in FIGURE_SUFFIXES:
            raise InputError(f"--figure {figure}: the file name must end in {', '.join(FIGURE_SUFFIXES)} "
                             "(the format follows the suffix)")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"--figure {figure}: directory {parent} does not exist")


def _gpu(args) -> GpuModel:
    return GpuModel.from_json(args.gpu_json) if getattr(args, "gpu_json", None) else GpuModel()


def _add_hw_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=sorted(PRESETS), help="circuit preset (default rram-ic)")
    src.add_argument("--config", dest="circuit_config", help="circuit YAML file")
    p.add_argument("--adc-fom", type=float, help="Walden FOM of ADC and DAC, J per conversion step (default 9.7e-15)")
    p.add_argument("--pulses-per-cell", type=float, help="write-verify pulses per cell (default 10)")
    p.add_argument("--gpu-json", help="GPU model/measurement JSON (benchmarks/bench_gpu_cholesky.py)")
    p.add_argument("--figure", help="write the stacked-bar figure here (.png)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _dataflow(args) -> Dataflow:
    return Dataflow(args.dataflow, iterations=args.iterations, slices=args.slices,
                    inverse_slices=args.inverse_slices)


def _add_dataflow_arguments(p: argparse.ArgumentParser, array_size: Optional[int], from_run: bool = False) -> None:
    """from_run: the defaults are the training run's own method (``_run_dataflow``), not fixed numbers."""
    run = " (default: the run's own)" if from_run else ""
    p.add_argument("--dataflow", choices=DATAFLOWS, default=None if from_run else "direct",
                   help=f"method priced{run or ' (default direct)'}")
    p.add_argument("--array-size", type=int, default=array_size,
                   help=f"rows of one array{run or f' (default {array_size})'}")
    p.add_argument("--iterations", type=int, default=None if from_run else 3,
                   help=f"hpinv/repast refinement iterations{run or ' (default 3)'}")
    p.add_argument("--slices", type=int, default=None if from_run else 6,
                   help=f"hpinv/repast residual MVM bit slices{run or ' (default 6)'}")
    p.add_argument("--inverse-slices", type=int, default=None if from_run else 6,
                   help="repast: bit slices of the stored inverse")
    p.add_argument("--layers-serial", action="store_true", help="layers take turns instead of working in parallel")
    p.add_argument("--parallel-arrays", type=int, default=1,
                   help="copies of each factor's arrays working at once (default 1)")


def _print_table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


# ---- circuit ------------------------------------------------------------------------------------------------
def circuit_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="amc cost circuit", description="Cost of a direct INV solve on one array.")
    _add_hw_arguments(p)
    p.add_argument("--matrix", help="H (.npy/.mtx/.csv/.txt): exact settle of the programmed array")
    p.add_argument("--rhs", help="g for --matrix (default: ones)")
    p.add_argument("--n", type=int, help="array size, with --lambda-min (closed form)")
    p.add_argument("--lambda-min", type=float, help="smallest eigenvalue of the loop matrix (closed form)")
    p.add_argument("--k", type=int, default=1, help="right-hand sides solved per programming (default 1)")
    args = p.parse_args(argv)
    _check_args(args)
    if args.matrix and (args.n is not None or args.lambda_min is not None):
        raise InputError("--n and --lambda-min describe an array without a matrix; with --matrix the size and "
                         "lambda_min come from H: give one or the other")
    if args.rhs and not args.matrix:
        raise InputError("--rhs goes with --matrix")
    if args.matrix and args.rhs and args.k != 1:
        raise InputError("--k counts right-hand sides of ones; with --rhs they are the columns of g")
    hw = _hw(args)
    if args.matrix:
        from amc.hw.mapping import validate_matrix, validate_rhs
        from amc.matrix_io import load_array
        h = validate_matrix(load_array(args.matrix, "matrix"))
        g = validate_rhs(load_array(args.rhs, "rhs"), h.shape[0]) if args.rhs else np.ones((h.shape[0], args.k))
        cost = direct_solve_cost(h, g, hw)
        what = f"matrix {args.matrix} (n = {h.shape[0]}, {g.reshape(h.shape[0], -1).shape[1]} right-hand sides)"
    else:
        if args.n is None or args.lambda_min is None:
            raise InputError("give --matrix FILE, or both --n and --lambda-min")
        settle = settle_of_size(args.n, args.lambda_min, hw)
        cost = cost_of(solve_counts(args.n, args.k), hw, n=args.n, settle=settle)
        what = (f"n = {args.n}, loop lambda_min = {args.lambda_min:g}, {args.k} right-hand sides (closed form, "
                f"settle band ±{hw.circuit.simulation.settle_tol * 100:g} %)")
    if args.json:
        print(json.dumps({"hardware": hw.describe(), "what": what, "cost": cost.to_dict(),
                          "time_breakdown": cost.time_breakdown}))
    else:
        print(hw.describe())
        print(f"direct INV solve, {what}: programming + settles")
        print(f"  time {fmt_time(cost.time_s)}, energy {fmt_energy(cost.energy_j)}")
        print("  energy: " + breakdown_line(cost))
        print("  time:   " + ", ".join(f"{k} {fmt_time(v)}" for k, v in cost.time_breakdown.items() if v > 0))
    if args.figure:
        plot_costs({"direct solve": cost}, args.figure, f"INV solve cost, preset {hw.name}", what)
        print(f"wrote {args.figure}")
    return 0


# ---- training -----------------------------------------------------------------------------------------------
def _training_layers(cfg) -> tuple[list[LayerFactors], int, int, int]:
    """The K-FAC factors of a training config (``training.config.Config``): layers, inverse_every, batch, images."""
    if cfg.optimizer.name != "kfac":
        raise InputError(f"optimizer {cfg.optimizer.name!r} has no K-FAC factors to cost; use a kfac config")
    # the classes the data will have: as set, else the synthetic alphabet or the 13-letter EMNIST subset
    classes = cfg.data.n_classes or (13 if cfg.data.source == "emnist" else 26)
    arch = getattr(cfg.model, "arch", "reference")
    if arch == "reference":
        layers = reference_cnn(channels=cfg.model.channels, pool=cfg.model.pool, kernel=cfg.model.kernel,
                               classes=int(classes))
    else:
        layers = ARCHITECTURES[arch](classes=int(classes))
    return layers, cfg.optimizer.inverse_every, cfg.train.batch_size, cfg.data.n_train


def _read_training_config(args):
    """The training config through the loader `amc train` uses (parsed and validated once, the same refusals),
    with --channels/--pool/--classes applied as overrides."""
    from training.config import load_config
    overrides = [f"model.{k}={getattr(args, k)}" for k in ("channels", "pool") if getattr(args, k) is not None]
    if args.classes is not None:
        overrides.append(f"data.n_classes={args.classes}")
    return load_config(args.config, overrides)


def _run_circuit(cfg) -> Optional[CircuitConfig]:
    """The circuit a training config simulates (optimizer.solver.circuit), or None for a digital config; read by
    the function the training solver reads it with."""
    solver = cfg.optimizer.solver
    if solver.backend != "circuit":
        return None
    from amc.protocol import circuit_from_spec
    return circuit_from_spec(solver.circuit, "optimizer.solver")


# the ledger's dataflow for each method a training run can simulate (amc/methods/config.py METHOD names)
_RUN_DATAFLOW = {"direct": "direct", "blockamc": "direct", "hp-inv": "hpinv", "repast": "repast"}


def _run_dataflow(cfg, args, layers) -> tuple[Dataflow, int, str]:
    """Priced = simulated: the dataflow, array size and controller of the run's own method; a flag that differs
    is priced as asked and the returned note says it is NOT the simulated one. A digital run (no method) takes
    the flags or their defaults (direct, 64-arrays, the analysing controller)."""
    solver = cfg.optimizer.solver
    largest = max(max(l.a_dim, l.g_dim) for l in layers)
    run, one_step = {}, {}       # one_step: what only a direct/blockamc dataflow prices (controller, couplings)
    if solver.backend == "circuit":
        from amc.methods import method_config
        m = method_config(solver.method, {}, "optimizer.solver.method")
        run["dataflow"] = _RUN_DATAFLOW[m.name]
        # direct holds each factor on one array of its own size; the others partition on array_size
        run["array_size"] = getattr(m, "array_size", None) or largest
        if m.name in ("hp-inv", "repast"):
            run.update(iterations=m.iterations, slices=m.mvm.slices, inverse_slices=m.mvm.slices)
        if m.name == "blockamc":
            one_step["coupling_slices"] = m.mvm.slices
        if getattr(m, "shift", None) == "verify":
            one_step["controller"] = "verify"
    defaults = dict(dataflow="direct", array_size=64, iterations=3, slices=6, inverse_slices=6)
    chosen, differs = {}, []
    for key, default in defaults.items():
        given = getattr(args, key)
        simulated = run.get(key)
        chosen[key] = given if given is not None else simulated if simulated is not None else default
        if given is not None and simulated is not None and given != simulated:
            differs.append(f"--{key.replace('_', '-')} {given} (the run simulated {simulated})")
    flow = Dataflow(chosen["dataflow"], iterations=chosen["iterations"], slices=chosen["slices"],
                    inverse_slices=chosen["inverse_slices"],
                    **(one_step if chosen["dataflow"] in ("direct", "blockamc") else {}))
    note = ("priced as simulated" if solver.backend == "circuit" and not differs
            else "digital config: dataflow from the flags" if solver.backend != "circuit"
            else "NOT the simulated method: " + ", ".join(differs))
    return flow, chosen["array_size"], note


def _priced_hw(cfg, args) -> tuple[HardwareCostModel, str]:
    """Priced = simulated: the run's own circuit (levels, op-amp, converter bits) unless --preset/--config override
    it, which the returned note says."""
    run = _run_circuit(cfg)
    overridden = bool(getattr(args, "preset", None) or getattr(args, "circuit_config", None))
    if run is not None and not overridden:
        hw = HardwareCostModel.for_circuit(run)
        io = run.io
        bits = {k: getattr(io, k) for k in ("adc_bits", "dac_bits") if getattr(io, k) is not None}
        hw = hw.replace(**bits) if bits else hw
        note = (f"circuit from the run ({run.name}, {run.device.levels or 'continuous'} levels); converters "
                + ("as simulated" if bits else f"{hw.adc_bits}-bit (ledger ASSUMPTION: the run reads its outputs at "
                                               f"full precision)"))
    else:
        hw = HardwareCostModel.for_circuit(args.circuit_config and CircuitConfig.from_yaml(args.circuit_config)
                                           or args.preset or "rram-ic")
        note = ("circuit overridden on the command line: NOT the simulated one" if run is not None
                else "digital config: circuit " + hw.name)
    changes = {}
    if args.adc_fom is not None:
        import dataclasses
        changes["adc"] = dataclasses.replace(hw.adc, fom_j_per_step=args.adc_fom)
        changes["dac"] = dataclasses.replace(hw.dac, fom_j_per_step=args.adc_fom)
    if args.pulses_per_cell is not None:
        import dataclasses
        changes["write"] = dataclasses.replace(hw.write, pulses_per_cell=args.pulses_per_cell)
    import dataclasses
    changes["static"] = dataclasses.replace(hw.static, policy=args.gating)
    changes["outputs_per_adc"] = args.columns_per_adc
    changes["double_buffered"] = args.double_buffered
    return hw.replace(**changes), note


def _check_study_arch(study, arch: str) -> None:
    """A study prices only the network it trained: its runs' model.arch must be the priced one."""
    trained = sorted(study["archs"])
    if trained != [arch]:
        raise InputError(f"the study trained model.arch {', '.join(trained)}, not {arch!r}: its lambda_min, settles "
                         f"and epochs belong to another network")


def _study_lambdas(layers, study) -> Optional[dict]:
    """Loop lambda_min per (layer, factor) from the study's measured geometric mean per factor size."""
    measured = study["analog"].lambda_by_size if study else {}
    if not measured:
        return None
    out = {}
    for l in layers:
        for kind, d in (("A", l.a_dim), ("G", l.g_dim)):
            if d not in measured:
                raise InputError(f"the study measured no loop lambda_min for factor size {d} ({l.name} {kind}): "
                                 f"it is not a run of this config")
            out[(l.name, kind)] = measured[d]
    return out


def _add_verdict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", help="finished training sweep (records.jsonl): measured lambda_min, settles and "
                                   "programmings per step, energy and time to target")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default="fp32",
                   help="equal-technology engine precision (default fp32)")
    p.add_argument("--engine-units", type=int, help="engine MAC units (default: the analog step's array columns)")
    p.add_argument("--gating", choices=("gated", "always-on"), default="gated", help="op-amp power policy")
    p.add_argument("--columns-per-adc", type=int, default=1, help="array columns sharing one ADC (default 1)")
    p.add_argument("--double-buffered", action="store_true", help="program a spare array set while one serves")


def training_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="amc cost training", description="K-FAC cost per step and per epoch, and with "
                                "--study to the target accuracy, against three digital baselines.")
    p.add_argument("config", help="training YAML (configs/train/*.yaml)")
    _add_hw_arguments(p)
    _add_dataflow_arguments(p, None, from_run=True)
    _add_verdict_arguments(p)
    p.add_argument("--channels", type=int, help="override model.channels")
    p.add_argument("--pool", type=int, help="override model.pool")
    p.add_argument("--classes", type=int, help="override the number of classes")
    p.add_argument("--repeats", type=int, default=5, help="CPU timing repeats (best of)")
    args = p.parse_args(argv)
    _check_args(args)
    from amc.cost.node import DigitalNode
    from amc.cost.to_target import CnnShape, LayeredCnnShape, read_study
    from amc.cost.verdict import verdict
    if args.columns_per_adc < 1 or args.repeats < 1 or (args.engine_units is not None and args.engine_units < 1):
        raise InputError("--columns-per-adc, --repeats and --engine-units must be positive integers")
    cfg = _read_training_config(args)
    layers, inverse_every, batch, n_train = _training_layers(cfg)
    hw, circuit_note = _priced_hw(cfg, args)
    flow, args.array_size, method_note = _run_dataflow(cfg, args, layers)
    study = read_study(args.study) if args.study else None
    if study is not None:
        _check_study_arch(study, getattr(cfg.model, "arch", "reference"))
    lambdas = _study_lambdas(layers, study)
    if lambdas is not None:
        lambda_note = "measured by the study's runs (geometric mean per factor)"
    elif [(l.a_dim, l.g_dim) for l in layers] == [(26, 7), (64, 13)]:
        lambdas, lambda_note = REFERENCE_LOOP_LAMBDA, "table (continuous-conductance factors, not this run's)"
    else:
        lambda_note = f"default {DEFAULT_LOOP_LAMBDA} (not measured)"
    scales = {}
    if study is not None and study["analog"].settles_per_step:
        plan = kfac_step_cost(layers, hw, flow, args.array_size, inverse_every, lambdas)
        scales["settle_scale"] = study["analog"].settles_per_step / plan.counts_per_step.inv_settles
        planned_prog = sum(factor_counts(d, 0, args.array_size, flow)[0].programmings
                           for l in layers for d in (l.a_dim, l.g_dim)) / inverse_every
        scales["programming_scale"] = study["analog"].programmings_per_step / planned_prog
    analog = kfac_step_cost(layers, hw, flow, args.array_size, inverse_every, lambdas, not args.layers_serial,
                            args.parallel_arrays, **scales)
    node = DigitalNode(precision=args.precision,
                       units=sum(analog.array_sizes) if args.engine_units is None else args.engine_units)
    if getattr(cfg.model, "arch", "reference") == "cnn4":
        shape = LayeredCnnShape.cnn4(classes=layers[-1].g_dim, batch=batch)
    else:
        shape = CnnShape(channels=layers[0].g_dim, pool=cfg.model.pool, kernel=cfg.model.kernel,
                         classes=layers[-1].g_dim, batch=batch)
    result = verdict(analog, layers, inverse_every, node, _gpu(args), hw.static.logic_leakage_fraction,
                     args.repeats, shape, study)
    entries = result["entries"]
    steps = math.ceil(n_train / batch)
    sizes = "; ".join(f"{l.name} A {l.a_dim}, G {l.g_dim}" for l in layers)
    conditions = (f"{flow.describe()}, arrays {args.array_size}x{args.array_size} (settle band "
                  f"±{hw.circuit.simulation.settle_tol * 100:g} %), inverse_every {inverse_every}, batch {batch}, "
                  f"{steps} steps/epoch; factors {sizes}; op-amps {hw.static.policy}, {hw.outputs_per_adc} "
                  f"column(s) per ADC{', double-buffered' if hw.double_buffered else ''}")
    reached_note = None
    if study is not None and study["analog"].runs and not study["analog"].reached:
        reached_note = f"this configuration did not reach the target: {study['analog'].describe()}"
    record = {"hardware": hw.describe(), "circuit": circuit_note, "method": method_note, "conditions": conditions,
              **entries,
              "engine": node.describe(), "per_step": analog.per_step.to_dict(),
              "per_step_time_breakdown": analog.per_step.time_breakdown,
              "inverse_update": analog.inverse_update.to_dict(), "per_epoch": analog.per_epoch(steps).to_dict(),
              "counts_per_step": analog.counts_per_step.to_dict(), "lambda_min": lambda_note,
              "lambda_min_used": {f"{k[0]} {k[1]}": v for k, v in lambdas.items()} if isinstance(lambdas, dict)
              else lambdas, "factor_settles": factor_settles(layers, hw, args.array_size, lambdas),
              "measured_over_planned": scales or None, "reached": reached_note,
              "cpu_per_step": entries["cpu"], "gpu_per_step": entries["gpu"]}
    if "study" in result:
        record["study"] = result["study"]
    if args.json:
        print(json.dumps(record))
    else:
        _print_training(record, entries, analog, hw, steps)
    if args.figure:
        plot_costs({f"analog {flow.name}": analog.per_step}, args.figure,
                   f"K-FAC cost per training step, preset {hw.name}", conditions,
                   {name: (e["time_s"], e["energy_j"]) for name, e in entries.items() if name != "analog"})
        print(f"wrote {args.figure}")
    return 0


def _settles_line(settles: dict) -> str:
    return "; ".join(f"{name} ({e['array']} rows, lambda_min {e['lambda_min']:.3g}) {fmt_time(e['settle_s'])} "
                     f"{fmt_energy(e['settle_j'])}" for name, e in settles.items())


def _print_training(record: dict, entries: dict, analog, hw, steps: int) -> None:
    print(hw.describe())
    print(record["circuit"] + "; method " + record["method"] + "; loop lambda_min: " + record["lambda_min"])
    print(record["conditions"])
    print(record["engine"])
    print("one INV settle per factor: " + _settles_line(record["factor_settles"]))
    a = entries["analog"]
    labels = {"analog": "analog", "digital_same_node": "digital, same node", "cpu": "CPU measured",
              "gpu": "GPU model (batched)"}
    rows = []
    for name, e in entries.items():
        area = "" if e.get("area_mm2") is None else f"{e['area_mm2']:.3g}"
        row = [labels[name], fmt_time(e["time_s"]), fmt_energy(e["energy_j"]), area,
               f"{e['time_s'] / a['time_s']:.3g}x", f"{e['energy_j'] / a['energy_j']:.3g}x"]
        if "energy_to_target_j" in e:
            row += ["—" if e["energy_to_target_j"] is None else fmt_energy(e["energy_to_target_j"]),
                    "—" if e["time_to_target_s"] is None else fmt_time(e["time_to_target_s"])]
        rows.append(tuple(row))
    header = ("per training step (K-FAC work)", "time", "energy", "area mm²", "time / analog", "energy / analog")
    if "study" in record:
        header += ("energy to target", "time to target")
    _print_table(rows, header)
    s = analog.per_step
    print("analog energy: " + breakdown_line(s))
    print("analog time:   " + ", ".join(f"{k} {fmt_time(v)}" for k, v in s.time_breakdown.items() if v > 0)
          + f" (critical path {fmt_time(s.time_s)})")
    print("analog area:   " + ", ".join(f"{k} {v:.3g} mm²" for k, v in a["area_breakdown_mm2"].items())
          + f"; TOPS/mm² (K-FAC flops the step stands in for): analog {a['tops_per_mm2']:.3g}, same-node engine "
            f"{entries['digital_same_node']['tops_per_mm2']:.3g}")
    print(f"one inverse update: {fmt_time(analog.inverse_update.time_s)}, "
          f"{fmt_energy(analog.inverse_update.energy_j)}; per epoch ({steps} steps): "
          f"{fmt_time(analog.per_epoch(steps).time_s)}, {fmt_energy(analog.per_epoch(steps).energy_j)}; "
          f"endurance cycles per cell and step {s.cell_cycles / max(2 * sum(n * n for n in analog.array_sizes), 1):.3g}")
    c = entries["cpu"]
    print(f"CPU: {c['cpu']}, {c['energy_from']}; float64 {fmt_time(c['float64_time_s'])}; Python dispatch floor "
          f"{fmt_time(c['dispatch_floor_s'])}; GPU: {entries['gpu']['gpu']} at {entries['gpu']['power_w']:g} W, "
          f"unbatched {fmt_time(entries['gpu']['unbatched_time_s'])}")
    if "study" in record:
        st = record["study"]
        print(f"study: analog {st['analog_runs']}; all-digital {st['digital_runs']}")
        for base, t in a["to_target_by_rest_baseline"].items():
            print(f"  analog + rest of step on {labels[base]}: preconditioner {100 * t['preconditioner_share_energy']:.2g} % "
                  f"of step energy, {100 * t['preconditioner_share_time']:.2g} % of step time")
        for name in ("digital_same_node", "cpu", "gpu"):
            e = entries[name]
            print(f"  {labels[name]}: preconditioner {100 * e['preconditioner_share_energy']:.2g} % of step energy, "
                  f"{100 * e['preconditioner_share_time']:.2g} % of step time")
    if record["reached"]:
        print("NOTE: " + record["reached"])


# ---- network: the larger-task table ---------------------------------------------------------------------------
def network_table(layers: list[LayerFactors], hw: HardwareCostModel, array_size: int, inverse_every: int,
                  flows: list[Dataflow], gpu: GpuModel, cpu_repeats: int = 3, lambdas=None,
                  parallel_arrays: int = 1, precision: str = "fp32", measure_cpu: bool = True) -> dict:
    from amc.cost.node import DigitalNode
    from amc.cost.verdict import engine_entry
    cpu = measure_cpu_kfac(layers, inverse_every, repeats=cpu_repeats) if measure_cpu else None
    g = gpu_kfac(layers, inverse_every, gpu)
    rows, areas, columns = {}, {}, 0
    for flow in flows:
        k = kfac_step_cost(layers, hw, flow, array_size, inverse_every, lambdas, parallel_arrays=parallel_arrays)
        rows[flow.describe()] = k.per_step
        areas[flow.describe()] = k.area_mm2
        columns = max(columns, sum(k.array_sizes))
    # the engine gets as many MAC units as the INV arrays have columns (the analog side's own digital units)
    node = DigitalNode(precision=precision, units=columns)
    engine = engine_entry(layers, inverse_every, node, hw.static.logic_leakage_fraction)
    return {"cpu": cpu, "gpu": g, "analog": rows, "area_mm2": areas, "engine": engine}


def network_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="amc cost network", description="K-FAC per step of a network, every dataflow, "
                                "against the CPU and the GPU model.")
    p.add_argument("network", choices=sorted(ARCHITECTURES))
    _add_hw_arguments(p)
    p.add_argument("--array-size", type=int, default=128)
    p.add_argument("--inverse-every", type=int, default=10)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--parallel-arrays", type=int, default=1,
                   help="copies of each factor's arrays working at once (default 1)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default="fp32",
                   help="equal-technology engine precision (default fp32)")
    p.add_argument("--gating", choices=("gated", "always-on"), default="gated", help="op-amp power policy")
    p.add_argument("--columns-per-adc", type=int, default=1, help="array columns sharing one ADC (default 1)")
    p.add_argument("--skip-cpu", action="store_true",
                   help="do not time the CPU (ResNet-18's inverse update is ~3e11 flops per variant timed)")
    p.add_argument("--lambda-min", type=float, default=None,
                   help=f"loop lambda_min of every factor (default: measured for 'reference', else "
                        f"{DEFAULT_LOOP_LAMBDA})")
    p.add_argument("--classes", type=int, default=None, help="classes of the last layer (default: the network's)")
    p.add_argument("--study", help="finished training sweep of this network (records.jsonl): every factor priced at "
                                   "the loop lambda_min its circuit runs measured, not an assumed one")
    args = p.parse_args(argv)
    _check_args(args)
    if args.columns_per_adc < 1:
        raise InputError(f"--columns-per-adc must be a positive integer, got {args.columns_per_adc}")
    if args.classes is not None and (args.classes < 2 or args.network == "reference"):
        raise InputError(f"--classes must be >= 2 and applies to cnn4 and resnet18 (reference: amc cost training), "
                         f"got {args.classes} for {args.network}")
    if args.study and args.lambda_min is not None:
        raise InputError("--study prices every factor at its measured lambda_min: give --study or --lambda-min")
    hw = _hw(args)
    import dataclasses
    hw = hw.replace(static=dataclasses.replace(hw.static, policy=args.gating), outputs_per_adc=args.columns_per_adc)
    layers = ARCHITECTURES[args.network](**({"classes": args.classes} if args.classes is not None else {}))
    lambdas = args.lambda_min if args.lambda_min is not None else (
        REFERENCE_LOOP_LAMBDA if args.network == "reference" else None)
    lambda_note = (f"loop lambda_min {args.lambda_min:g} for every factor (--lambda-min)" if args.lambda_min is not None
                   else "loop lambda_min: table (continuous-conductance factors)" if args.network == "reference"
                   else f"loop lambda_min {DEFAULT_LOOP_LAMBDA} for every factor: ASSUMED, not measured")
    if args.study:
        from amc.cost.to_target import read_study
        study = read_study(args.study)
        _check_study_arch(study, args.network)
        lambdas = _study_lambdas(layers, study)
        if lambdas is None:
            raise InputError(f"{args.study}: no circuit run in the study recorded a loop lambda_min")
        lambda_note = ("loop lambda_min measured by the study's circuit runs (geometric mean per factor): "
                       + ", ".join(f"{n} {k} {v:.3g}" for (n, k), v in lambdas.items()))
    flows = [Dataflow("direct"), Dataflow("hpinv", iterations=args.iterations, slices=args.slices),
             Dataflow("repast", iterations=args.iterations, slices=args.slices, inverse_slices=args.slices)]
    t = network_table(layers, hw, args.array_size, args.inverse_every, flows, _gpu(args), args.repeats, lambdas,
                      args.parallel_arrays, args.precision, not args.skip_cpu)
    cpu, gpu, eng = t["cpu"], t["gpu"], t["engine"]
    conditions = (f"{args.network}: {len(layers)} layers, largest factor {max(max(l.a_dim, l.g_dim) for l in layers)}; "
                  f"arrays {args.array_size}x{args.array_size} x {args.parallel_arrays} in parallel per factor, "
                  f"inverse_every {args.inverse_every}, settle band ±{hw.circuit.simulation.settle_tol * 100:g} %")
    if args.json:
        print(json.dumps({"hardware": hw.describe(), "conditions": conditions, "lambda_min": lambda_note,
                          "factor_settles": factor_settles(layers, hw, args.array_size, lambdas),
                          "lambda_min_used": {f"{k[0]} {k[1]}": v for k, v in lambdas.items()}
                          if isinstance(lambdas, dict) else lambdas,
                          "cpu_per_step": cpu.to_dict() if cpu else "not measured (--skip-cpu)",
                          "gpu_per_step": gpu.to_dict(), "digital_same_node_per_step": eng,
                          "analog_per_step": {k: {**v.to_dict(), "area_mm2": t["area_mm2"][k]}
                                              for k, v in t["analog"].items()}}))
    else:
        print(hw.describe())
        print(conditions)
        print(lambda_note)
        print("one INV settle per factor: " + _settles_line(factor_settles(layers, hw, args.array_size, lambdas)))
        na = "not measured"
        rows = [("CPU measured", fmt_time(cpu.time_s) if cpu else na, fmt_energy(cpu.energy_j) if cpu else na,
                 "", "", "", "", "", "", ""),
                ("GPU model (batched)", fmt_time(gpu.time_s), fmt_energy(gpu.energy_j), "", "", "", "", "", "", ""),
                (f"digital same node ({eng['precision']}, {eng['units']} MACs)", fmt_time(eng["time_s"]),
                 fmt_energy(eng["energy_j"]), f"{eng['area_mm2']:.3g}", "", "", "", "", "", "")]
        for name, c in t["analog"].items():
            rows.append((name, fmt_time(c.time_s), fmt_energy(c.energy_j), f"{t['area_mm2'][name]:.3g}",
                         f"{eng['time_s'] / c.time_s:.3g}x", f"{eng['energy_j'] / c.energy_j:.3g}x",
                         f"{cpu.time_s / c.time_s:.3g}x" if cpu else "—",
                         f"{cpu.energy_j / c.energy_j:.3g}x" if cpu else "—",
                         f"{gpu.time_s / c.time_s:.3g}x", f"{gpu.energy_j / c.energy_j:.3g}x"))
        _print_table(rows, ("per K-FAC step", "time", "energy", "area mm²", "throughput vs same node",
                            "energy vs same node", "throughput vs CPU", "energy vs CPU", "throughput vs GPU",
                            "energy vs GPU"))
        print((f"CPU: {cpu.detail['cpu']}, {cpu.detail['threads']} BLAS thread(s), {cpu.detail['energy_from']}"
               if cpu else "CPU: not measured (--skip-cpu)") + f"; GPU at {gpu.detail['power_w']:g} W")
        for name, c in t["analog"].items():
            print(f"{name}: " + breakdown_line(c))
    if args.figure:
        plot_costs({k.split(" (")[0].split(",")[0]: v for k, v in t["analog"].items()}, args.figure,
                   f"K-FAC per step, preset {hw.name}", conditions,
                   {**({"CPU (measured)": (cpu.time_s, cpu.energy_j)} if cpu else {}),
                    "GPU (model)": (gpu.time_s, gpu.energy_j), "same node": (eng["time_s"], eng["energy_j"])})
        print(f"wrote {args.figure}")
    return 0


# ---- one solve against the GPU (HP-INV's 128 x 128 claim) ----------------------------------------------------
def solve_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="amc cost solve", description="One n x n HP-INV solve (arrays already "
                                "programmed, as in a throughput comparison) against one GPU solve.")
    _add_hw_arguments(p)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--array-size", type=int, default=None, help="default: n (one array)")
    p.add_argument("--iterations", type=int, default=10, help="HP-INV iterations (24 bits in 9-10, Zuo et al.)")
    p.add_argument("--slices", type=int, default=8, help="MVM bit slices (8 x 3 bits = 24 bits)")
    p.add_argument("--lambda-min", type=float, default=DEFAULT_LOOP_LAMBDA)
    p.add_argument("--include-programming", action="store_true")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default="fp32",
                   help="equal-technology engine precision (default fp32: HP-INV's 24-bit answer)")
    args = p.parse_args(argv)
    _check_args(args)
    hw = _hw(args)
    size = args.array_size if args.array_size is not None else args.n
    flow = Dataflow("hpinv", iterations=args.iterations, slices=args.slices)
    setup, step = factor_counts(args.n, 1, size, flow)
    n_arr = min(args.n, size)
    settle = settle_of_size(n_arr, args.lambda_min, hw)
    counts = step + setup if args.include_programming else step
    cost = cost_of(counts, hw, n=n_arr, settle=settle)
    from amc.cost.ledger import static_cost
    from amc.cost.node import DigitalNode, solve_engine_cost
    t = cost.time_breakdown
    static_j, wake = static_cost([(n_arr, t["INV settles"] + t["MVM reads"] + t["conversions"], t["INV settles"])],
                                 cost.time_s, hw)
    cost = (cost + Cost.from_parts({"static": static_j}, {"wake-up": wake}))
    engine = solve_engine_cost(args.n, DigitalNode(precision=args.precision, units=n_arr))
    gpu = gpu_solve(args.n, _gpu(args))
    conditions = (f"n = {args.n}, arrays {size}, HP-INV {args.iterations} iterations x {args.slices} slices, "
                  f"loop lambda_min {args.lambda_min:g} (settle band ±{hw.circuit.simulation.settle_tol * 100:g} %), "
                  f"programming {'included' if args.include_programming else 'excluded'}")
    if args.json:
        print(json.dumps({"hardware": hw.describe(), "conditions": conditions, "analog": cost.to_dict(),
                          "time_breakdown": cost.time_breakdown, "gpu": gpu.to_dict(),
                          "digital_same_node": engine.to_dict(),
                          "throughput_ratio": gpu.time_s / cost.time_s, "energy_ratio": gpu.energy_j / cost.energy_j}))
    else:
        print(hw.describe())
        print(conditions)
        _print_table([("HP-INV (analog, static included)", fmt_time(cost.time_s), fmt_energy(cost.energy_j)),
                      (f"digital same node ({engine.detail['precision']}, {engine.detail['units']} MACs)",
                       fmt_time(engine.time_s), fmt_energy(engine.energy_j)),
                      ("GPU model", fmt_time(gpu.time_s), fmt_energy(gpu.energy_j))], ("one solve", "time", "energy"))
        print(f"against the same-node engine: throughput {engine.time_s / cost.time_s:.3g}x, energy "
              f"{engine.energy_j / cost.energy_j:.3g}x")
        print(f"throughput ratio (GPU time / analog time) {gpu.time_s / cost.time_s:.3g}x, energy ratio "
              f"{gpu.energy_j / cost.energy_j:.3g}x")
        print("analog energy: " + breakdown_line(cost))
        print("analog time:   " + ", ".join(f"{k} {fmt_time(v)}" for k, v in cost.time_breakdown.items() if v > 0))
    if args.figure:
        plot_costs({"HP-INV": cost}, args.figure, f"one {args.n}x{args.n} solve, preset {hw.name}", conditions,
                   {"GPU (model)": (gpu.time_s, gpu.energy_j)})
        print(f"wrote {args.figure}")
    return 0


# ---- a finished study ---------------------------------------------------------------------------------------
def study_records(path: Path) -> list[dict]:
    """The records of a study file, latest per id; a line that is not a record is an error naming its line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    latest: dict = {}
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):      # a last line cut short by a killed run: the sweep repairs it on resume
                continue
            raise InputError(f"{path}, line {number}: not a JSON record ({line[:40]!r}...); the file was damaged "
                             "or edited") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise InputError(f"{path}, line {number}: not a study record (no string 'id')")
        latest[record["id"]] = record
    return list(latest.values())


def study_main(argv: list[str]) -> int:
    from amc.record_schema import read_operations
    p = argparse.ArgumentParser(prog="amc cost study", description="Price the operation counts of a finished study.")
    p.add_argument("results", help="results directory holding records.jsonl")
    _add_hw_arguments(p)
    p.add_argument("--lambda-min", type=float, default=None,
                   help=f"loop lambda_min where a record has none (default {DEFAULT_LOOP_LAMBDA})")
    args = p.parse_args(argv)
    _check_args(args)
    directory = Path(args.results)
    if not directory.exists():
        raise InputError(f"{args.results}: no such directory, so no records.jsonl (give the results directory of a "
                         "sweep or training study)")
    if not directory.is_dir():
        raise InputError(f"{args.results}: not a directory (give the results directory of a sweep or training study)")
    path = directory / "records.jsonl"
    if not path.exists():
        raise InputError(f"{args.results}: no records.jsonl (is it a finished sweep/compare results directory?)")
    hw = _hw(args)
    rows, costs, out = [], {}, []
    skipped = {"not ok": 0, "no analog operations": 0}
    for record in study_records(path):
        if record.get("status") != "ok":
            skipped["not ok"] += 1
            continue
        priced = read_operations(record.get("metrics") or {}, f"{path}, record {record['id']}")
        if priced is None:
            skipped["no analog operations"] += 1
            continue
        counts, a, lam = priced
        if not (counts.inv_settles or counts.mvm_reads or counts.programmings):
            skipped["no analog operations"] += 1
            continue
        lam_used = lam or args.lambda_min or DEFAULT_LOOP_LAMBDA
        settle = settle_of_size(a, lam_used, hw) if counts.inv_settles else None
        cost = cost_of(counts, hw, n=a, settle=settle)
        rows.append((record["id"], a, counts.programmings, counts.inv_settles, counts.mvm_reads,
                     f"{lam_used:.3g}" + ("" if lam else " (default)"), fmt_time(cost.time_s),
                     fmt_energy(cost.energy_j)))
        costs[str(record["id"])] = cost
        out.append({"id": record["id"], "array_n": a, "lambda_min": lam_used, "lambda_min_measured": lam is not None,
                    "cost": cost.to_dict()})
    if not rows:
        raise InputError(f"{path}: no finished records with analog operation counts to price "
                         f"({skipped['not ok']} not ok, {skipped['no analog operations']} digital or without counts)")
    note = ", ".join(f"{v} {k}" for k, v in skipped.items() if v)
    if args.json:
        print(json.dumps({"hardware": hw.describe(), "records": out, "skipped": skipped}))
    else:
        print(hw.describe())
        _print_table(rows, ("record", "array", "programmings", "INV settles", "MVM reads", "loop lambda_min",
                            "time", "energy"))
        if note:
            print(f"not priced: {note}")
    if args.figure:
        first = dict(list(costs.items())[:12])
        plot_costs(first, args.figure, f"study {directory.name}, preset {hw.name}",
                   "operation counts read from records.jsonl" + (f"; first 12 of {len(costs)}" if len(costs) > 12
                                                                  else ""))
        print(f"wrote {args.figure}")
    return 0


# ---- break-even map ------------------------------------------------------------------------------------------
def breakeven_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="amc cost breakeven", description="Digital/analog time and energy ratio of one "
                                "square layer's K-FAC work against factor size, loop lambda_min and levels.")
    _add_hw_arguments(p)
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512, 1024])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0])
    p.add_argument("--levels", type=int, nargs="+", default=[8, 16, 64])
    p.add_argument("--array-size", type=int, default=128)
    p.add_argument("--inverse-every", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2, help="CPU timing repeats (best of)")
    p.add_argument("--gating", choices=("gated", "always-on"), default="gated", help="op-amp power policy")
    args = p.parse_args(argv)
    from amc.cost.breakeven import breakeven_grid, plot_breakeven
    import dataclasses
    if args.array_size < 2 or args.inverse_every < 1 or args.repeats < 1:
        raise InputError("--array-size must be >= 2, --inverse-every and --repeats positive integers")
    hw = _hw(args)
    hw = hw.replace(static=dataclasses.replace(hw.static, policy=args.gating))
    rows = breakeven_grid(args.sizes, args.lambdas, args.levels, hw, _gpu(args), args.array_size,
                          args.inverse_every, args.repeats)
    conditions = (f"one square layer (A, G both d x d), one-step INV on {args.array_size}-arrays (BlockAMC above), "
                  f"inverse_every {args.inverse_every}, op-amps {args.gating}; engine FP32 with the analog side's "
                  f"column count of MAC units; CPU measured here (float32); GPU model batched at "
                  f"{_gpu(args).power_w:g} W")
    if args.json:
        print(json.dumps({"hardware": hw.describe(), "conditions": conditions, "rows": rows}))
    else:
        print(hw.describe())
        print(conditions)
        table = [(r["size"], f"{r['lambda_min']:g}", r["levels"], fmt_time(r["analog_time_s"]),
                  fmt_energy(r["analog_energy_j"]),
                  *(f"{r[f'{b}_time_ratio']:.3g}x / {r[f'{b}_energy_ratio']:.3g}x"
                    for b in ("digital_same_node", "cpu", "gpu"))) for r in rows]
        _print_table(table, ("d", "λ_min", "levels", "analog time", "analog energy",
                             "same node: time / energy ratio", "CPU: time / energy", "GPU: time / energy"))
    if args.figure:
        level = 16 if 16 in args.levels else args.levels[0]
        plot_breakeven(rows, args.figure, level, conditions)
        print(f"wrote {args.figure}")
    return 0


COMMANDS = {"circuit": circuit_main, "training": training_main, "network": network_main, "solve": solve_main,
            "study": study_main, "breakeven": breakeven_main}


def cost_main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] not in COMMANDS:
        from amc.cli import suggestion
        raise InputError(f"unknown cost command {argv[0]!r}{suggestion(argv[0], COMMANDS)}; use one of "
                         f"{', '.join(COMMANDS)}")
    return COMMANDS[argv[0]](argv[1:])
