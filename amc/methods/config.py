"""Typed solve-method configuration: one spelling in Python, YAML and the CLI, named presets, strict keys.

    MethodConfig.preset("hpinv-pcg").replace(iterations=3)
    MethodConfig.from_spec({"preset": "hpinv-pcg", "iterations": 3, "mvm": {"slices": 6}}, source="run.yaml")
    MethodConfig.from_spec("direct")

A key that is unknown, or that the chosen method does not use, is an error naming the key and the source: a
refinement option under ``direct`` would otherwise be silently ignored and the result mislabelled.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional, Union

from amc import schema
from amc.errors import ConfigError

METHOD_NAMES = ("direct", "hp-inv", "blockamc", "repast")
REFINEMENTS = ("richardson", "pcg")
OPERATORS = ("per-solve", "extracted")
PRECONDITIONERS = ("analog", "identity")
MVM_RESPONSES = ("circuit", "closed-form")
SHIFT_COMPENSATIONS = ("none", "mvm")


@dataclass(frozen=True)
class MVMSection:
    """The bit-sliced analog MVM arrays (HP-INV residuals, BlockAMC couplings, RePAST's programmed inverse)."""

    slices: int = 8                        # bit slices of the matrix (3 bits each on 8-level cells)
    bits_per_slice: Optional[int] = None   # None: log2(levels)
    input_slices: int = 1                  # DAC bit slices of the input vector (finite dac_bits only)
    adc_bits: Optional[int] = None         # None: ideal readout
    dac_bits: Optional[int] = None
    array_size: Optional[int] = None       # tile the matrix into arrays of at most this size
    response: str = "circuit"              # extracted operators: ngspice (batch or re-stamped) | closed form
    gain_calibration: bool = True          # trim of the TIAs' finite-gain error
    target_swing: float = 0.1              # TIA output at the worst-case input, fraction of the swing

    def validate(self, where: str) -> None:
        _int(self.slices, f"{where}.slices", 1)
        _int(self.input_slices, f"{where}.input_slices", 1)
        for key in ("bits_per_slice", "adc_bits", "dac_bits", "array_size"):
            if getattr(self, key) is not None:
                _int(getattr(self, key), f"{where}.{key}", 1)
        _choice(self.response, MVM_RESPONSES, f"{where}.response")
        if not isinstance(self.gain_calibration, bool):
            raise ConfigError(f"{where}.gain_calibration must be true or false, got {self.gain_calibration!r}")
        if not (isinstance(self.target_swing, (int, float)) and 0 < self.target_swing < 1):
            raise ConfigError(f"{where}.target_swing must be in (0, 1), got {self.target_swing!r}")


@dataclass(frozen=True)
class MethodConfig:
    name: str = "direct"                   # direct | hp-inv | blockamc | repast
    refinement: str = "richardson"         # hp-inv, repast: richardson | pcg
    iterations: int = 10                   # hp-inv: passes; repast: refinement passes computing the inverse
    tol: Optional[float] = None            # hp-inv: stop once the measured residual is below it
    preconditioner: str = "analog"         # hp-inv: analog INV | identity (the control: no analog INV)
    shift: Union[None, float, str] = None  # diagonal shift of the INV matrix: null | mu | auto | verify (direct,
    #                                        blockamc: the read-verified controller on every INV leaf)
    shift_margin: float = 0.02
    # direct, shift 'verify': how an applied shift is compensated. none: kept as extra damping (the deliberate bias
    # is reported); mvm: one refinement step whose residual is an MVM read of the same cells (counted)
    shift_compensation: str = "none"
    equilibrate: Optional[bool] = None     # Jacobi scaling by the periphery; None: the circuit's io.equilibrate
    #                                        (blockamc, true: D H D before partitioning, and every leaf equilibrated)
    array_size: Optional[int] = None       # largest array (INV blocks, BlockAMC partition)
    operators: str = "per-solve"           # per-solve: every settle in ngspice | extracted: measured response
    check_convergence: bool = True         # upfront stability / convergence checks
    divergence_factor: float = 2.0         # hp-inv richardson: stop when the residual grows by this factor
    scale_residual: bool = True            # hp-inv: each INV pass uses the full input range
    cache_size: int = 64                   # programmed systems kept (one array set / block tree per distinct matrix)
    mvm: MVMSection = field(default_factory=MVMSection)

    # keys (besides name) each method uses; anything else set by the user is an error
    USES = {
        "direct": {"equilibrate", "shift", "shift_margin", "shift_compensation", "array_size", "operators",
                   "cache_size"},
        "hp-inv": {"refinement", "iterations", "tol", "preconditioner", "shift", "shift_margin", "equilibrate",
                   "array_size", "operators", "check_convergence", "divergence_factor", "scale_residual",
                   "cache_size", "mvm"},
        "blockamc": {"array_size", "check_convergence", "mvm", "operators", "shift", "shift_margin", "equilibrate",
                     "cache_size"},
        "repast": {"refinement", "iterations", "shift", "shift_margin", "equilibrate", "operators",
                   "check_convergence", "cache_size", "mvm"},
    }

    def validate(self, where: str = "method") -> None:
        _choice(self.name, METHOD_NAMES, f"{where}.name")
        _choice(self.refinement, REFINEMENTS, f"{where}.refinement")
        _int(self.iterations, f"{where}.iterations", 0 if self.name == "repast" else 1)
        if self.tol is not None and not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ConfigError(f"{where}.tol must be a positive number or null, got {self.tol!r}")
        _choice(self.preconditioner, PRECONDITIONERS, f"{where}.preconditioner")
        if self.shift == "verify" and self.name not in ("direct", "blockamc"):
            raise ConfigError(f"{where}.shift 'verify' (the read-verified controller) is a 'direct' and 'blockamc' "
                              f"recipe; method {self.name!r} takes null, a number or 'auto'")
        if self.name == "blockamc" and self.shift not in (None, "verify"):
            raise ConfigError(f"{where}.shift for method 'blockamc' is null or 'verify' (the read-verified "
                              f"controller on every INV leaf), got {self.shift!r}")
        if self.shift is not None and self.shift not in ("auto", "verify") and (
                isinstance(self.shift, bool) or not isinstance(self.shift, (int, float)) or self.shift < 0):
            raise ConfigError(f"{where}.shift must be null, a non-negative number, 'auto' or 'verify', "
                              f"got {self.shift!r}")
        _choice(self.shift_compensation, SHIFT_COMPENSATIONS, f"{where}.shift_compensation")
        if self.shift_compensation != "none" and self.shift != "verify":
            raise ConfigError(f"{where}.shift_compensation {self.shift_compensation!r} needs shift 'verify' "
                              f"(got shift {self.shift!r})")
        if not (isinstance(self.shift_margin, (int, float)) and 0 < self.shift_margin < 1):
            raise ConfigError(f"{where}.shift_margin must be in (0, 1), got {self.shift_margin!r}")
        if self.equilibrate is not None and not isinstance(self.equilibrate, bool):
            raise ConfigError(f"{where}.equilibrate must be true, false or null, got {self.equilibrate!r}")
        if self.array_size is not None:
            _int(self.array_size, f"{where}.array_size", 2)
        _choice(self.operators, OPERATORS, f"{where}.operators")
        _int(self.cache_size, f"{where}.cache_size", 1)
        if not (isinstance(self.divergence_factor, (int, float)) and self.divergence_factor > 1):
            raise ConfigError(f"{where}.divergence_factor must exceed 1, got {self.divergence_factor!r}")
        self.mvm.validate(f"{where}.mvm")

    @property
    def label(self) -> str:
        """A short name for tables and figures, e.g. 'hp-inv pcg k=3 (identity control)'."""
        if self.name == "direct":
            return "direct (one-step INV)"
        if self.name == "hp-inv":
            control = " (identity control)" if self.preconditioner == "identity" else ""
            return f"hp-inv {self.refinement} k={self.iterations}{control}"
        if self.name == "repast":
            return f"repast k={self.iterations}"
        return f"blockamc {self.array_size or 32}"

    def __repr__(self) -> str:
        used = self.USES[self.name]
        default = MethodConfig(name=self.name)
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                   if f.name in used and f.name != "mvm" and getattr(self, f.name) != getattr(default, f.name)]
        if "mvm" in used and self.mvm != default.mvm:
            changed.append(f"mvm({', '.join(f'{k}={v!r}' for k, v in _changed(self.mvm, MVMSection()).items())})")
        return f"MethodConfig({self.name}{': ' if changed else ''}{', '.join(changed)})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "MethodConfig":
        """A copy with fields changed; ``mvm`` takes a mapping of MVM fields (or use ``"mvm.slices"`` keys)."""
        data = self.to_dict()
        for key, value in changes.items():
            _set(data, key, value, "replace()")
        return build(data, "replace()", explicit=_explicit(changes))

    @classmethod
    def preset(cls, name: str) -> "MethodConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown method preset {name!r}; known: {', '.join(PRESETS)}")
        return build(dict(PRESETS[name]), f"method preset {name!r}", explicit=set())

    @classmethod
    def from_spec(cls, spec: Any, source: str = "method") -> "MethodConfig":
        """From a preset or method name, or a mapping ``{preset: ..., <field>: ...}`` / ``{name: ..., ...}``."""
        if isinstance(spec, MethodConfig):
            return spec
        if spec is None:
            return cls()
        if isinstance(spec, str):
            if spec in PRESETS:
                return cls.preset(spec)
            if spec in METHOD_NAMES:
                return build({"name": spec}, source, explicit=set())
            raise ConfigError(f"{source}: unknown method {spec!r}; presets: {', '.join(PRESETS)}")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: a method is a preset name or a mapping, got {type(spec).__name__}")
        spec = dict(spec)
        if "preset" in spec and "name" in spec:
            raise ConfigError(f"{source}: give either 'preset' or 'name', not both")
        if "preset" in spec:
            preset = spec.pop("preset")
            if preset not in PRESETS:
                raise ConfigError(f"{source}: unknown method preset {preset!r}; known: {', '.join(PRESETS)}")
            data = dict(PRESETS[preset])
        else:
            data = {}
        for key, value in spec.items():
            _set(data, key, value, source)
        return build(data, source, explicit=_explicit(spec))


# Named presets: the published dataflows, comparable point by point.
PRESETS: dict[str, dict] = {
    # The controller a chip could have (amc/hw/controller.py): verify through reads, the least shift that works
    # (kept as extra damping: compensating it through the same cells measured worse, README).
    "direct": {"name": "direct", "shift": "verify"},
    # The earlier recipe, kept for comparison: program-and-verify judged on the exact programmed conductances,
    # starting from the quantisation error's norm.
    "direct-legacy-shift": {"name": "direct", "shift": "auto"},
    "hpinv-pcg": {"name": "hp-inv", "refinement": "pcg", "iterations": 10, "shift": "auto", "equilibrate": True,
                  "mvm": {"slices": 6}},
    "hpinv-richardson": {"name": "hp-inv", "refinement": "richardson", "iterations": 10},
    "blockamc": {"name": "blockamc", "array_size": 32, "mvm": {"slices": 1, "gain_calibration": False}},
    "repast": {"name": "repast", "refinement": "pcg", "iterations": 2, "shift": "auto", "equilibrate": True,
               "mvm": {"slices": 6}},
}


def _explicit(spec: Mapping) -> set:
    out = set()
    for key, value in spec.items():
        if key in ("name", "preset"):
            continue
        top = key.split(".")[0]
        out.add(top)
    return out


def _set(data: dict, key: str, value: Any, source: str) -> None:
    names = {f.name for f in fields(MethodConfig)}
    mvm_names = {f.name for f in fields(MVMSection)}
    if key == "mvm":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: method.mvm must be a mapping of {', '.join(sorted(mvm_names))}")
        unknown = sorted(set(value) - mvm_names)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) method.mvm.{', method.mvm.'.join(unknown)}; "
                              f"known: {', '.join(sorted(mvm_names))}")
        data["mvm"] = {**dict(data.get("mvm", {})), **dict(value)}
        return
    if key.startswith("mvm."):
        sub = key[4:]
        if sub not in mvm_names:
            raise ConfigError(f"{source}: unknown key method.{key}{schema.suggest(sub, mvm_names)}; known: "
                              f"mvm.{', mvm.'.join(sorted(mvm_names))}")
        data["mvm"] = {**dict(data.get("mvm", {})), sub: value}
        return
    if key not in names:
        raise ConfigError(f"{source}: unknown key method.{key}{schema.suggest(key, names)}; known: "
                          f"{', '.join(sorted(names))}")
    data[key] = value


def build(data: dict, source: str, explicit: set) -> MethodConfig:
    data = dict(data)
    mvm = data.pop("mvm", {})
    if isinstance(mvm, MVMSection):
        mvm = dataclasses.asdict(mvm)
    try:
        config = schema.build(MethodConfig, {**data, "mvm": dict(mvm)}, "method", ConfigError)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    config.validate("method")
    unused = sorted(k for k in explicit if k not in MethodConfig.USES[config.name])
    mvm_set = sorted(k for k, v in dataclasses.asdict(config.mvm).items() if v != getattr(MVMSection(), k))
    if config.name == "blockamc":      # its coupling arrays take slices, target swing and gain calibration only
        unused += [f"mvm.{k}" for k in mvm_set if k not in ("slices", "target_swing", "gain_calibration")]
    if config.operators == "per-solve" and config.mvm.response != "circuit" and "mvm" in explicit:
        unused.append("mvm.response (operators per-solve reads every MVM in ngspice)")
    if unused:
        raise ConfigError(f"{source}: method.{', method.'.join(unused)} has no effect for method {config.name!r} "
                          f"(it uses: {', '.join(sorted(MethodConfig.USES[config.name]))})")
    return config


def _changed(obj, default) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) != getattr(default, f.name)}


def _choice(value: Any, choices: tuple, where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")


def _int(value: Any, where: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
