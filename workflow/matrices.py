"""Test matrices for circuit sweeps, built from the ``matrix.*`` keys of a sweep point.

``kind: spd``: H = Q diag(eig) Q^T with a random orthogonal Q and eigenvalues log-spaced from lambda_min to 1
(so the spectrum is set exactly: ``condition`` = 1/lambda_min; give one of the two). This is the damped
Kronecker factor of second-order training in miniature.

``kind: random-stable``: a non-symmetric H = I + r * A / sqrt(n) with A standard normal; by the circular law
its eigenvalues fill a disc of radius ~r around 1, so their real parts stay >= 1 - r = lambda_min > 0 and the
inversion loop is stable (``lambda_min`` defaults to 0.5).

The right-hand side is a standard-normal vector from the same seed. Everything is a pure function of the keys:
the same point always gets the same matrix, in any process.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from amc.errors import ConfigError

MATRIX_DEFAULTS: dict[str, Any] = {"n": 16, "kind": "spd", "condition": None, "lambda_min": None, "seed": 0}
MATRIX_KINDS = ("spd", "random-stable")


def validate_matrix_spec(spec: Mapping[str, Any], where: str) -> dict:
    """Return a normalised copy of a ``matrix`` mapping, or raise ConfigError naming the key."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: matrix must be a mapping, got {spec!r}")
    unknown = set(spec) - set(MATRIX_DEFAULTS)
    if unknown:
        raise ConfigError(f"{where}: unknown key 'matrix.{sorted(unknown)[0]}'; allowed: "
                          + ", ".join(f"matrix.{k}" for k in MATRIX_DEFAULTS))
    out = {**MATRIX_DEFAULTS, **spec}
    out["n"] = _int(out["n"], f"{where}: matrix.n", minimum=2)
    out["seed"] = _int(out["seed"], f"{where}: matrix.seed", minimum=0)
    if out["kind"] not in MATRIX_KINDS:
        raise ConfigError(f"{where}: matrix.kind must be one of {', '.join(MATRIX_KINDS)}, got {out['kind']!r}")
    if out["condition"] is not None and out["lambda_min"] is not None:
        raise ConfigError(f"{where}: give matrix.condition or matrix.lambda_min, not both")
    if out["condition"] is not None:
        out["condition"] = _float(out["condition"], f"{where}: matrix.condition")
        if out["condition"] < 1:
            raise ConfigError(f"{where}: matrix.condition must be >= 1, got {out['condition']}")
    if out["lambda_min"] is not None:
        out["lambda_min"] = _float(out["lambda_min"], f"{where}: matrix.lambda_min")
        if not 0 < out["lambda_min"] <= 1:
            raise ConfigError(f"{where}: matrix.lambda_min must be in (0, 1], got {out['lambda_min']}")
    return out


def make_problem(spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(H, g) for a validated matrix spec."""
    n, kind, seed = spec["n"], spec["kind"], spec["seed"]
    rng = np.random.default_rng([seed, n, MATRIX_KINDS.index(kind)])
    if kind == "spd":
        if spec.get("lambda_min") is not None:
            lam_min = spec["lambda_min"]
        else:
            lam_min = 1.0 / (spec.get("condition") or 10.0)
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        eig = np.logspace(0.0, np.log10(lam_min), n)
        h = (q * eig) @ q.T
        h = 0.5 * (h + h.T)
    else:
        lam_min = spec.get("lambda_min")
        if lam_min is None:
            lam_min = 1.0 / spec["condition"] if spec.get("condition") else 0.5
        r = 1.0 - lam_min
        h = np.eye(n) + r * rng.standard_normal((n, n)) / np.sqrt(n)
    g = rng.standard_normal(n)
    return h, g


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if not as_float.is_integer() or as_float < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return int(as_float)


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


def quantisable_spd(n: int, seed: int, cond_max: float = 10.0, rho: float = 0.12, levels: int = 8):
    """SPD test system: an SPD matrix on the device levels (cond <= cond_max) plus a full-precision perturbation.

    The perturbation is scaled so that rho(I - H Hq^-1) = ``rho`` (about 3 bits an iteration). Generic random SPD
    matrices with condition number 10 are NOT in this class: rounded to 8 levels at n = 16 their rho is 1-20
    (see test_generic_cond10_matrix_diverges_and_is_detected).
    """
    rng = np.random.default_rng(seed)
    while True:
        w = rng.standard_normal((n, n))
        m = w @ w.T / n
        ev = np.linalg.eigvalsh(m)
        c = rng.uniform(4.0, cond_max)
        m = m + (ev.max() - c * ev.min()) / (c - 1) * np.eye(n)
        m /= np.abs(m).max()
        hq = np.round(m * (levels - 1)) / (levels - 1)
        if np.linalg.eigvalsh(hq).min() <= 0 or np.linalg.cond(hq) > cond_max:
            continue
        p = rng.uniform(-1, 1, (n, n))
        p = (p + p.T) / 2
        np.fill_diagonal(p, 0.0)
        p *= rho / np.max(np.abs(np.linalg.eigvals(p @ np.linalg.inv(hq))))
        h = hq + p
        if np.linalg.cond(h) <= cond_max and np.linalg.eigvalsh(h).min() > 0:
            return h, rng.standard_normal(n)


def random_spd(n: int, seed: int, lam_min: float = 0.5, lam_max: float = 2.0) -> np.ndarray:
    """SPD matrix with eigenvalues lam_min (once) and uniform in [1, lam_max] otherwise (tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([[lam_min], rng.uniform(1.0, lam_max, n - 1)])
    return (q * lam) @ q.T


def kfac_like_factor(n: int, seed: int, damping: float = 0.03):
    """A damped K-FAC input factor A = E[a a^T] + damping I: strongly correlated 'pixel' features (a smoothed random
    field per sample, pooled pixels of one channel) plus the bias coordinate, like the fc-layer blocks of the letter
    CNN. After Jacobi equilibration its off-diagonals cluster near 0.3-0.9, which 8 levels round badly."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n - 1)))
    samples = 400
    field = rng.standard_normal((samples, side + 4, side + 4))
    kernel = np.ones(3) / 3
    for axis in (1, 2):
        field = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, field)
    a = np.maximum(field[:, 2:side + 2, 2:side + 2].reshape(samples, -1)[:, :n - 1] + 0.3, 0.0)
    a = np.concatenate([a, np.ones((samples, 1))], axis=1)
    return a.T @ a / samples + damping * np.eye(n)
