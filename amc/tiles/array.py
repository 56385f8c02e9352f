"""A pulsed-update crossbar: the devices' weights, their one device-to-device draw, and in-place updates.

``PulsedArray(device, shape, rng)`` holds each cell's device weight ``w`` (what the conductances encode) and an
optional per-cell reference (a symmetric-point calibration subtracts it: the weight the algorithms see is
``w - reference``). Updates are rank-one pulse trains (``update(d, x, lr)``: ΔW = lr·d xᵀ) or their mean-field form;
every pulse is counted in ``counts``.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from amc.errors import ConfigError
from amc.hw.counters import OperationCounts
from amc.tiles.devices import CellParameters, DeviceModel
from amc.tiles.pulses import stochastic_pulse_trains, validate_mode


class PulsedArray:
    """Device weights of one m×n array under pulsed updates."""

    def __init__(self, device: DeviceModel, shape: tuple, rng: np.random.Generator, update: str = "pulsed",
                 bit_length: int = 31, update_management: bool = True, w0: float | np.ndarray = 0.0):
        self.device = device
        self.shape = tuple(shape)
        self.rng = rng
        self.mode = validate_mode(update, "update")
        if isinstance(bit_length, bool) or not isinstance(bit_length, int) or bit_length < 1:
            raise ConfigError(f"bit_length must be a positive integer, got {bit_length!r}")
        self.bit_length = bit_length
        self.update_management = bool(update_management)
        self.cells: CellParameters = device.draw_cells(self.shape, rng)
        self.w = self.cells.clip(np.broadcast_to(np.asarray(w0, float), self.shape).copy())
        self.reference = np.zeros(self.shape)
        self.counts = OperationCounts()
        self.clipped_lines = 0

    def __repr__(self) -> str:
        return f"PulsedArray({self.shape[0]}x{self.shape[1]}, {self.mode}, BL {self.bit_length}; {self.device.describe()})"

    @property
    def weights(self) -> np.ndarray:
        """The weight the algorithms see: device weight minus the calibrated reference."""
        return self.w - self.reference if self.has_reference else self.w

    @property
    def has_reference(self) -> bool:
        return self._reference_set

    @property
    def reference(self) -> np.ndarray:
        return self._reference

    @reference.setter
    def reference(self, value: np.ndarray) -> None:
        self._reference = np.asarray(value, float)
        self._reference_set = bool(np.any(self._reference))

    def set_write_factors(self, up: np.ndarray, down: np.ndarray) -> None:
        """Per-cell step factors from the write circuit (effective pulse amplitudes, amc/tiles/write_circuit.py)."""
        self.cells = self.cells.with_write_factors(up, down)

    # ---- updates ---------------------------------------------------------------------------------------
    def update(self, d: np.ndarray, x: np.ndarray, lr: float) -> None:
        """ΔW = lr·d xᵀ as one parallel pulse-train cycle (or its mean-field expectation)."""
        d = np.asarray(d, float).ravel()
        x = np.asarray(x, float).ravel()
        if d.size != self.shape[0] or x.size != self.shape[1]:
            raise ConfigError(f"rank-one update of shape ({d.size}, {x.size}) on a {self.shape} array")
        if self.mode == "mean-field":
            self.apply_mean_field(lr * np.outer(d, x))
            return
        trains = stochastic_pulse_trains(d, x, lr, self.device.step, self.bit_length, self.rng,
                                         self.update_management)
        self.w = self.cells.apply_pulses(self.w, trains.counts, trains.sign, self.rng)
        self.clipped_lines += trains.clipped_lines
        self.counts.add(update_cycles=1, cell_pulses=int(trains.counts.sum()), driver_pulses=trains.line_pulses)

    def update_batch(self, d: np.ndarray, x: np.ndarray, lr: float) -> None:
        """Σ_b lr·d_b x_bᵀ as B successive rank-one cycles (pulsed) or one mean-field step. d: (m, B), x: (n, B)."""
        if self.mode == "mean-field":
            self.apply_mean_field(lr * (np.asarray(d) @ np.asarray(x).T))
            return
        for b in range(np.shape(d)[1]):
            self.update(d[:, b], x[:, b], lr)

    def apply_mean_field(self, delta: np.ndarray) -> None:
        """The expected response to a desired increment Δ (continuum of pulses); counts the pulses it stands for."""
        new = self.cells.mean_field(self.w, delta)
        if self.device.dw_min_std > 0:
            # cycle-to-cycle spread of the |Δ|/dw_min pulses the expectation stands for (a Gaussian of their sum)
            moved = np.abs(new - self.w)
            new = self.cells.clip(new + self.device.dw_min_std * np.sqrt(moved * self.device.step)
                                  * self.rng.standard_normal(self.shape))
        self.w = new
        self.counts.add(update_cycles=1, cell_pulses=int(np.rint(np.abs(delta).sum() / self.device.step)))

    def pulse_all(self, sign: float, pulses: int = 1) -> None:
        """Full-array pulses of one polarity (every cell selected): the calibration's and a reset's tool."""
        counts = np.full(self.shape, pulses, dtype=np.int64)
        self.w = self.cells.apply_pulses(self.w, counts, np.full(self.shape, float(sign)), self.rng)
        self.counts.add(update_cycles=pulses, cell_pulses=int(counts.sum()),
                        driver_pulses=pulses * (self.shape[0] + self.shape[1]))

    # ---- symmetric point ---------------------------------------------------------------------------------
    def calibrate_symmetric_point(self, read: Callable[[], np.ndarray], cycles: int = 1000,
                                  average: int = 20) -> np.ndarray:
        """Alternate up/down pulses on every cell until its conductance settles at its symmetric point, then
        learn it through ``read`` (e.g. a tile's periphery read of the device weights), averaging the last
        ``average`` up/down pairs; the result becomes the reference subtracted from every later weight.
        Returns the reference. (aihwkit's SoftBoundsReference 'subtract_symmetry_point' is this done ideally.)"""
        if cycles < average:
            raise ConfigError(f"calibration cycles ({cycles}) must be >= averaged cycles ({average})")
        self.reference = np.zeros(self.shape)
        for _ in range(cycles - average):
            self.pulse_all(+1)
            self.pulse_all(-1)
        acc = np.zeros(self.shape)
        for _ in range(average):
            self.pulse_all(+1)
            acc += read()
            self.pulse_all(-1)
            acc += read()
        self.reference = acc / (2 * average)
        return self.reference.copy()
