"""From a validated ``analog`` section and a circuit configuration to tiles and an algorithm."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from amc.config import CircuitConfig
from amc.tiles.array import PulsedArray
from amc.tiles.devices import DeviceModel
from amc.tiles.tile import WeightTile
from amc.tiles.write_circuit import PulseModel, WriteCircuit

from .algorithms import AnalogSGD, ChoppedTikiTaka, DigitalSGD, TikiTaka


def device_of(cfg: Mapping[str, Any]) -> DeviceModel:
    device = DeviceModel.from_dict(cfg["device"])
    tau = cfg.get("tau")
    if tau is None:
        return device
    # τ rescales the symmetric range and keeps the number of states (Wu et al.: dw_min = τ/300)
    ratio = float(tau) / device.tau
    return replace(device, w_max=float(tau), w_min=-float(tau), dw_min=device.step * ratio, states=None,
                   source=f"{device.source}; tau = {tau:g}")


_AMPLITUDES: dict = {}   # per process: write-circuit solutions by (conductances, wires, layout, scheme)


class WriteAccount:
    """What the write circuit did to a tile: amplitudes, step factors, symmetric points."""

    def __init__(self):
        self.amplitude_min = 1.0
        self.amplitude_mean = 1.0
        self.sp_shift_max = 0.0
        self.ngspice_runs = 0


def attach_write_circuit(tile: WeightTile, cfg: Mapping[str, Any], account: WriteAccount) -> None:
    """Place the tile at the far corner of its physical array, solve the write network (ngspice), and scale
    every cell's up/down steps by its effective pulse amplitude."""
    write = cfg["write"]
    ohm = float(write["wire_ohm"])
    if ohm == 0:
        return
    m, n = tile.array.shape
    rows, cols = max(int(write["array_rows"]), m), max(int(write["array_cols"]), n)
    dev = tile.config.device
    g = np.full((rows, cols), 0.5 * (dev.g_min + dev.g_max))    # other weights of the array: mid-window
    region = (slice(rows - m, rows), slice(cols - n, cols))
    g[region] = tile.conductances()[0]
    key = (g.tobytes(), ohm, rows, cols, m, n, write["scheme"])
    if key not in _AMPLITUDES:   # Tiki-Taka's two tiles start alike: one ngspice solve serves both
        circuit = WriteCircuit(g, ohm, ohm, region=region)
        _AMPLITUDES[key] = (circuit.effective_amplitudes(write["scheme"]), circuit.ngspice_runs)
        account.ngspice_runs += circuit.ngspice_runs
    amplitude = _AMPLITUDES[key][0]
    up, down = PulseModel().factors(amplitude)
    tile.array.set_write_factors(up, down)
    account.amplitude_min = min(account.amplitude_min, float(amplitude.min()))
    account.amplitude_mean = float(amplitude.mean())
    sp = tile.array.cells.symmetric_points()
    nominal = replace(tile.array.cells, scale_up=1.0, scale_down=1.0, _rates=None).symmetric_points()
    account.sp_shift_max = max(account.sp_shift_max, float(np.max(np.abs(sp - nominal))))


def calibrate(tile: WeightTile, cfg: Mapping[str, Any]) -> None:
    mode = cfg["write"]["calibration"]
    array = tile.array
    if mode == "ideal":   # a reference programmed at the nominal (wire-free) symmetric point, known exactly
        array.reference = replace(array.cells, scale_up=1.0, scale_down=1.0, _rates=None).symmetric_points()
        array.w = array.reference.copy()
    elif mode == "in-circuit":   # alternate pulses through the real write circuit, learn the point by reads
        array.calibrate_symmetric_point(tile.read_device_weights)


def make_tile(shape: tuple, cfg: Mapping[str, Any], circuit: CircuitConfig, rng: np.random.Generator,
              account: WriteAccount, w0: float = 0.0) -> WeightTile:
    array = PulsedArray(device_of(cfg), shape, rng, update=cfg["update"], bit_length=int(cfg["bit_length"]), w0=w0)
    t = cfg["tile"]
    tile = WeightTile(array, circuit, mapping=t["mapping"], read_voltage=float(t["read_voltage"]),
                      target_swing=float(t["target_swing"]), rng=rng)
    attach_write_circuit(tile, cfg, account)
    calibrate(tile, cfg)
    return tile


def make_algorithm(shape: tuple, cfg: Mapping[str, Any], circuit: CircuitConfig, rng: np.random.Generator,
                   account: WriteAccount):
    name = cfg["algorithm"]
    if name == "digital-sgd":
        return DigitalSGD(shape)
    if name == "analog-sgd":
        return AnalogSGD(make_tile(shape, cfg, circuit, rng, account))
    tt = dict(cfg["tiki_taka"])
    fast = make_tile(shape, cfg, circuit, rng, account)
    slow = make_tile(shape, cfg, circuit, rng, account)
    common = dict(lr_fast=tt["lr_fast"], lr_transfer=float(tt["lr_transfer"]), gamma=float(tt["gamma"]),
                  transfer_every=int(tt["transfer_every"]), columns_per_transfer=tt["columns_per_transfer"])
    if name == "tiki-taka":
        return TikiTaka(fast, slow, **common)
    # Our default chopper period: 1/lr transfers (A then integrates about one "time constant" of the flow
    # between flips; measured better than fixed 10/100/1000 across lr 0.03-0.01 on the least-squares problem).
    chop = tt["chop_every"] if tt["chop_every"] is not None else max(1, int(round(1.0 / float(cfg["lr"]))))
    return ChoppedTikiTaka(fast, slow, chop_every=int(chop),
                           buffer_threshold=float(tt["buffer_threshold"]), **common)
