"""Pulsed device response models: how far one programming pulse moves a cell's weight, as a function of the weight.

Every model is written as ``step_up(w) = dw_min * s_up * q_up(w)`` and ``step_down(w) = dw_min * s_down * q_down(w)``
(magnitudes, weight units): ``q`` is the model's shape (1 at w = 0 for the symmetric models), ``s_up = 1 + up_down``
and ``s_down = 1 - up_down`` the up/down asymmetry (IBM aihwkit's convention). Weights live in ``[w_min, w_max]``.
Shapes (``kind``):

- ``soft-bounds``   q_up = 1 - w/w_max, q_down = 1 - w/w_min: steps shrink linearly towards each bound. The
  mean-field update of a desired increment Δ is then exactly W + Δ - (1/τ)|Δ| ⊙ W for w_max = -w_min = τ,
  up_down = 0 (Wu et al., NeurIPS 2024, eq. 3); its symmetric point is w = up_down·τ.
- ``linear-step``   q_up = 1 - γ_up·w/w_max, q_down = 1 + γ_down·w/|w_min|, hard-clipped at the bounds.
- ``constant-step`` q = 1 (Gokmen & Vlasov 2016's idealised device), hard-clipped.
- ``exp-step``      q_up = max(0, 1 - A_up·exp(γ_up·z))/(1 - A_up), q_down likewise with -z, z = w/w_max:
  steps collapse exponentially near a bound (after aihwkit's ExpStepDevice, not its exact parameterisation;
  normalised to 1 at w = 0).
- ``pow-step``      q_up = (2(w_max - w)/(w_max - w_min))^γ_up, q_down = (2(w - w_min)/(w_max - w_min))^γ_down.
- ``table``         q_up, q_down interpolated from a user's measured ΔG-vs-G table (``load_table``).

Variation: device-to-device (per cell, drawn once by :meth:`DeviceModel.draw_cells`): dw_min (``dw_min_dtod``),
up/down asymmetry (``up_down_dtod``), bounds (``bounds_dtod``); cycle-to-cycle (per pulse): each step is multiplied
by 1 + ``dw_min_std``·ξ. A finite number of states: ``states`` sets dw_min = (w_max - w_min)/states.
"""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from amc.errors import ConfigError

KINDS = ("soft-bounds", "linear-step", "constant-step", "exp-step", "pow-step", "table")
# Shape parameters each kind reads; any other shape key is an error (it would have no effect).
SHAPE_KEYS = {
    "soft-bounds": (),
    "constant-step": (),
    "linear-step": ("gamma_up", "gamma_down"),
    "exp-step": ("A_up", "A_down", "gamma_up", "gamma_down"),
    "pow-step": ("gamma_up", "gamma_down"),
    "table": ("path",),
}
SHAPE_DEFAULTS = {"gamma_up": 1.0, "gamma_down": 1.0, "A_up": 0.1, "A_down": 0.1}


@dataclass(frozen=True)
class DeviceModel:
    """One device type: response shape, step, bounds, variations, and where its numbers come from."""

    kind: str = "soft-bounds"
    dw_min: Optional[float] = 0.001
    w_max: float = 1.0
    w_min: float = -1.0
    up_down: float = 0.0
    shape: Mapping[str, Any] = field(default_factory=dict)
    states: Optional[int] = None
    dw_min_dtod: float = 0.0       # relative device-to-device spread of dw_min
    up_down_dtod: float = 0.0      # absolute device-to-device spread of up_down
    bounds_dtod: float = 0.0       # relative device-to-device spread of w_max and w_min
    dw_min_std: float = 0.0        # relative cycle-to-cycle spread of every pulse's step
    source: str = "user"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"device.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        unknown = sorted(set(self.shape) - set(SHAPE_KEYS[self.kind]))
        if unknown:
            raise ConfigError(f"device.shape key(s) {', '.join(unknown)} have no effect on a {self.kind} device "
                              f"(it reads: {', '.join(SHAPE_KEYS[self.kind]) or 'none'})")
        if not (self.w_max > 0 > self.w_min):
            raise ConfigError(f"device bounds must satisfy w_min < 0 < w_max, got [{self.w_min}, {self.w_max}]")
        if self.states is not None:
            if isinstance(self.states, bool) or not isinstance(self.states, int) or self.states < 2:
                raise ConfigError(f"device.states must be an integer >= 2, got {self.states!r}")
        elif self.dw_min is None or not self.dw_min > 0:
            raise ConfigError(f"device.dw_min must be positive (or give device.states), got {self.dw_min!r}")
        if not -1 < self.up_down < 1:
            raise ConfigError(f"device.up_down must be in (-1, 1), got {self.up_down!r}")
        for name in ("dw_min_dtod", "up_down_dtod", "bounds_dtod", "dw_min_std"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"device.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.kind == "table" and not self.shape.get("path"):
            raise ConfigError("a table device needs device.shape.path (a CSV of g, dg_up, dg_down)")

    @property
    def step(self) -> float:
        """dw_min: the mean step at q = 1 (from ``states`` when given)."""
        if self.states is not None:
            return (self.w_max - self.w_min) / self.states
        return float(self.dw_min)

    @property
    def tau(self) -> float:
        """Half the weight range: the τ of Wu et al. for a symmetric range."""
        return 0.5 * (self.w_max - self.w_min)

    def param(self, key: str) -> float:
        return float(self.shape.get(key, SHAPE_DEFAULTS.get(key, 0.0)))

    def symmetric_point(self) -> float:
        """The weight where the mean up and down steps are equal (by bisection on the response; nominal cell)."""
        cells = self.draw_cells((1,), np.random.default_rng(0), nominal=True)
        lo, hi = self.w_min, self.w_max
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            diff = cells.step_up(np.array([mid]))[0] - cells.step_down(np.array([mid]))[0]
            lo, hi = (mid, hi) if diff > 0 else (lo, mid)
        return 0.5 * (lo + hi)

    def draw_cells(self, shape: tuple, rng: np.random.Generator, nominal: bool = False) -> "CellParameters":
        """One device-to-device draw for an array of ``shape`` (kept for the array's life)."""
        def spread(sigma):
            return np.zeros(shape) if nominal or sigma == 0 else sigma * rng.standard_normal(shape)
        scale = np.maximum(1.0 + spread(self.dw_min_dtod), 0.0)
        up_down = np.clip(self.up_down + spread(self.up_down_dtod), -0.99, 0.99)
        w_max = self.w_max * np.maximum(1.0 + spread(self.bounds_dtod), 0.05)
        w_min = self.w_min * np.maximum(1.0 + spread(self.bounds_dtod), 0.05)
        table = load_table(self.shape["path"], self) if self.kind == "table" else None
        return CellParameters(self, self.step * scale * (1 + up_down), self.step * scale * (1 - up_down),
                              w_max, w_min, table)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = dict(self.shape)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "device") -> "DeviceModel":
        if isinstance(data, str):
            return preset(data)
        data = dict(data)
        base = preset(data.pop("preset")) if "preset" in data else None
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: preset, {', '.join(sorted(names))}")
        if "states" in data and "dw_min" in data and data["states"] is not None and data["dw_min"] is not None:
            raise ConfigError(f"{where}: give dw_min or states, not both (states sets dw_min = range/states)")
        if "states" in data and data["states"] is not None:
            data.setdefault("dw_min", None)
        try:
            if base is not None:
                if data.get("kind", base.kind) != base.kind and "shape" not in data:
                    data["shape"] = {}
                source = data.pop("source", base.source + " (modified)")
                return replace(base, **data, source=source)
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def describe(self) -> str:
        return (f"{self.kind} device, dw_min {self.step:.3g}, w in [{self.w_min:g}, {self.w_max:g}], "
                f"up_down {self.up_down:g}; source: {self.source}")


@dataclass
class ResponseTable:
    """A measured response: weight grid and the up/down step shapes on it (normalised to the table's median)."""

    w: np.ndarray
    q_up: np.ndarray
    q_down: np.ndarray


def load_table(path: str | Path, device: DeviceModel) -> ResponseTable:
    """Read a CSV of measured ΔG per pulse against G (columns ``g``, ``dg_up``, ``dg_down``; any unit, magnitudes).

    G spans the device's weight range linearly (lowest G -> w_min, highest -> w_max); the steps are normalised to
    the median of all measured steps, so ``dw_min`` is the weight step of a median pulse.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"device table not found: {path}")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        g = np.array([float(r["g"]) for r in rows])
        up = np.array([abs(float(r["dg_up"])) for r in rows])
        down = np.array([abs(float(r["dg_down"])) for r in rows])
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: a device table needs numeric columns g, dg_up, dg_down ({exc})") from None
    if len(g) < 2 or not np.all(np.diff(g) > 0):
        raise ConfigError(f"{path}: the g column must hold at least 2 strictly increasing values")
    scale = float(np.median(np.concatenate([up, down])))
    if not scale > 0:
        raise ConfigError(f"{path}: the measured steps are all zero")
    w = device.w_min + (g - g[0]) / (g[-1] - g[0]) * (device.w_max - device.w_min)
    return ResponseTable(w, up / scale, down / scale)


@dataclass
class CellParameters:
    """Per-cell parameters after the device-to-device draw; evaluates the step responses element-wise."""

    device: DeviceModel
    dw_up: np.ndarray
    dw_down: np.ndarray
    w_max: np.ndarray
    w_min: np.ndarray
    table: Optional[ResponseTable] = None
    scale_up: Any = 1.0      # position-dependent factors from the write circuit (1 = nominal amplitude)
    scale_down: Any = 1.0
    _rates: Any = field(default=None, repr=False, compare=False)

    def with_write_factors(self, up: np.ndarray, down: np.ndarray) -> "CellParameters":
        return replace(self, scale_up=np.asarray(up, float), scale_down=np.asarray(down, float), _rates=None)

    def q_up(self, w: np.ndarray) -> np.ndarray:
        d, kind = self.device, self.device.kind
        if kind == "soft-bounds":
            return np.maximum(1.0 - w / self.w_max, 0.0)
        if kind == "constant-step":
            return np.where(w < self.w_max, 1.0, 0.0)
        if kind == "linear-step":
            return np.where(w < self.w_max, np.maximum(1.0 - d.param("gamma_up") * w / self.w_max, 0.0), 0.0)
        if kind == "exp-step":
            a = d.param("A_up")
            return np.maximum(1.0 - a * np.exp(d.param("gamma_up") * w / self.w_max), 0.0) / (1.0 - a)
        if kind == "pow-step":
            base = np.clip(2.0 * (self.w_max - w) / (self.w_max - self.w_min), 0.0, None)
            return base ** d.param("gamma_up")
        return np.interp(w, self.table.w, self.table.q_up, left=self.table.q_up[0], right=0.0)

    def q_down(self, w: np.ndarray) -> np.ndarray:
        d, kind = self.device, self.device.kind
        if kind == "soft-bounds":
            return np.maximum(1.0 - w / self.w_min, 0.0)
        if kind == "constant-step":
            return np.where(w > self.w_min, 1.0, 0.0)
        if kind == "linear-step":
            return np.where(w > self.w_min, np.maximum(1.0 + d.param("gamma_down") * w / np.abs(self.w_min), 0.0), 0.0)
        if kind == "exp-step":
            a = d.param("A_down")
            return np.maximum(1.0 - a * np.exp(d.param("gamma_down") * w / self.w_min), 0.0) / (1.0 - a)
        if kind == "pow-step":
            base = np.clip(2.0 * (w - self.w_min) / (self.w_max - self.w_min), 0.0, None)
            return base ** d.param("gamma_down")
        return np.interp(w, self.table.w, self.table.q_down, left=0.0, right=self.table.q_down[-1])

    def step_up(self, w: np.ndarray) -> np.ndarray:
        return self.dw_up * self.scale_up * self.q_up(w)

    def step_down(self, w: np.ndarray) -> np.ndarray:
        return self.dw_down * self.scale_down * self.q_down(w)

    def clip(self, w: np.ndarray) -> np.ndarray:
        return np.clip(w, self.w_min, self.w_max)

    def symmetric_points(self) -> np.ndarray:
        """Per cell: where step_up = step_down (bisection), the point alternating pulses converge to."""
        shape = np.broadcast_shapes(np.shape(self.dw_up), np.shape(self.scale_up), np.shape(self.scale_down))
        lo = np.broadcast_to(self.w_min, shape).astype(float).copy()
        hi = np.broadcast_to(self.w_max, shape).astype(float).copy()
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            up_wins = self.step_up(mid) > self.step_down(mid)
            lo = np.where(up_wins, mid, lo)
            hi = np.where(up_wins, hi, mid)
        return 0.5 * (lo + hi)

    # ---- updates ---------------------------------------------------------------------------------------
    def mean_field(self, w: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Expected update for a desired increment Δ (continuum of pulses, first order): w + Δ·q_sign(w)."""
        if self.device.kind == "soft-bounds":   # the hot path of long runs: same numbers, fewer array passes
            if self._rates is None:
                step = self.device.step
                self._rates = (self.dw_up * self.scale_up / step, self.dw_down * self.scale_down / step,
                               1.0 / self.w_max, 1.0 / self.w_min)
            up, down, inv_max, inv_min = self._rates
            rate = np.where(delta > 0, up * (1.0 - w * inv_max), down * (1.0 - w * inv_min))
            return np.minimum(np.maximum(w + delta * rate, self.w_min), self.w_max)
        up = self.dw_up * self.scale_up * self.q_up(w) / self.device.step
        down = self.dw_down * self.scale_down * self.q_down(w) / self.device.step
        return self.clip(w + np.where(delta > 0, delta * up, delta * down))

    def apply_pulses(self, w: np.ndarray, counts: np.ndarray, sign: np.ndarray,
                     rng: Optional[np.random.Generator] = None, exact: bool = False) -> np.ndarray:
        """Apply ``counts`` pulses of direction ``sign`` (+1 up, -1 down) to every cell.

        Soft-bounds and linear-step responses are affine in w, so n pulses have the closed form
        w_n = w* - (w* - w)(1 - d·b)^n (w* the response's zero); with cycle-to-cycle noise the n steps' deviations
        add as a Gaussian of std dw_min_std·step·sqrt(n). Other shapes (or ``exact``) go pulse by pulse.
        """
        counts = np.asarray(counts)
        sign = np.broadcast_to(sign, counts.shape)
        noisy = self.device.dw_min_std > 0 and rng is not None
        if not exact and self.device.kind in ("soft-bounds", "linear-step"):
            return self._affine_pulses(w, counts, sign, rng if noisy else None)
        w = np.array(w, dtype=float, copy=True)
        for k in range(int(counts.max(initial=0))):
            active = counts > k
            step = np.where(sign > 0, self.step_up(w), -self.step_down(w))
            if noisy:
                step = step * (1.0 + self.device.dw_min_std * rng.standard_normal(w.shape))
            w = np.where(active, self.clip(w + step), w)
        return w

    def _affine_pulses(self, w, counts, sign, rng):
        d = self.device
        if d.kind == "soft-bounds":
            b_up, b_down = 1.0 / self.w_max, 1.0 / self.w_min          # q_up = 1 - b_up w, q_down = 1 - b_down w
        else:
            b_up, b_down = d.param("gamma_up") / self.w_max, -d.param("gamma_down") / np.abs(self.w_min)
        dw_up = self.dw_up * self.scale_up
        dw_down = self.dw_down * self.scale_down
        # up: w' = w + dw_up (1 - b_up w); down: w' = w - dw_down (1 - b_down w)
        a = np.where(sign > 0, dw_up, -dw_down)                      # w' = w + a (1 - b w)
        b = np.where(sign > 0, b_up, b_down)
        ab = a * b
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = (1.0 - ab) ** counts
            fixed = np.where(ab != 0, 1.0 / np.where(b != 0, b, 1.0), 0.0)
            moved = np.where(ab != 0, fixed - (fixed - w) * factor, w + counts * a)
        if rng is not None:
            q = np.where(sign > 0, self.q_up(0.5 * (w + moved)), self.q_down(0.5 * (w + moved)))
            moved = moved + d.dw_min_std * np.abs(a) * q * np.sqrt(counts) * rng.standard_normal(np.shape(w))
        moved = self.clip(moved)
        return np.where(counts > 0, moved, w)


# ---- presets ---------------------------------------------------------------------------------------------------
# Each preset names its source. Numbers of the aihwkit presets are the published fits as listed in IBM aihwkit's
# src/aihwkit/simulator/presets/devices.py (ReRamSBPresetDevice: a loose soft-bounds fit to Gong et al., Nat.
# Commun. 9, 2102 (2018), HfO2 RRAM; CapacitorPresetDevice: Li et al., VLSI 2018; GokmenVlasovPresetDevice:
# Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016)).
PRESETS: dict[str, DeviceModel] = {
    # Wu et al. NeurIPS 2024, S2-dynamic-verification: symmetric soft bounds on [-τ, τ], dw_min = τ/300
    # (their num_of_state = 300), no variation. τ = 1 here; the study sweeps it.
    "wu2024-softbounds": DeviceModel("soft-bounds", dw_min=1.0 / 300, w_max=1.0, w_min=-1.0,
                                     source="Wu et al. NeurIPS 2024 (arXiv 2406.12774), S2 setting: tau/300 step"),
    # aihwkit ReRamSBPresetDevice (Gong et al. 2018): dw_min 0.002, bounds 1.25/-0.75 (symmetric point shifted
    # to 0 by a reference device), dw_min_dtod 0.3, up_down_dtod 0.01, bounds_dtod ~0.3/1.25 and 0.3/0.75
    # (one relative spread here: 0.3), cycle-to-cycle dw_min_std 3.75 (aihwkit's per-pulse relative std).
    "rram-softbounds": DeviceModel("soft-bounds", dw_min=0.002, w_max=1.25, w_min=-0.75, up_down=0.0,
                                   dw_min_dtod=0.3, up_down_dtod=0.01, bounds_dtod=0.3, dw_min_std=3.75,
                                   source="IBM aihwkit ReRamSBPresetDevice: soft-bounds fit to Gong et al., "
                                          "Nat. Commun. 2018 (HfO2 RRAM)"),
    # aihwkit CapacitorPresetDevice (Li et al. VLSI 2018): linear step, gamma 0.05, dw_min 0.005, dtod 0.1/0.06/0.07,
    # dw_min_std 0.3.
    "capacitor-linear": DeviceModel("linear-step", dw_min=0.005, w_max=1.0, w_min=-1.0,
                                    shape={"gamma_up": 0.05, "gamma_down": 0.05}, dw_min_dtod=0.1,
                                    up_down_dtod=0.06, bounds_dtod=0.07, dw_min_std=0.3,
                                    source="IBM aihwkit CapacitorPresetDevice: linear-step fit to Li et al., VLSI 2018"),
    # Gokmen & Vlasov 2016 (aihwkit GokmenVlasovPresetDevice): constant step, 1200 states over [-1, 1],
    # dw_min_dtod 0.3, dw_min_std 0.3, up_down_dtod 0.01, bounds_dtod 0.3.
    "gokmen-vlasov": DeviceModel("constant-step", dw_min=0.0016, w_max=1.0, w_min=-1.0, dw_min_dtod=0.3,
                                 up_down_dtod=0.01, bounds_dtod=0.3, dw_min_std=0.3,
                                 source="Gokmen & Vlasov, Front. Neurosci. 2016 (aihwkit GokmenVlasovPresetDevice)"),
    # An ideal, symmetric constant-step device with 10,000 states: the digital-like control.
    "ideal": DeviceModel("constant-step", dw_min=2e-4, w_max=1.0, w_min=-1.0,
                         source="idealised control (aihwkit IdealizedPresetDevice's 10,000 states, no variation)"),
}


def preset(name: str) -> DeviceModel:
    if name not in PRESETS:
        raise ConfigError(f"unknown device preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]
