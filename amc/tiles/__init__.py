"""Weight tiles for analog weight updates: device response models, pulse trains, tiles, the write circuit."""
from amc.tiles.array import PulsedArray
from amc.tiles.devices import PRESETS, DeviceModel, preset
from amc.tiles.tile import WeightTile
from amc.tiles.write_circuit import PulseModel, WriteCircuit

__all__ = ["DeviceModel", "PRESETS", "preset", "PulsedArray", "WeightTile", "WriteCircuit", "PulseModel"]
