"""DAC/ADC models shared by the INV and MVM circuits: symmetric mid-tread quantisers."""
from __future__ import annotations

from typing import Optional

import numpy as np


def quantise_symmetric(values: np.ndarray, bits: Optional[int], full_scale: float) -> np.ndarray:
    """Round to 2^(bits-1)-1 levels per polarity over [-full_scale, full_scale], clipping beyond it."""
    if bits is None:
        return values
    levels = 2 ** (bits - 1) - 1 if bits > 1 else 1
    return np.clip(np.round(values / full_scale * levels), -levels, levels) * full_scale / levels
