import numpy as np
import pytest


def random_spd(n: int, seed: int, lam_min: float = 0.5, lam_max: float = 2.0) -> np.ndarray:
    """SPD matrix with eigenvalues lam_min (once) and uniform in [1, lam_max] otherwise."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([[lam_min], rng.uniform(1.0, lam_max, n - 1)])
    return (q * lam) @ q.T


@pytest.fixture
def spd():
    return random_spd
