import numpy as np
import pytest

from training.data import Dataset
from training.model import ConvNet


def tiny_data(n=96, size=16, n_classes=4, seed=0, name="tiny"):
    """Learnable random data: class k has a bright square at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.random((n, size, size)).astype(np.float32) * 0.3
    for k in range(n_classes):
        r, c = divmod(k, 2)
        x[y == k, 2 + 6 * r:6 + 6 * r, 2 + 6 * c:6 + 6 * c] += 0.7
    return Dataset(x, y.astype(np.int64), n_classes, name, synthetic=True)


@pytest.fixture
def tiny():
    return tiny_data


@pytest.fixture
def small_model():
    """float64 model on 12x12 inputs: conv 5x5 1->3, pool 4 (-> 2x2), linear 12 -> 6."""
    return ConvNet(n_classes=6, image_size=12, channels=3, kernel=5, pool=4, dtype=np.float64)
