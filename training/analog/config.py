"""The ``analog`` section of an analog-training run or sweep point: validated, defaults filled in.

    analog:
      problem: least-squares        # least-squares (Wu et al. 2024's S2 setting) | emnist (a network on tiles)
      algorithm: tiki-taka          # digital-sgd | analog-sgd | tiki-taka | c-ttv2
      lr: 0.01                      # α (also Tiki-Taka's fast rate unless tiki_taka.lr_fast is set)
      tau: 1.0                      # soft-bounds radius: w in [-τ, τ], dw_min scaled with it (null: the preset's)
      device: wu2024-softbounds     # preset name or mapping (amc/tiles/devices.py)
      update: mean-field            # mean-field | pulsed (stochastic pulse trains)
      bit_length: 300               # pulse-train length BL (pulsed)
      iterations: null              # null: 300/lr (least squares)
      tail_fraction: 0.2            # error = mean f over the last 20 % of iterations
      noise_sigma: 0.1              # additive Gaussian gradient noise (least squares)
      problem_seed: 0               # draws A and x*
      precondition: none            # none | kfac-exact | kfac-circuit: the update direction (F + λI)⁻¹ g, F = XᵀX/N
      damping: 0.01                 # λ of the preconditioner (least squares)
      tiki_taka: {lr_fast: null, lr_transfer: 1.0, gamma: 0.0, transfer_every: 1, columns_per_transfer: null,
                  chop_every: null, buffer_threshold: 1.0}   # chop_every null: round(1/lr) transfers
      tile: {mapping: differential, read_voltage: 0.2, target_swing: 0.5}
      write: {wire_ohm: 0.0, scheme: v/2, array_rows: 64, array_cols: 64, calibration: none}
      network: {...}                # problem emnist only (training/analog/network.py)
"""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping

from amc.errors import ConfigError
from amc.tiles.devices import DeviceModel
from amc.tiles.pulses import UPDATE_MODES
from amc.tiles.tile import MAPPINGS
from amc.tiles.write_circuit import SCHEMES

from .algorithms import ALGORITHMS

PROBLEMS = ("least-squares", "emnist")
PRECONDITIONERS = ("none", "kfac-exact", "kfac-circuit")
CALIBRATIONS = ("none", "ideal", "in-circuit")
DEFAULTS: dict[str, Any] = {
    "problem": "least-squares", "algorithm": "tiki-taka", "lr": 0.01, "tau": None, "device": "wu2024-softbounds",
    "update": "mean-field", "bit_length": 300, "iterations": None, "tail_fraction": 0.2, "noise_sigma": 0.1,
    "problem_seed": 0, "bias": True, "precondition": "none", "damping": 0.01,
    "tiki_taka": {"lr_fast": None, "lr_transfer": 1.0, "gamma": 0.0, "transfer_every": 1,
                  "columns_per_transfer": None, "chop_every": None, "buffer_threshold": 1.0},
    "tile": {"mapping": "differential", "read_voltage": 0.2, "target_swing": 0.5},
    "write": {"wire_ohm": 0.0, "scheme": "v/2", "array_rows": 64, "array_cols": 64, "calibration": "none"},
    "network": {"model": "fcn", "hidden": [128], "epochs": 1, "batch_size": 16, "n_train": 8000, "n_test": 2000,
                "evals_per_epoch": 4, "data_dir": None},
}


def validate(spec: Mapping[str, Any], where: str = "analog") -> dict:
    """Defaults filled in; an unknown key, a wrong type or a value with no effect raises ConfigError."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: the analog section must be a mapping, got {spec!r}")
    out = copy.deepcopy(DEFAULTS)
    for key, value in spec.items():
        if key not in DEFAULTS:
            raise ConfigError(f"{where}: unknown key 'analog.{key}'; allowed: {', '.join(DEFAULTS)}")
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: analog.{key} must be a mapping, got {value!r}")
            for sub in value:
                if sub not in DEFAULTS[key]:
                    raise ConfigError(f"{where}: unknown key 'analog.{key}.{sub}'; allowed: {', '.join(DEFAULTS[key])}")
            out[key].update(value)
        else:
            out[key] = value
    _choice(out["problem"], PROBLEMS, f"{where}: analog.problem")
    _choice(out["algorithm"], ALGORITHMS, f"{where}: analog.algorithm")
    _choice(out["update"], UPDATE_MODES, f"{where}: analog.update")
    _choice(out["tile"]["mapping"], MAPPINGS, f"{where}: analog.tile.mapping")
    _choice(out["write"]["scheme"], SCHEMES, f"{where}: analog.write.scheme")
    _choice(out["write"]["calibration"], CALIBRATIONS, f"{where}: analog.write.calibration")
    _choice(out["precondition"], PRECONDITIONERS, f"{where}: analog.precondition")
    _positive(out["damping"], f"{where}: analog.damping")
    if out["problem"] != "least-squares" and ("precondition" in spec or "damping" in spec):
        raise ConfigError(f"{where}: analog.precondition/damping apply to the least-squares problem only")
    if out["precondition"] == "none" and "damping" in spec:
        raise ConfigError(f"{where}: analog.damping has no effect without analog.precondition")
    _positive(out["lr"], f"{where}: analog.lr")
    if out["tau"] is not None:
        _positive(out["tau"], f"{where}: analog.tau")
    _count(out["bit_length"], f"{where}: analog.bit_length")
    if out["iterations"] is not None:
        _count(out["iterations"], f"{where}: analog.iterations")
    if not 0 < float(out["tail_fraction"]) <= 1:
        raise ConfigError(f"{where}: analog.tail_fraction must be in (0, 1], got {out['tail_fraction']!r}")
    if not float(out["noise_sigma"]) >= 0:
        raise ConfigError(f"{where}: analog.noise_sigma must be >= 0, got {out['noise_sigma']!r}")
    if float(out["write"]["wire_ohm"]) < 0:
        raise ConfigError(f"{where}: analog.write.wire_ohm must be >= 0, got {out['write']['wire_ohm']!r}")
    device = DeviceModel.from_dict(out["device"], where=f"{where}: analog.device")
    if out["tau"] is not None and device.kind != "soft-bounds":
        raise ConfigError(f"{where}: analog.tau sets a symmetric soft-bounds range; the device is {device.kind}")
    if out["algorithm"] == "digital-sgd":
        for key in ("update", "tau", "device", "bit_length", "write", "tile"):
            if key in spec:
                raise ConfigError(f"{where}: analog.{key} has no effect on digital-sgd (no device)")
    if out["algorithm"] not in ("tiki-taka", "c-ttv2") and "tiki_taka" in spec:
        raise ConfigError(f"{where}: analog.tiki_taka has no effect on {out['algorithm']}")
    if out["algorithm"] == "tiki-taka":
        for key in ("chop_every", "buffer_threshold"):
            if key in (spec.get("tiki_taka") or {}):
                raise ConfigError(f"{where}: analog.tiki_taka.{key} applies to c-ttv2 only")
    if out["problem"] != "emnist" and "network" in spec:
        raise ConfigError(f"{where}: analog.network applies to problem emnist only")
    if out["problem"] == "emnist" and ("noise_sigma" in spec or "iterations" in spec or "bias" in spec):
        raise ConfigError(f"{where}: analog.noise_sigma/iterations/bias apply to the least-squares problem only")
    return out


def _choice(value, allowed, where):
    if value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")


def _positive(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{where} must be a positive number, got {value!r}")


def _count(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
