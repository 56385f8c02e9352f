"""A learnable batch for optimiser tests: random images with a bright pixel at a class-specific place."""
import numpy as np


def learnable_batch(model, n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, model.image_size, model.image_size))
    y = np.arange(n) % model.n_classes
    x[np.arange(n), y, y] += 3.0               # learnable signal
    return x, y
