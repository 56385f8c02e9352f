"""A layer's weight matrix on a crossbar tile, read through the periphery of our MVM arrays.

Mapping (``mapping``):
- ``differential``: each weight is a pair, G± = g_mid ± w·g_w/2 with g_w = (g_max - g_min)/(w_max - w_min) and
  g_mid the window's middle, so (G⁺ - G⁻) = w·g_w (both devices of the pair carry the weight, as aihwkit's
  differential mapping);
- ``reference``: one device per weight, G = g_min + (w - w_min)·g_w, and one reference column per row at the
  conductance of w = 0 whose current is subtracted (G - G_ref = w·g_w).

Reads (forward y = W x, backward δ = Wᵀ d): the input is scaled to its largest entry and converted by the DAC
(``io.dac_bits``) onto ``read_voltage``; the cells' currents (one read-noise draw per read, ``device.read_noise_sigma``
of amc/hw/periphery.read_noise) reach a TIA whose fixed gain puts the largest possible row current (every weight
at the bound, every input at full scale) at ``target_swing`` of the op-amp swing; the output is judged for
saturation and converted by the ADC (amc/hw/periphery.saturated/adc) -- the same functions as AnalogMVM. With wire
resistance (``wires.*``) the reads run in ngspice on the MVM deck of amc/hw/mvm.py (quasi-static batch, one run
per read batch). Every read is counted in ``counts`` (mvm_reads, DAC and ADC conversions, ngspice runs).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from amc.config import CircuitConfig
from amc.errors import ConfigError
from amc.hw import periphery
from amc.hw.converters import quantise_symmetric
from amc.tiles.array import PulsedArray

MAPPINGS = ("differential", "reference")


class WeightTile:
    """A PulsedArray with its conductance mapping and its read periphery."""

    def __init__(self, array: PulsedArray, config: CircuitConfig, mapping: str = "differential",
                 read_voltage: float = 0.2, target_swing: float = 0.5, rng: Optional[np.random.Generator] = None,
                 ideal_reads: bool = False):
        if mapping not in MAPPINGS:
            raise ConfigError(f"tile mapping must be one of {', '.join(MAPPINGS)}, got {mapping!r}")
        if not 0 < target_swing < config.io.linear_fraction:
            raise ConfigError(f"target_swing must be in (0, {config.io.linear_fraction}), got {target_swing!r}")
        self.array = array
        self.config = config
        self.mapping = mapping
        self.read_voltage = float(read_voltage)
        self.target_swing = float(target_swing)
        self.rng = rng if rng is not None else np.random.default_rng(config.device.seed + 104729)
        self.ideal_reads = bool(ideal_reads)
        self.saturated_reads = 0          # reads with an output beyond the linear swing
        d = array.device
        self.g_w = (config.device.g_max - config.device.g_min) / (d.w_max - d.w_min)
        m, n = array.shape
        # Fixed TIA gains, one for forward reads (rows sensed) and one for backward reads (columns sensed).
        self.rf_forward = self._rf(n)
        self.rf_backward = self._rf(m)

    def __repr__(self) -> str:
        return (f"WeightTile({self.array.shape[0]}x{self.array.shape[1]}, {self.mapping}, "
                f"{self.array.device.kind}; {self.config.describe()})")

    @property
    def counts(self):
        return self.array.counts

    def _rf(self, fan_in: int) -> float:
        worst = self.read_voltage * fan_in * self.g_w * max(abs(self.array.device.w_max), abs(self.array.device.w_min))
        return self.target_swing * periphery.swing_limit(self.config) / worst

    # ---- conductances ------------------------------------------------------------------------------------
    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """(G_signal, G_subtracted): G⁺/G⁻ of the pairs, or each cell and its row's reference device."""
        dev, w = self.config.device, self.array.w
        d = self.array.device
        if self.mapping == "differential":
            mid = 0.5 * (dev.g_min + dev.g_max)
            return mid + 0.5 * w * self.g_w, mid - 0.5 * w * self.g_w
        g = dev.g_min + (w - d.w_min) * self.g_w
        return g, np.full_like(g, dev.g_min - d.w_min * self.g_w)

    # ---- reads ---------------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = W x (x: (n,) or (n, B)), through DAC, cells, TIA, ADC; W is the calibrated weight."""
        return self._read(np.asarray(x, float), transpose=False)

    def backward(self, d: np.ndarray) -> np.ndarray:
        """δ = Wᵀ d (d: (m,) or (m, B)): the same array read from the other side."""
        return self._read(np.asarray(d, float), transpose=True)

    def read_columns(self, columns) -> np.ndarray:
        """Columns of W read by one-hot forward inputs (Tiki-Taka's transfer read): shape (m, len(columns))."""
        n = self.array.shape[1]
        columns = np.asarray(columns)
        if len(columns) == n and np.array_equal(columns, np.arange(n)):
            if getattr(self, "_eye", None) is None:
                self._eye = np.eye(n)
            return self.forward(self._eye)
        e = np.zeros((n, len(columns)))
        e[columns, np.arange(len(columns))] = 1.0
        return self.forward(e)

    def read_device_weights(self) -> np.ndarray:
        """Every cell's device weight (before the reference is subtracted), read column by column."""
        ref = self.array.reference
        self.array.reference = np.zeros_like(ref)
        try:
            return self.read_columns(range(self.array.shape[1]))
        finally:
            self.array.reference = ref

    def _read(self, v: np.ndarray, transpose: bool) -> np.ndarray:
        m, n = self.array.shape
        fan_in, fan_out = (m, n) if transpose else (n, m)
        if v.shape[0] != fan_in:
            raise ConfigError(f"tile read input has {v.shape[0]} entries, the tile expects {fan_in}")
        cols = v.reshape(fan_in, -1)
        k = cols.shape[1]
        w_read = self.array.weights
        if self.ideal_reads:
            y = (w_read.T if transpose else w_read) @ cols
            self.counts.add(mvm_reads=k, digital_flops=0)
            return y.reshape((fan_out,) + v.shape[1:])
        scale = np.max(np.abs(cols), axis=0)
        scale[scale == 0] = 1.0
        codes = cols / scale
        if self.config.io.dac_bits is not None:
            codes = quantise_symmetric(codes, self.config.io.dac_bits, 1.0)
        volts = self.read_voltage * codes
        rf = self.rf_backward if transpose else self.rf_forward
        sigma = self.config.device.read_noise_sigma
        if self.config.wires.enabled:
            out = self._ngspice_reads(*self.conductances(), volts, rf, transpose)
        else:
            if sigma > 0:   # one read-noise draw per read (per input vector)
                g_sig, g_sub = self.conductances()
                out = np.empty((fan_out, k))
                for c in range(k):
                    gs, gb = periphery.read_noise(g_sig, g_sub, sigma, self.rng, self.config.device)
                    out[:, c] = -rf * ((gs - gb).T if transpose else gs - gb) @ volts[:, c]
            else:
                diff = self.array.w * self.g_w          # G_sig - G_sub = w·g_w in both mappings
                out = -rf * ((diff.T if transpose else diff) @ volts)
            if self.config.opamp.v_sat is not None:
                v_sat = periphery.swing_limit(self.config)
                out = np.clip(out, -v_sat, v_sat)
        if self.config.opamp.v_sat is not None:
            self.saturated_reads += int(np.sum(np.any(periphery.saturated(out, self.config), axis=0)))
        read = periphery.adc(out, self.config) if self.config.io.adc_bits is not None else out
        y = read * (scale / (-rf * self.g_w * self.read_voltage))
        if self.array.has_reference:
            # the reference devices' current (the symmetric point) is subtracted: a read of a known matrix
            ref = self.array.reference
            y = y - (ref.T if transpose else ref) @ (codes * scale)
        self.counts.add(mvm_reads=k, dac_conversions=k * fan_in, adc_conversions=k * fan_out)
        return y.reshape((fan_out,) + v.shape[1:])

    def _ngspice_reads(self, g_sig, g_sub, volts, rf, transpose) -> np.ndarray:
        """The wired tile's reads: the MVM deck (DACs on columns, TIAs on rows, resistive grid) in ngspice."""
        from amc.hw.mvm import build_mvm_deck
        from amc.hw.runner import session
        gp, gn = (g_sig.T, g_sub.T) if transpose else (g_sig, g_sub)
        rows = gp.shape[0]
        ng = session()
        runs0 = ng.runs
        k = volts.shape[1]
        try:
            batch = volts if k > 1 else np.concatenate([volts, volts], axis=1)
            ng.load(build_mvm_deck(gp, gn, batch, rf, self.config, header="weight tile read batch"))
            raw = ng.run(["time"] + [f"out_{i}" for i in range(rows)], command=f"tran 1 {batch.shape[1] - 1} 0 1")
            samples = np.arange(batch.shape[1], dtype=float)
            out = np.stack([np.interp(samples, raw["time"], raw[f"out_{i}"]) for i in range(rows)])[:, :k]
        finally:
            ng.clean()
            self.counts.add(ngspice_runs=ng.runs - runs0)
        return out
