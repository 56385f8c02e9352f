"""Typed solve-method configuration, one section per method (aihwkit's habit): each config builds its own solver.

    MethodConfig.preset("hpinv-pcg").replace(iterations=3)          # an HPInvConfig
    MethodConfig.from_spec({"preset": "hpinv-pcg", "iterations": 3, "mvm": {"slices": 6}}, source="run.yaml")
    MethodConfig.from_spec("direct")                                 # a DirectConfig
    HPInvConfig(refinement="pcg", shift="auto").build(circuit)       # the HPInvSolver

``MethodConfig`` is the tagged union of ``DirectConfig``, ``HPInvConfig``, ``BlockAMCConfig`` and ``RepastConfig``
(tag ``name``), parsed by the one schema engine (``amc.schema.build_tagged``). Each config is validated once, when
it is made; its solver trusts it. A key a method does not have is an unknown key naming the key and the method:
a refinement option under ``direct`` would otherwise be silently ignored and the result mislabelled.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, Optional, Union

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
    """The bit-sliced analog MVM arrays (HP-INV residuals, RePAST's programmed inverse)."""

    slices: int = 8                        # bit slices of the matrix (3 bits each on 8-level cells)
    bits_per_slice: Optional[int] = None   # None: log2(levels)
    input_slices: int = 1                  # DAC bit slices of the input vector (finite dac_bits only)
    adc_bits: Optional[int] = None         # None: ideal readout
    dac_bits: Optional[int] = None
    array_size: Optional[int] = None       # tile the matrix into arrays of at most this size
    response: str = "circuit"              # extracted operators: ngspice (batch or re-stamped) | closed form
    gain_calibration: bool = True          # trim of the TIAs' finite-gain error
    target_swing: float = 0.1              # TIA output at the worst-case input, fraction of the swing

    def __post_init__(self) -> None:
        _int(self.slices, "mvm.slices", 1)
        _int(self.input_slices, "mvm.input_slices", 1)
        for key in ("bits_per_slice", "adc_bits", "dac_bits", "array_size"):
            if getattr(self, key) is not None:
                _int(getattr(self, key), f"mvm.{key}", 1)
        _choice(self.response, MVM_RESPONSES, "mvm.response")
        _bool(self.gain_calibration, "mvm.gain_calibration")
        _swing(self.target_swing, "mvm.target_swing")

    def options(self) -> dict:
        """The keyword arguments of ``amc.hw.mvm.AnalogMVM`` these settings make."""
        return dict(slices=self.slices, bits_per_slice=self.bits_per_slice, input_slices=self.input_slices,
                    target_swing=self.target_swing, gain_calibration=self.gain_calibration,
                    array_size=self.array_size)


@dataclass(frozen=True)
class CouplingSection:
    """BlockAMC's coupling arrays (B and C of every partition, tiled to the method's array_size): slices, swing and
    TIA trim only (no converters of their own, no extraction). Defaults as MVMSection's, so ``{name: blockamc}``
    means what it always meant; the ``blockamc`` preset sets one slice, no trim."""

    slices: int = 8                        # bit slices of each coupling matrix
    gain_calibration: bool = True          # trim of the TIAs' finite-gain error
    target_swing: float = 0.1              # TIA output at the worst-case input, fraction of the swing

    def __post_init__(self) -> None:
        _int(self.slices, "mvm.slices", 1)
        _bool(self.gain_calibration, "mvm.gain_calibration")
        _swing(self.target_swing, "mvm.target_swing")


class MethodConfig:
    """The tagged union of the per-method configs (``name`` is the tag). Not instantiated itself: ``preset``,
    ``from_spec`` and the per-method classes make its members."""

    name: ClassVar[str] = ""
    solver_class: ClassVar[str] = ""      # "module:Class" of the solver this config builds

    # ---- what every method config offers ---------------------------------------------------------------------
    def build(self, circuit, mvm_config=None):
        """This method's solver on ``circuit`` (a CircuitConfig); ``mvm_config``: another circuit for MVM arrays."""
        import importlib
        module, cls = self.solver_class.split(":")
        solver = getattr(importlib.import_module(module), cls)
        if mvm_config is None:
            return solver(circuit, self)
        if not self.has("mvm"):
            raise ConfigError(f"method {self.name!r} has no MVM arrays: an mvm_config has no effect for it")
        return solver(circuit, self, mvm_config)

    @classmethod
    def has(cls, key: str) -> bool:
        return key in {f.name for f in fields(cls)}

    @property
    def label(self) -> str:
        """A short name for tables and figures, e.g. 'hp-inv pcg k=3 (identity control)'."""
        raise NotImplementedError

    def __repr__(self) -> str:
        default = type(self)()
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                   if f.name != "mvm" and getattr(self, f.name) != getattr(default, f.name)]
        if self.has("mvm") and self.mvm != default.mvm:
            changed.append(f"mvm({', '.join(f'{k}={v!r}' for k, v in _changed(self.mvm, type(self.mvm)()).items())})")
        return f"MethodConfig({self.name}{': ' if changed else ''}{', '.join(changed)})"

    def to_dict(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}

    def replace(self, **changes: Any) -> "MethodConfig":
        """A copy with fields changed; ``mvm`` takes a mapping of MVM fields (or use ``"mvm.slices"`` keys)."""
        data = dataclasses.asdict(self)
        for key, value in changes.items():
            _set(data, key, value)
        return _build({"name": self.name, **data}, "replace()")

    # ---- the union ----------------------------------------------------------------------------------------------
    @staticmethod
    def preset(name: str) -> "MethodConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown method preset {name!r}; known: {', '.join(PRESETS)}")
        return PRESETS[name]

    @staticmethod
    def from_spec(spec: Any, source: str = "method") -> "MethodConfig":
        """From a preset or method name, or a mapping ``{preset: ..., <field>: ...}`` / ``{name: ..., ...}``."""
        if isinstance(spec, MethodConfig):
            return spec
        if spec is None:
            return DirectConfig()
        if isinstance(spec, str):
            if spec in PRESETS:
                return PRESETS[spec]
            if spec in VARIANTS:
                return VARIANTS[spec]()
            raise ConfigError(f"{source}: unknown method {spec!r}; presets: {', '.join(PRESETS)}; "
                              f"methods: {', '.join(METHOD_NAMES)}")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: a method is a preset name or a mapping, got {type(spec).__name__}")
        spec = dict(spec)
        if "preset" in spec and "name" in spec:
            raise ConfigError(f"{source}: give either 'preset' or 'name', not both")
        if "preset" in spec:
            preset = spec.pop("preset")
            if preset not in PRESETS:
                raise ConfigError(f"{source}: unknown method preset {preset!r}; known: {', '.join(PRESETS)}")
            data = PRESETS[preset].to_dict()
        else:
            data = {"name": spec.pop("name", "direct")}
        for key, value in spec.items():
            _set(data, key, value)
        return _build(data, source)


def method_config(method: Any, options: Optional[Mapping] = None, source: str = "method") -> MethodConfig:
    """A MethodConfig from a preset/method name, mapping or config plus keyword options (dotted ``mvm.x`` keys or
    an ``mvm`` mapping), e.g. ``method_config("hpinv-pcg", {"iterations": 3, "mvm": {"slices": 4}})``."""
    options = dict(options or {})
    if isinstance(method, MethodConfig):
        return _build({**method.to_dict(), **_merged(method.to_dict(), options)}, source) if options else method
    if method is None:
        method = "direct"
    if isinstance(method, str):
        if method not in PRESETS and method not in VARIANTS:
            raise ConfigError(f"{source}: unknown method {method!r}; presets: {', '.join(PRESETS)}; "
                              f"methods: {', '.join(METHOD_NAMES)}")
        spec = {"preset": method} if method in PRESETS else {"name": method}
    elif isinstance(method, Mapping):
        spec = dict(method)
    else:
        raise ConfigError(f"{source}: a method is a preset or method name or a mapping, got "
                          f"{type(method).__name__} {method!r}; presets: {', '.join(PRESETS)}")
    spec.update(options)
    return MethodConfig.from_spec(spec, source)


# ---- the four methods -----------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class DirectConfig(MethodConfig):
    """``direct``: one INV settle per right-hand side on the programmed array (amc/methods/direct.py)."""

    name: ClassVar[str] = "direct"
    solver_class: ClassVar[str] = "amc.methods.direct:DirectSolver"
    shift: Union[None, float, str] = None  # diagonal shift: null | mu | auto | verify (the read-verified controller)
    shift_margin: float = 0.02
    # shift 'verify': how an applied shift is compensated. none: kept as extra damping (the deliberate bias is
    # reported); mvm: one refinement step whose residual is an MVM read of the same cells (counted)
    shift_compensation: str = "none"
    equilibrate: Optional[bool] = None     # Jacobi scaling by the periphery; None: the circuit's io.equilibrate
    array_size: Optional[int] = None       # largest array: a larger H is refused
    operators: str = "per-solve"           # per-solve: every settle in ngspice | extracted: measured response
    cache_size: int = 64                   # programmed systems kept (one array per distinct matrix)

    def __post_init__(self) -> None:
        _shift(self.shift, allow_verify=True)
        _choice(self.shift_compensation, SHIFT_COMPENSATIONS, "shift_compensation")
        if self.shift_compensation != "none" and self.shift != "verify":
            raise ConfigError(f"shift_compensation {self.shift_compensation!r} needs shift 'verify' "
                              f"(got shift {self.shift!r})")
        _common(self)

    @property
    def label(self) -> str:
        return "direct (one-step INV)"


@dataclass(frozen=True, repr=False)
class HPInvConfig(MethodConfig):
    """``hp-inv``: iterative refinement with a low-precision INV and a bit-sliced MVM (amc/methods/hpinv.py)."""

    name: ClassVar[str] = "hp-inv"
    solver_class: ClassVar[str] = "amc.methods.hpinv:HPInvSolver"
    refinement: str = "richardson"         # richardson | pcg
    iterations: int = 10                   # refinement passes
    tol: Optional[float] = None            # stop once the measured residual is below it
    preconditioner: str = "analog"         # analog INV | identity (the control: no analog INV)
    shift: Union[None, float, str] = None  # diagonal shift of the INV matrix: null | mu | auto
    shift_margin: float = 0.02
    equilibrate: Optional[bool] = None     # Jacobi scaling by the periphery; None: the circuit's io.equilibrate
    array_size: Optional[int] = None       # largest INV array (block-Jacobi beyond it, pcg only)
    operators: str = "per-solve"           # per-solve: every settle in ngspice | extracted: measured response
    check_convergence: bool = True         # upfront stability / convergence checks
    divergence_factor: float = 2.0         # richardson: stop when the residual grows by this factor
    scale_residual: bool = True            # each INV pass uses the full input range
    cache_size: int = 64                   # programmed systems kept (one array set per distinct matrix)
    mvm: MVMSection = field(default_factory=MVMSection)

    def __post_init__(self) -> None:
        _choice(self.refinement, REFINEMENTS, "refinement")
        _int(self.iterations, "iterations", 1)
        if self.tol is not None and (isinstance(self.tol, bool) or not isinstance(self.tol, (int, float))
                                     or not self.tol > 0):
            raise ConfigError(f"tol must be a positive number or null, got {self.tol!r}")
        _choice(self.preconditioner, PRECONDITIONERS, "preconditioner")
        _shift(self.shift, allow_verify=False, method=self.name)
        _bool(self.check_convergence, "check_convergence")
        _bool(self.scale_residual, "scale_residual")
        if isinstance(self.divergence_factor, bool) or not (isinstance(self.divergence_factor, (int, float))
                                                            and self.divergence_factor > 1):
            raise ConfigError(f"divergence_factor must exceed 1, got {self.divergence_factor!r}")
        _common(self)
        _mvm_response(self)

    @property
    def label(self) -> str:
        control = " (identity control)" if self.preconditioner == "identity" else ""
        return f"hp-inv {self.refinement} k={self.iterations}{control}"


@dataclass(frozen=True, repr=False)
class BlockAMCConfig(MethodConfig):
    """``blockamc``: Schur-complement partitioning onto arrays of at most ``array_size`` (amc/methods/blockamc.py).
    A new BlockAMCSolver option is a field here (with its default and a check in ``__post_init__``), read by the
    solver as ``self.method.<field>``; an option of the coupling arrays is a CouplingSection field."""

    name: ClassVar[str] = "blockamc"
    solver_class: ClassVar[str] = "amc.methods.blockamc:BlockAMCSolver"
    array_size: int = 32                   # rows/columns of one array: the partition's leaf size
    check_convergence: bool = True         # upfront digital check of every block and Schur complement
    operators: str = "per-solve"           # per-solve: every settle and read in ngspice | extracted: measured responses
    shift: Optional[str] = None            # null | verify: the read-verified controller on every INV leaf
    shift_margin: float = 0.02
    equilibrate: Optional[bool] = None     # true: D H D before partitioning, every leaf equilibrated; null: as circuit
    cache_size: int = 8                    # programmed block trees kept (each its own arrays), least recently used
    mvm: CouplingSection = field(default_factory=CouplingSection)

    def __post_init__(self) -> None:
        _int(self.array_size, "array_size", 2)
        _bool(self.check_convergence, "check_convergence")
        if self.shift not in (None, "verify"):
            raise ConfigError(f"shift for method 'blockamc' is null or 'verify' (the read-verified controller on "
                              f"every INV leaf), got {self.shift!r}")
        _common(self)

    @property
    def label(self) -> str:
        return f"blockamc {self.array_size}"


@dataclass(frozen=True, repr=False)
class RepastConfig(MethodConfig):
    """``repast``: the INV method computes H^-1 once per programming, MVM arrays apply it (amc/methods/repast.py)."""

    name: ClassVar[str] = "repast"
    solver_class: ClassVar[str] = "amc.methods.repast:RepastSolver"
    refinement: str = "richardson"         # of the inverse's computation: richardson | pcg
    iterations: int = 10                   # refinement passes computing the inverse (0: one INV settle per column)
    shift: Union[None, float, str] = None  # diagonal shift of the INV computing the inverse: null | mu | auto
    shift_margin: float = 0.02
    equilibrate: Optional[bool] = None     # Jacobi scaling by the periphery; None: the circuit's io.equilibrate
    operators: str = "per-solve"           # per-solve: every settle and read in ngspice | extracted: measured response
    check_convergence: bool = True         # upfront stability / convergence checks of the inverse's computation
    cache_size: int = 64                   # programmed systems kept (one array set per distinct matrix)
    mvm: MVMSection = field(default_factory=MVMSection)

    def __post_init__(self) -> None:
        _choice(self.refinement, REFINEMENTS, "refinement")
        _int(self.iterations, "iterations", 0)
        _shift(self.shift, allow_verify=False, method=self.name)
        _bool(self.check_convergence, "check_convergence")
        _common(self)
        _mvm_response(self)

    @property
    def label(self) -> str:
        return f"repast k={self.iterations}"

    def inverter(self) -> Union[DirectConfig, HPInvConfig]:
        """The INV method computing the inverse: one settle per column (iterations 0) or HP-INV."""
        if self.iterations == 0:
            return DirectConfig(equilibrate=self.equilibrate, operators=self.operators, shift=self.shift,
                                shift_margin=self.shift_margin, cache_size=self.cache_size)
        return HPInvConfig(refinement=self.refinement, iterations=self.iterations, shift=self.shift,
                           shift_margin=self.shift_margin, equilibrate=self.equilibrate, operators=self.operators,
                           check_convergence=self.check_convergence, cache_size=self.cache_size, mvm=self.mvm)


VARIANTS: dict[str, type] = {c.name: c for c in (DirectConfig, HPInvConfig, BlockAMCConfig, RepastConfig)}

def method_keys() -> dict:
    """Every top-level method key (``mvm`` aside) -> (its field in the first method having it, the methods having
    it): one CLI flag per key; the chosen method refuses the keys it does not have."""
    out: dict = {}
    for cls in VARIANTS.values():
        for f in fields(cls):
            if f.name == "mvm":
                continue
            entry = out.setdefault(f.name, (f, []))
            entry[1].append(cls.name)
    return out


# ---- parsing ----------------------------------------------------------------------------------------------------
def _set(data: dict, key: str, value: Any) -> None:
    """Set a (possibly dotted ``mvm.x``) key in a config's dict; an ``mvm`` mapping merges into the section."""
    if key == "mvm":
        if isinstance(value, (MVMSection, CouplingSection)):
            value = dataclasses.asdict(value)
        data["mvm"] = {**dict(data.get("mvm") or {}), **dict(value)} if isinstance(value, Mapping) else value
    elif key.startswith("mvm."):
        data["mvm"] = {**dict(data.get("mvm") or {}), key[4:]: value}
    else:
        data[key] = value


def _merged(base: dict, options: Mapping) -> dict:
    data = dict(base)
    for key, value in options.items():
        _set(data, key, value)
    return data


def _build(data: dict, source: str) -> MethodConfig:
    try:
        return schema.build_tagged(VARIANTS, "name", data, "method", ConfigError, kind="method")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {_in_method(str(exc))}") from None


def _in_method(message: str) -> str:
    """Checks in __post_init__ name the bare key; say it is a method key."""
    return message if message.startswith(("unknown", "method", "'method")) else f"method.{message}"


def _changed(obj, default) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) != getattr(default, f.name)}


def _common(cfg) -> None:
    if not (isinstance(cfg.shift_margin, (int, float)) and not isinstance(cfg.shift_margin, bool)
            and 0 < cfg.shift_margin < 1):
        raise ConfigError(f"shift_margin must be in (0, 1), got {cfg.shift_margin!r}")
    if cfg.equilibrate is not None and not isinstance(cfg.equilibrate, bool):
        raise ConfigError(f"equilibrate must be true, false or null, got {cfg.equilibrate!r}")
    if getattr(cfg, "array_size", None) is not None:
        _int(cfg.array_size, "array_size", 2)
    _choice(cfg.operators, OPERATORS, "operators")
    _int(cfg.cache_size, "cache_size", 1)


def _mvm_response(cfg) -> None:
    if cfg.operators == "per-solve" and cfg.mvm.response != "circuit":
        raise ConfigError(f"mvm.response {cfg.mvm.response!r} is for operators 'extracted' (operators per-solve "
                          "reads every MVM in ngspice)")


def _shift(shift: Any, allow_verify: bool, method: str = "direct") -> None:
    if shift == "verify" and not allow_verify:
        raise ConfigError(f"shift 'verify' (the read-verified controller) is a 'direct' and 'blockamc' recipe; "
                          f"method {method!r} takes null, a number or 'auto'")
    if shift is not None and shift not in ("auto", "verify") and (
            isinstance(shift, bool) or not isinstance(shift, (int, float)) or not shift >= 0
            or shift == float("inf")):
        verify = " or 'verify'" if allow_verify else ""
        raise ConfigError(f"shift must be null, a non-negative number, 'auto'{verify}, "
                          f"got {shift!r}")


def _choice(value: Any, choices: tuple, where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")


def _int(value: Any, where: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")


def _bool(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")


def _swing(value: Any, where: str) -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 < value < 1):
        raise ConfigError(f"{where} must be in (0, 1), got {value!r}")


# Named presets: the published dataflows, comparable point by point.
PRESETS: dict[str, MethodConfig] = {
    # The controller a chip could have (amc/hw/controller.py): verify through reads, the least shift that works
    # (kept as extra damping: compensating it through the same cells measured worse, README).
    "direct": DirectConfig(shift="verify"),
    # The earlier recipe, kept for comparison: program-and-verify judged on the exact programmed conductances,
    # starting from the quantisation error's norm.
    "direct-legacy-shift": DirectConfig(shift="auto"),
    "hpinv-pcg": HPInvConfig(refinement="pcg", iterations=10, shift="auto", equilibrate=True, mvm=MVMSection(slices=6)),
    "hpinv-richardson": HPInvConfig(refinement="richardson", iterations=10),
    "blockamc": BlockAMCConfig(array_size=32, mvm=CouplingSection(slices=1, gain_calibration=False)),
    "repast": RepastConfig(refinement="pcg", iterations=2, shift="auto", equilibrate=True, mvm=MVMSection(slices=6)),
}
