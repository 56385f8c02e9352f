"""Sweep files: strict loading, grid expansion and stable point ids.

A sweep file (``configs/sweeps/*.yaml``)::

    name: levels_gain              # optional (default: the file's stem); names the results directory
    kind: circuit                  # circuit (default) | training | analog (weights on pulsed tiles)
    description: what it shows     # optional, printed by --dry-run and kept with the results
    base:
      circuit: rram                # preset name, a circuit YAML path, or a mapping ({preset: rram, device: {...}})
      matrix: {n: 16, kind: spd, condition: 10, seed: 0}     # circuit points: the test matrix (workflow.matrices)
      solve: {transient: false}    # circuit points: also run .tran (settling time, energy)
      training: {...}              # training points: options of the training run (training/loop.py)
      analog: {...}                # analog points: analog weight updates (training/analog/config.py)
      seed: 0                      # Monte Carlo seed: device draws (device.seed) and the training run
    grid:                          # lists of values for dotted keys, expanded as a Cartesian product
      device.levels: [4, 8, 16, 64]
      opamp.gain: [1e3, 1e4, 1e5]
    points:                        # optional explicit points (dotted key -> value), added after the grid
      - {device.levels: null, opamp.gain: 1e12}
    timeout_s: 300                 # per point; a point over it is recorded as failed
    plots: [error_vs_levels]       # optional: which figures `amc plot` draws (default: chosen from the keys)

A grid key may tie several dotted keys to one list (``"wires.row_ohm,wires.col_ohm": [0, 1, 2]``).
Dotted keys: ``device.* opamp.* inverter.* wires.* io.* simulation.*`` (and ``circuit.preset``) address the
circuit configuration; ``matrix.*``, ``solve.*`` and ``training.*`` their sections; ``seed`` the Monte Carlo seed.
Every point is validated before any runs: an unknown key, an empty list, a value of the wrong type or a missing
path raises :class:`amc.errors.ConfigError` naming the key and the file.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional


from amc.config import OPAMP_PRESETS, PRESETS, SECTIONS, CircuitConfig
from amc.errors import ConfigError
from amc.schema import suggest
from amc.yamlio import read_yaml_mapping

from .matrices import validate_matrix_spec

TOP_KEYS = ("name", "kind", "description", "base", "grid", "points", "timeout_s", "plots")
BASE_KEYS = ("circuit", "matrix", "solve", "training", "analog", "seed")
KINDS = ("circuit", "training", "analog")
SOLVE_DEFAULTS: dict[str, Any] = {"transient": False, "op": True, "backend": "circuit", "method": "direct",
                                  "array_size": None, "iterations": None, "options": {}}
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Point:
    """One sweep point: its stable id, the swept values (flat, normalised) and the complete spec a worker runs."""

    id: str
    kind: str
    params: dict
    spec: dict = field(repr=False)
    index: int = 0

    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.params.items()) or "(base)"

    def payload(self, timeout_s: float) -> dict:
        """What a worker process receives: plain data only (picklable, JSON-able)."""
        return {"id": self.id, "kind": self.kind, "params": self.params, "spec": self.spec, "timeout_s": timeout_s}


@dataclass
class Sweep:
    name: str
    kind: str
    path: Optional[Path]
    description: str
    points: list[Point]
    grid_keys: list[str]
    timeout_s: float
    plots: Optional[list[str]]
    raw: dict
    notes: list = field(default_factory=list)   # swept keys that override a value the base wrote explicitly

    def __len__(self) -> int:
        return len(self.points)


# ---- loading -----------------------------------------------------------------------------------
def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    data = read_yaml_mapping(path, what="sweep file")
    return build_sweep(data, source=str(path), base_dir=path.parent, default_name=path.stem, path=path)


def build_sweep(data: Mapping[str, Any], source: str = "sweep", base_dir: Optional[Path] = None,
                default_name: str = "sweep", path: Optional[Path] = None) -> Sweep:
    """Validate a sweep mapping and expand it into points (see the module docstring for the format)."""
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}{suggest(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}")
    kind = data.get("kind", "circuit")
    if kind not in KINDS:
        raise ConfigError(f"{source}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if data.get("name") is not None and not isinstance(data.get("name"), str):
        raise ConfigError(f"{source}: name must be a string, got {data.get('name')!r}")
    name = str(data.get("name") or default_name)
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"{source}: name {name!r} must use letters, digits, '-', '_' or '.' only")
    timeout = data.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, str)):
        raise ConfigError(f"{source}: timeout_s must be a positive number of seconds, got {timeout!r}")
    try:
        timeout = float(timeout)
    except ValueError:
        raise ConfigError(f"{source}: timeout_s must be a positive number of seconds, got {timeout!r}") from None
    if not timeout > 0 or not math.isfinite(timeout):
        raise ConfigError(f"{source}: timeout_s must be a positive number of seconds, got {timeout!r}")
    plots = data.get("plots")
    if plots is not None:
        if not isinstance(plots, list) or not all(isinstance(p, str) for p in plots):
            raise ConfigError(f"{source}: plots must be a list of figure names, got {plots!r}")
        from .plots import FIGURES
        for p in plots:
            if p not in FIGURES:
                raise ConfigError(f"{source}: plots: unknown figure {p!r}; known: {', '.join(sorted(FIGURES))}")

    base = _resolve_base(data.get("base") or {}, kind, source, base_dir)
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{source}: grid must be a mapping of dotted key -> list of values, got {grid!r}")
    explicit = data.get("points") or []
    if not isinstance(explicit, list):
        raise ConfigError(f"{source}: points must be a list of mappings (dotted key -> value), got {explicit!r}")
    if not grid and not explicit:
        raise ConfigError(f"{source}: empty grid: give at least one grid key with a list of values, or points")
    # An error the base gives on its own belongs to the base, not to whichever grid key is checked first.
    try:
        _make_point(base, {}, kind, f"{source}: base")
        base_error = None
    except ConfigError as exc:
        base_error = str(exc).replace(f"{source}: base", "", 1)
    for key, values in grid.items():
        where = f"{source}: grid key {key!r}"
        for part in _tied(str(key)):
            _check_key(part, kind, where)
        if not isinstance(values, list):
            raise ConfigError(f"{where}: expected a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"{where}: empty list of values (the grid would have no points)")
        for value in values:  # each value alone on the base: errors name the key that carries them
            try:
                _make_point(base, {str(key): value}, kind, where)
            except ConfigError as exc:
                if base_error is not None and str(exc).replace(where, "", 1) == base_error:
                    raise ConfigError(f"{source}: base{base_error}") from None
                raise
    combos: list[tuple[dict, str]] = []
    keys = [str(k) for k in grid]
    if keys:
        for values in itertools.product(*(grid[k] for k in keys)):
            combos.append((dict(zip(keys, values)), f"{source}: grid point"))
    for i, point in enumerate(explicit):
        where = f"{source}: points[{i}]"
        if not isinstance(point, Mapping) or not point:
            raise ConfigError(f"{where}: expected a non-empty mapping of dotted key -> value, got {point!r}")
        for key in point:
            for part in _tied(str(key)):
                _check_key(part, kind, f"{where} key {key!r}")
        combos.append(({str(k): v for k, v in point.items()}, where))

    points: list[Point] = []
    seen: set[str] = set()
    for overrides, where in combos:
        pt = _make_point(base, overrides, kind, f"{where} {_describe(overrides)}")
        if pt.id in seen:
            continue
        seen.add(pt.id)
        points.append(Point(id=pt.id, kind=pt.kind, params=pt.params, spec=pt.spec, index=len(points)))
    all_keys = list(dict.fromkeys(part for k in keys + [k for o, _ in combos for k in o] for part in _tied(k)))
    return Sweep(name=name, kind=kind, path=path, description=str(data.get("description") or "").strip(),
                 points=points, grid_keys=all_keys, timeout_s=timeout, plots=plots, raw=dict(data),
                 notes=_overridden(data.get("base") or {}, all_keys))


def _overridden(base: Mapping, keys: list[str]) -> list[str]:
    """Swept keys whose value the base wrote explicitly: the sweep replaces it, and says so."""
    notes = []
    for key in keys:
        if key == "seed":
            path = ["seed"]
        elif key.split(".")[0] in ("matrix", "solve", "training", "analog"):
            path = key.split(".")
        else:                                   # a circuit key (device.levels, opamp.gain, ...)
            circuit = base.get("circuit")
            if not isinstance(circuit, Mapping):
                continue
            path = ["circuit"] + key.split(".")
        node: Any = base
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            notes.append(f"{key} is swept: it replaces the value the base sets explicitly "
                         f"(base.{'.'.join(path)} = {node!r})")
    return notes


# ---- internals ---------------------------------------------------------------------------------
def _resolve_base(base: Any, kind: str, source: str, base_dir: Optional[Path]) -> dict:
    if not isinstance(base, Mapping):
        raise ConfigError(f"{source}: base must be a mapping, got {base!r}")
    for key in base:
        if key not in BASE_KEYS:
            raise ConfigError(f"{source}: unknown key 'base.{key}'{suggest(key, BASE_KEYS)}; allowed: {', '.join('base.' + k for k in BASE_KEYS)}")
    circuit = base.get("circuit", "rram")
    if isinstance(circuit, str):
        looks_like_path = circuit.endswith((".yaml", ".yml")) or "/" in circuit
        if looks_like_path:
            candidates = [Path(circuit)] + ([base_dir / circuit] if base_dir is not None else [])
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise ConfigError(f"{source}: base.circuit: file not found: {circuit}")
            try:
                circuit = read_yaml_mapping(found)
            except ConfigError as exc:
                raise ConfigError(f"{source}: base.circuit: {exc}") from None
        elif circuit in PRESETS:
            circuit = {"preset": circuit}
        else:
            raise ConfigError(f"{source}: base.circuit: unknown preset {circuit!r} (known: {', '.join(sorted(PRESETS))}) "
                              "and not a path to a .yaml file")
    elif not isinstance(circuit, Mapping):
        raise ConfigError(f"{source}: base.circuit must be a preset name, a path or a mapping, got {circuit!r}")
    solve = base.get("solve") or {}
    if not isinstance(solve, Mapping):
        raise ConfigError(f"{source}: base.solve must be a mapping, got {solve!r}")
    training = base.get("training") or {}
    if not isinstance(training, Mapping):
        raise ConfigError(f"{source}: base.training must be a mapping, got {training!r}")
    analog = base.get("analog") or {}
    if not isinstance(analog, Mapping):
        raise ConfigError(f"{source}: base.analog must be a mapping, got {analog!r}")
    return {"circuit": copy.deepcopy(dict(circuit)), "matrix": dict(base.get("matrix") or {}),
            "solve": dict(solve), "training": copy.deepcopy(dict(training)), "analog": copy.deepcopy(dict(analog)),
            "seed": base.get("seed")}


def _tied(key: str) -> list[str]:
    """``"wires.row_ohm,wires.col_ohm"`` sweeps several keys together (one value for all)."""
    return [part.strip() for part in key.split(",") if part.strip()] or [key]


def _section_of(key: str) -> tuple[str, str]:
    """Split a dotted grid key into (section of the point spec, rest)."""
    if key == "seed":
        return "seed", ""
    head, _, rest = key.partition(".")
    if head == "circuit":
        return "circuit", rest
    if head in SECTIONS or head == "name":
        return "circuit", key
    if head in ("matrix", "solve", "training", "analog"):
        return head, rest
    return "", key


def _check_key(key: str, kind: str, where: str) -> None:
    section, rest = _section_of(key)
    if not section:
        heads = sorted(SECTIONS) + ["circuit", "matrix", "solve", "training", "seed"]
        raise ConfigError(f"{where}: unknown key {key!r}{suggest(key.partition('.')[0], heads)}: a key starts with one of "
                          f"{', '.join(sorted(SECTIONS))}, circuit, matrix, solve, training or is 'seed'")
    if section in ("matrix", "solve", "training", "analog", "circuit") and not rest and key != "name":
        raise ConfigError(f"{where}: key {key!r} needs a field after the dot (e.g. matrix.n)")
    if section == "matrix" and kind != "circuit":
        raise ConfigError(f"{where}: key {key!r}: matrix.* applies to circuit sweeps only (this sweep is kind {kind})")
    if section == "analog" and kind != "analog":
        raise ConfigError(f"{where}: key {key!r}: analog.* applies to analog sweeps only (this sweep is kind {kind})")
    if section == "solve" and rest not in SOLVE_DEFAULTS:
        raise ConfigError(f"{where}: unknown key {key!r}{suggest(rest, SOLVE_DEFAULTS)}; allowed: "
                          f"{', '.join('solve.' + k for k in SOLVE_DEFAULTS)}")


def _set_nested(tree: dict, dotted: str, value: Any, where: str) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, str) and part == "opamp":  # an op-amp preset name: expand it to override a field
            if child not in OPAMP_PRESETS:
                raise ConfigError(f"{where}: unknown op-amp preset {child!r}")
            child = dict(OPAMP_PRESETS[child])
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: cannot set {dotted!r}: {part!r} is {child!r}, not a mapping")
        node[part] = child = dict(child)
        node = child
    node[parts[-1]] = value


def _get_nested(tree: Mapping, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _make_point(base: dict, overrides: Mapping[str, Any], kind: str, where: str) -> Point:
    spec = copy.deepcopy(base)
    overrides = {part: value for key, value in overrides.items() for part in _tied(key)}
    for key, value in overrides.items():
        section, rest = _section_of(key)
        if section == "seed":
            spec["seed"] = value
        elif section == "circuit":
            _set_nested(spec["circuit"], rest, value, where)
        else:
            _set_nested(spec[section], rest, value, where)
    # seed -> device draws
    seed = spec.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{where}: seed must be a non-negative integer, got {seed!r}")
        _set_nested(spec["circuit"], "device.seed", seed, where)
    config = CircuitConfig.from_dict(spec["circuit"], source=where)
    resolved: dict[str, Any] = {"kind": kind, "circuit": config.to_dict(), "seed": seed}
    if kind == "circuit":
        resolved["matrix"] = validate_matrix_spec(spec["matrix"], where)
        solve = {**SOLVE_DEFAULTS, **spec["solve"]}
        for key in ("transient", "op"):
            if not isinstance(solve[key], bool):
                raise ConfigError(f"{where}: solve.{key} must be true or false, got {solve[key]!r}")
        if solve["backend"] not in ("circuit", "numpy"):
            raise ConfigError(f"{where}: solve.backend must be 'circuit' or 'numpy', got {solve['backend']!r}")
        if not isinstance(solve["options"], dict):
            raise ConfigError(f"{where}: solve.options must be a mapping of method options, got {solve['options']!r}")
        from amc.methods import method_config
        options = dict(solve["options"])
        for key in ("array_size", "iterations"):
            if solve[key] is not None:
                options[key] = solve[key]
        method_config(solve["method"], options, source=f"{where}: solve.method")   # unknown / no-effect keys
        for key in ("array_size", "iterations"):
            if solve[key] is not None and (isinstance(solve[key], bool) or not isinstance(solve[key], int)):
                raise ConfigError(f"{where}: solve.{key} must be an integer or null, got {solve[key]!r}")
        if not (solve["op"] or solve["transient"]):
            raise ConfigError(f"{where}: solve.op and solve.transient are both false: nothing to run")
        if solve["transient"] and config.opamp.gbw_hz is None:
            raise ConfigError(f"{where}: solve.transient needs opamp.gbw_hz (op-amp {config.opamp.name!r} has no pole)")
        resolved["solve"] = solve
    elif kind == "analog":
        from .points import validate_analog
        resolved["analog"] = validate_analog(spec["analog"], where)
    else:
        from .points import validate_training
        resolved["training"] = validate_training(spec["training"], where)
    params: dict[str, Any] = {}
    for key in overrides:
        section, rest = _section_of(key)
        if section == "seed":
            params[key] = seed
        elif section == "circuit":
            value = _get_nested(resolved["circuit"], rest)
            # a preset name (circuit.preset, opamp: NAME) is shown as given, not as the section it expands to
            params[key] = overrides[key] if rest == "preset" or isinstance(value, dict) else value
        elif section == "matrix":
            params[key] = resolved["matrix"].get(rest)
        elif section == "solve":
            params[key] = resolved["solve"].get(rest)
        elif section == "analog":
            value = _get_nested(resolved["analog"], rest)
            params[key] = overrides[key] if value is None else value
        else:
            value = _get_nested(resolved["training"], rest)
            params[key] = overrides[key] if value is None else value
    digest = hashlib.sha1(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Point(id=digest, kind=kind, params=params, spec=resolved)


def _describe(overrides: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in overrides.items()) + "}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
