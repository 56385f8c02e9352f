"""Training and comparison configuration: dataclasses loaded from YAML, unknown keys rejected by name.

``load_config(path, overrides)`` -> ``Config``; ``load_compare_config(path, overrides)`` -> ``CompareConfig``.
Overrides are ``key=value`` strings with dotted keys (``optimizer.lr=0.01``, ``train.epochs=2``); values are
parsed as YAML (``1e-2``, ``true``, ``null``, ``[0.01, 0.03]``).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from amc.errors import AmcError


IMAGE_SIZE = 28
ARCHS = ("reference", "cnn4")


class ConfigError(AmcError, ValueError):
    """A configuration is invalid; the message names the key and the file."""


@dataclass
class DataConfig:
    source: str = "synthetic-letters"     # synthetic-letters | emnist
    path: Optional[str] = None            # emnist: directory (IDX or CSV) or a CSV file; default: search order
    format: str = "auto"                  # auto | idx | csv
    n_classes: Optional[int] = None       # synthetic: default 26; emnist: from the labels
    n_train: int = 2400
    n_test: int = 600
    seed: int = 0                         # synthetic generation + stratified split

    def validate(self, where: str) -> None:
        _choice(self.source, ("synthetic-letters", "emnist"), f"{where}.source")
        _choice(self.format, ("auto", "idx", "csv"), f"{where}.format")
        _positive(self.n_train, f"{where}.n_train")
        _positive(self.n_test, f"{where}.n_test")
        if self.n_classes is not None:
            if self.n_classes < 2:
                raise ConfigError(f"{where}.n_classes must be >= 2 (or null: from the data), got {self.n_classes}")
            if self.source == "synthetic-letters" and self.n_classes > 26:
                raise ConfigError(f"{where}.n_classes: the synthetic letters have at most 26 classes, got "
                                  f"{self.n_classes}")
        classes = self.n_classes or (26 if self.source == "synthetic-letters" else 2)
        if self.n_train < classes:
            raise ConfigError(f"{where}.n_train = {self.n_train} is smaller than the {classes} classes: every class "
                              "needs at least one training image")


@dataclass
class ModelConfig:
    arch: str = "reference"               # reference: ConvNet (the settings below) | cnn4: training/cnn.py LayeredCNN.cnn4
    channels: int = 8
    kernel: int = 5
    pool: int = 4
    init: str = "torch"                   # torch: PyTorch default U(+-1/sqrt(fan_in)) weights and biases | he

    def validate(self, where: str) -> None:
        _choice(self.arch, ARCHS, f"{where}.arch")
        for k in ("channels", "kernel", "pool"):
            _positive(getattr(self, k), f"{where}.{k}")
        _choice(self.init, ("torch", "he"), f"{where}.init")
        if self.arch != "reference":   # cnn4's shape is fixed (the cost ledger's stand-in); these keys shape ConvNet
            fixed = [k for k in ("channels", "kernel", "pool") if getattr(self, k) != getattr(ModelConfig, k)]
            if fixed:
                raise ConfigError(f"{where}.{', '.join(fixed)}: no effect with arch {self.arch!r} (its layers are "
                                  "fixed; these shape the reference model)")
            return
        # Both data sources are 28 x 28 images: the convolution output must split into whole pool windows.
        conv_out = IMAGE_SIZE - self.kernel + 1
        if conv_out <= 0:
            raise ConfigError(f"{where}.kernel = {self.kernel} does not fit the {IMAGE_SIZE} x {IMAGE_SIZE} images "
                              f"(at most {IMAGE_SIZE})")
        if conv_out % self.pool:
            fits = [p for p in range(1, conv_out + 1) if conv_out % p == 0]
            raise ConfigError(f"{where}.pool = {self.pool} does not divide the {conv_out} x {conv_out} convolution "
                              f"output (kernel {self.kernel}); pool sizes that fit: {', '.join(map(str, fits))}")


@dataclass
class SolverConfig:
    backend: str = "numpy"                # numpy | circuit
    circuit: Any = "rram"                 # amc preset name, circuit YAML path, or {preset: rram, device: {...}}
    method: Any = "direct"                # amc method preset/name or {preset: hpinv-pcg, iterations: 3, ...}
    seconds_per_step: Optional[float] = None   # drift clock: hardware seconds per training step (needed with drift)
    check_every: int = 1                  # circuit: compare with an exact solve every N calls (0: never)
    saturation_is_failure: bool = True    # circuit: a saturated output counts as a failed solve
    max_relative_residual: Optional[float] = None   # circuit: a larger residual counts as a failed solve
    transient: bool = False               # circuit: .tran solves (settling time, energy); slow
    # numpy: the damping-matched exact twin of a shifted circuit run, {factor size: mu}: a factor of that size is
    # solved as H + mu diag(H) (the shift the read-verified controller applies, in exact arithmetic)
    diagonal_shift: Optional[dict] = None

    def typed(self):
        """(CircuitConfig, MethodConfig) as ``validate`` parsed them (circuit backend), else None."""
        typed = getattr(self, "_typed", None)
        if typed is None or typed[0] != (self.circuit, self.method):
            return None
        return typed[1], typed[2]

    def validate(self, where: str) -> None:
        self._typed = None
        _choice(self.backend, ("numpy", "circuit"), f"{where}.backend")
        if self.check_every < 0:
            raise ConfigError(f"{where}.check_every must be >= 0")
        if self.backend == "numpy":
            circuit_only = [f.name for f in dataclasses.fields(self)
                            if f.name not in ("backend", "check_every", "diagonal_shift")
                            and getattr(self, f.name) != f.default]
            if circuit_only:
                raise ConfigError(f"{where}.{', '.join(circuit_only)}: no effect with backend 'numpy' "
                                  "(set backend: circuit)")
        if self.diagonal_shift is not None:
            if self.backend != "numpy":
                raise ConfigError(f"{where}.diagonal_shift: only for backend 'numpy' (the exact twin of a shifted "
                                  "circuit run); a circuit's shift is its method's")
            if not isinstance(self.diagonal_shift, dict) or not all(
                    isinstance(k, int) and not isinstance(k, bool) and k > 0 and isinstance(v, (int, float))
                    and not isinstance(v, bool) and v >= 0 for k, v in self.diagonal_shift.items()):
                raise ConfigError(f"{where}.diagonal_shift must map factor sizes (integers > 0) to shifts >= 0, got "
                                  f"{self.diagonal_shift!r}")
        if self.seconds_per_step is not None and not self.seconds_per_step > 0:
            raise ConfigError(f"{where}.seconds_per_step must be > 0 or null")
        if self.backend == "circuit":   # check the circuit and method now, not at the first solve
            from amc import circuit_from_spec
            from amc.errors import AmcError
            from amc.methods import method_config
            try:
                circuit = circuit_from_spec(self.circuit, where)
                method = method_config(self.method, {}, source=f"{where}.method")
            except AmcError as exc:
                raise ConfigError(str(exc)) from None
            # parsed once here; make_solver builds from these (kept with the spelling they came from, so a field
            # changed after validation is never answered with a stale object)
            self._typed = (copy.deepcopy((self.circuit, self.method)), circuit, method)
            if circuit.device.drift_nu > 0 and self.seconds_per_step is None:
                raise ConfigError(f"{where}.seconds_per_step: the circuit drifts (device.drift_nu > 0), so the time a "
                                  "training step takes on the hardware must be given (seconds)")


@dataclass
class OptimizerConfig:
    name: str = "kfac"                    # sgd | adam | kfac
    lr: float = 0.03
    momentum: float = 0.0                 # sgd: heavy-ball momentum; kfac: momentum on the preconditioned step
    nesterov: bool = False                # sgd
    beta1: float = 0.9                    # adam
    beta2: float = 0.999                  # adam
    eps: float = 1e-8                     # adam
    weight_decay: float = 0.0             # L2 on weights (not biases), added to the gradient
    damping: float = 1e-2                 # kfac: lambda; split sqrt(lambda)*pi and sqrt(lambda)/pi
    ema: float = 0.95                     # kfac: factor running-average decay
    ema_warmup: bool = True               # kfac: decay min(1 - 1/k, ema) at the k-th update (Martens & Grosse)
    factor_every: int = 1                 # kfac: update A, G every N steps
    inverse_every: int = 10               # kfac: re-damp (re-program) the factors every N steps
    kl_clip: Optional[float] = None       # kfac: trust-region scale (kfac-pytorch style); null = off
    max_block: Optional[int] = None       # kfac: factors larger than N are split block-diagonally
    pi_correction: bool = True            # kfac: split the damping with the pi trace ratio
    linear_response: bool = False         # kfac: extract the inverse once per inverse update (deterministic solvers)
    on_circuit_failure: str = "fallback"  # kfac: fallback (exact solve, counted) | stop
    solver: SolverConfig = field(default_factory=SolverConfig)

    def validate(self, where: str) -> None:
        _choice(self.name, ("sgd", "adam", "kfac"), f"{where}.name")
        _choice(self.on_circuit_failure, ("fallback", "stop"), f"{where}.on_circuit_failure")
        _positive(self.lr, f"{where}.lr")
        _positive(self.factor_every, f"{where}.factor_every")
        _positive(self.inverse_every, f"{where}.inverse_every")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"{where}.ema must be in [0, 1), got {self.ema}")
        if self.damping <= 0:
            raise ConfigError(f"{where}.damping must be > 0, got {self.damping}")
        if self.max_block is not None and self.max_block < 1:
            raise ConfigError(f"{where}.max_block must be >= 1 or null")
        self.solver.validate(f"{where}.solver")


@dataclass
class TrainConfig:
    epochs: float = 4.0
    batch_size: int = 64
    seed: int = 0                         # weights init, shuffling, K-FAC label sampling
    evals_per_epoch: int = 4
    train_eval_size: int = 2000           # train accuracy on this many training images (0: all)
    out_dir: str = "results/train/{name}"
    checkpoint: bool = True
    resume: bool = True                   # continue from out_dir/checkpoint.npz when present
    progress: bool = True                 # tqdm bar
    max_steps: Optional[int] = None
    stop_at_accuracy: Optional[float] = None   # stop once test accuracy reaches this

    def validate(self, where: str) -> None:
        _positive(self.epochs, f"{where}.epochs")
        _positive(self.batch_size, f"{where}.batch_size")
        _positive(self.evals_per_epoch, f"{where}.evals_per_epoch")


@dataclass
class Config:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self, where: str = "config") -> None:
        for f in ("data", "model", "optimizer", "train"):
            getattr(self, f).validate(f)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def out_dir(self) -> Path:
        return Path(self.train.out_dir.format(name=self.name))


@dataclass
class CompareEntry:
    label: str = ""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_grid: list = field(default_factory=list)   # tuned on tune.seed; empty: use optimizer.lr

    def validate(self, where: str) -> None:
        if not self.label:
            raise ConfigError(f"{where}.label is required")
        self.optimizer.validate(f"{where}.optimizer")


@dataclass
class TuneConfig:
    seed: int = 0
    split: str = "validation"             # validation (carved from train) | test
    n_val: int = 1000
    epochs: Optional[float] = None        # default: train.epochs

    def validate(self, where: str) -> None:
        _choice(self.split, ("validation", "test"), f"{where}.split")


@dataclass
class CompareConfig:
    name: str = "compare"
    target_accuracy: float = 0.87
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    baselines: list = field(default_factory=lambda: ["sgd-momentum", "adam"])
    out_dir: str = "results/compare/{name}"
    jobs: int = 1                         # parallel runs (processes); circuit runs each own an ngspice
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    optimizers: list[CompareEntry] = field(default_factory=list)

    def validate(self, where: str = "config") -> None:
        for f in ("data", "model", "train", "tune"):
            getattr(self, f).validate(f)
        if not self.optimizers:
            raise ConfigError("optimizers: at least one entry is required")
        labels = [e.label for e in self.optimizers]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"optimizers: duplicate labels {labels}")
        for i, e in enumerate(self.optimizers):
            e.validate(f"optimizers[{i}]")
        if not 0 < self.target_accuracy <= 1:
            raise ConfigError("target_accuracy must be a fraction in (0, 1]")

    @property
    def out_path(self) -> Path:
        return Path(self.out_dir.format(name=self.name))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------
def _choice(value, allowed, key):
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _positive(value, key):
    if value is None or value <= 0:
        raise ConfigError(f"{key} must be > 0, got {value!r}")


def _build(cls, data: dict, where: str):
    from amc import schema          # the project's one schema engine (typed coercion, unknown keys)
    return schema.build(cls, data, where, ConfigError)


def _join(where, key):
    return f"{where}.{key}" if where else key


def apply_overrides(data: dict, overrides) -> dict:
    """Apply ``key=value`` strings (dotted keys, YAML values) to a raw config mapping (copied)."""
    from amc import schema
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optimizer.lr=0.01)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        schema.set_dotted(data, key.strip(), value, ConfigError, f"override {item!r}", create=True)
    return data


def _load_yaml(path) -> dict:
    from amc.yamlio import read_yaml_mapping
    return read_yaml_mapping(path, error=ConfigError)


def _from_dict(cls, data: dict, overrides, source: str):
    try:
        cfg = _build(cls, apply_overrides(data, overrides), "")
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def _from_yaml(cls, path, overrides):
    """Read a YAML file, apply ``--set`` overrides, validate; the name defaults to the file stem."""
    data = _load_yaml(path)
    data.setdefault("name", Path(path).stem)
    return _from_dict(cls, data, overrides, str(path))


def config_from_dict(data: dict, overrides=None, source: str = "config") -> Config:
    return _from_dict(Config, data, overrides, source)


def load_config(path, overrides=None) -> Config:
    return _from_yaml(Config, path, overrides)


def compare_config_from_dict(data: dict, overrides=None, source: str = "config") -> CompareConfig:
    return _from_dict(CompareConfig, data, overrides, source)


def load_compare_config(path, overrides=None) -> CompareConfig:
    return _from_yaml(CompareConfig, path, overrides)
