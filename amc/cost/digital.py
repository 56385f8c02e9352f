"""Digital baselines for the same K-FAC work: measured on this CPU, and a documented GPU model.

K-FAC's digital linear algebra, per factor of dimension d (kfac-pytorch's habit: inverses every ``inverse_every``
steps, applied by matmul in between):
- inverse update: SPD inverse by Cholesky (LAPACK potrf + potri: d^3/3 + 2 d^3/3 flops);
- every step: G^-1 dW A^-1 by two matmuls.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.linalg import lapack

from amc.blas import with_blas_threads
from amc.errors import ConfigError, InputError
from amc.cost.workloads import LayerFactors, kfac_flops

# ASSUMPTION for the energy when RAPL is not readable: the per-core share of a current server socket's TDP, AMD EPYC
# 7763 (Zen 3 "Milan"): 280 W default TDP for 64 cores (AMD product page), 4.4 W per core, times the cores the
# measurement used. The CPU's own name is read from /proc/cpuinfo and printed beside it.
CPU_WATTS_PER_CORE = 280.0 / 64
RAPL_PATH = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


def cpu_model_name() -> str:
    """The CPU's model name as the machine reports it (/proc/cpuinfo), never assumed."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


@dataclass(frozen=True)
class DigitalCost:
    """Time and energy of digital work, with what was measured or assumed."""

    time_s: float
    energy_j: float
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"time_s": self.time_s, "energy_j": self.energy_j, **self.detail}


def _rapl_energy() -> Optional[float]:
    try:
        return int(RAPL_PATH.read_text()) * 1e-6
    except (OSError, ValueError):
        return None


def _spd(d: int, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
    x = rng.standard_normal((d, 2 * d))
    return (x @ x.T / (2 * d) + 1e-2 * np.eye(d)).astype(dtype)


def _spd_inverse(m: np.ndarray) -> np.ndarray:
    potrf, potri = (lapack.spotrf, lapack.spotri) if m.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    c, info = potrf(m, lower=1)
    if info:
        raise InputError(f"Cholesky failed (info {info}): the factor is not positive definite")
    inv, info = potri(c, lower=1)
    return inv


def _best(fn, repeats: int) -> tuple[float, Optional[float]]:
    """Best-of-``repeats`` wall time (other jobs share the machine: the minimum is its capability), RAPL energy."""
    times, energies = [], []
    for _ in range(repeats):
        e0, t0 = _rapl_energy(), time.perf_counter()
        fn()
        t1, e1 = time.perf_counter(), _rapl_energy()
        times.append(t1 - t0)
        if e0 is not None and e1 is not None:
            energies.append(e1 - e0)
    return min(times), (min(energies) if energies else None)


def _kfac_kernels(layers: list[LayerFactors], dtype, seed: int):
    """(update variants, apply) closures doing one step's K-FAC linear algebra in ``dtype``."""
    rng = np.random.default_rng(seed)
    factors = [(_spd(l.a_dim, rng, dtype), _spd(l.g_dim, rng, dtype),
                rng.standard_normal((l.g_dim, l.a_dim)).astype(dtype)) for l in layers]
    by_size: dict = {}
    for a, g, _ in factors:
        for m in (a, g):
            by_size.setdefault(m.shape[0], []).append(m)
    stacks = [np.stack(ms) for ms in by_size.values()]
    inverses = [(_spd_inverse(a), _spd_inverse(g)) for a, g, _ in factors]

    def lapack_each():              # potrf + potri per factor: the fewest flops, one call pair per factor
        for m in (m for a, g, _ in factors for m in (a, g)):
            _spd_inverse(m)

    def batched():                  # one compiled call per distinct size (LU-based inverse: more flops, fewer calls)
        for stack in stacks:
            np.linalg.inv(stack)

    def apply():
        for (ai, gi), (_, _, dw) in zip(inverses, factors):
            gi @ dw @ ai

    return {"LAPACK potrf+potri per factor": lapack_each, "numpy inv batched per size": batched}, apply


def measure_cpu_kfac(layers: list[LayerFactors], inverse_every: int, repeats: int = 5, seed: int = 0,
                     watts_per_core: float = CPU_WATTS_PER_CORE, dtype=np.float32,
                     threads: Optional[int] = None, reference: bool = True) -> DigitalCost:
    """K-FAC inverse and apply work per training step in NumPy/LAPACK, timed on this CPU in ``dtype`` (float32: the
    precision of the analog answer is far below it), the faster of per-factor LAPACK and batched per-size calls for
    the inverse update, and the faster of every core and one core (``threads`` fixes it): on a machine shared with
    other jobs a multi-threaded BLAS can be 10x slower on small products. Energy: RAPL when readable, else
    time x watts_per_core x the cores used. reference: also time float64 (reported, not used)."""
    if not isinstance(inverse_every, int) or inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    choices = [threads] if threads else sorted({os.cpu_count() or 1, 1}, reverse=True)
    results = [with_blas_threads(n, lambda n=n: _measure(layers, inverse_every, repeats, seed, watts_per_core,
                                                          dtype, n, reference)) for n in choices]
    return min(results, key=lambda c: c.time_s)


def _measure(layers, inverse_every, repeats, seed, watts_per_core, dtype, threads, reference) -> DigitalCost:
    updates, apply = _kfac_kernels(layers, dtype, seed)
    apply()                         # warm-up (BLAS thread pool, caches)
    timed = {}
    for name, fn in updates.items():
        fn()
        timed[name] = _best(fn, repeats)
    how_update = min(timed, key=lambda k: timed[k][0])
    t_update, e_update = timed[how_update]
    t_apply, e_apply = _best(apply, repeats)
    t_step = t_apply + t_update / inverse_every
    if e_update is not None and e_apply is not None:
        energy, how = e_apply + e_update / inverse_every, "RAPL package energy"
    else:
        energy, how = t_step * watts_per_core * threads, (f"time x {watts_per_core:.3g} W/core x {threads} cores "
                                                          f"(TDP share; RAPL not readable)")
    # the Python-dispatch floor: the same calls on 1 x 1 matrices
    tiny_updates, tiny_apply = _kfac_kernels([LayerFactors(l.name, 1, 1) for l in layers], dtype, seed)
    t_dispatch = _best(tiny_apply, repeats)[0] + _best(tiny_updates[how_update], repeats)[0] / inverse_every
    inv_flops, step_flops = kfac_flops(layers)
    detail = {"inverse_update_s": t_update, "apply_s": t_apply, "inverse_update_by": how_update,
              "energy_from": how, "flops_per_step": step_flops + inv_flops / inverse_every,
              "dispatch_floor_s": t_dispatch, "threads": threads,
              "dtype": np.dtype(dtype).name,
              "cpu": f"{cpu_model_name()} ({os.cpu_count()} cores visible), {np.dtype(dtype).name}, best of {repeats}"}
    if reference and np.dtype(dtype) != np.float64:
        ref = _measure(layers, inverse_every, repeats, seed, watts_per_core, np.float64, threads, False)
        detail["float64_time_s"], detail["float64_energy_j"] = ref.time_s, ref.energy_j
    return DigitalCost(t_step, energy, {**detail, "breakdown": {"inverse update": energy * (t_update / inverse_every)
                                                                / t_step, "apply": energy * t_apply / t_step}})


@dataclass(frozen=True)
class GpuModel:
    """Roofline-with-latency model of a GPU: t = max(sum of flops / (peak x efficiency(size)), bytes / bandwidth) +
    launches x launch overhead; energy = t x the power the work adds (``dynamic_power_w`` when measured, else
    board power x power_fraction).

    The JSON written by benchmarks/bench_gpu_cholesky.py has these fields, so a measured GPU replaces the model.
    """

    name: str = "NVIDIA A100 SXM4 40GB"
    # NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TFLOP/s (non-tensor), HBM2 1,555 GB/s (40 GB), 400 W max TDP.
    peak_flops: float = 19.5e12
    bandwidth_bytes_per_s: float = 1555e9
    board_power_w: float = 400.0
    # Efficiency against matrix size is one smooth roofline-like curve, e(n) = e_max n^2 / (n^2 + h^2) (work per
    # matrix grows as n^3, the latency-bound part of a factorisation as n: e ~ n^2 for small n, saturating at e_max),
    # with h set so that e(reference_size) = small_matrix_efficiency. ASSUMPTION: 3 % at n = 64: MAGMA's batched
    # small-matrix Cholesky (Abdelfattah, Haidar, Tomov, Dongarra, "Fast Cholesky factorization on GPUs for batch and
    # native modes in MAGMA", J. Comput. Sci. 20, 2017) runs at a few percent of peak at these sizes; 70 % (e_max)
    # for thousands of rows, where cuBLAS/cuSOLVER run compute-bound near peak. Replace both with measurements from
    # benchmarks/bench_gpu_cholesky.py. (The former model jumped from 3 % to 70 % between n = 512 and 513.)
    small_matrix_efficiency: float = 0.03
    large_matrix_efficiency: float = 0.7
    reference_size: int = 64
    # ASSUMPTION: 5 us per dependent kernel launch (launch + completion latency of a small CUDA kernel, the commonly
    # measured order); measured by benchmarks/bench_gpu_cholesky.py where a GPU exists.
    launch_overhead_s: float = 5e-6
    # Energy charged is the power the kernels add, not the board's TDP. ASSUMPTION: 25 % of TDP (100 W) for
    # latency-bound small kernels: the CUDA context alone lifts an idle A100/H100 by 26-50 W (DVFS step; Vadari,
    # "The model parking tax", arXiv 2605.23918), and a few busy SMs add far less than a compute-bound kernel's
    # ~400 W. Scale the energy ratios by it; a measured dynamic_power_w (measured minus idle) replaces it.
    power_fraction: float = 0.25
    dynamic_power_w: Optional[float] = None
    bytes_per_word: int = 4          # FP32, the precision of HP-INV's 24-bit comparison
    source: str = "model (datasheet + stated assumptions)"

    def __post_init__(self):
        for key in ("peak_flops", "bandwidth_bytes_per_s", "board_power_w", "small_matrix_efficiency",
                    "large_matrix_efficiency", "reference_size", "launch_overhead_s", "power_fraction"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"GPU model {key} must be positive, got {value!r}")
        if not self.small_matrix_efficiency < self.large_matrix_efficiency <= 1:
            raise ConfigError("GPU model: need small_matrix_efficiency < large_matrix_efficiency <= 1")
        if self.dynamic_power_w is not None and not self.dynamic_power_w > 0:
            raise ConfigError(f"GPU model dynamic_power_w must be positive, got {self.dynamic_power_w!r}")

    @property
    def half_size(self) -> float:
        e, big = self.small_matrix_efficiency, self.large_matrix_efficiency
        return self.reference_size * (big / e - 1.0) ** 0.5

    def efficiency(self, size: int) -> float:
        n2 = float(size) ** 2
        return self.large_matrix_efficiency * n2 / (n2 + self.half_size ** 2)

    def batch_time_s(self, work: list[tuple[float, float, int]], launches: int) -> float:
        """Time of ``launches`` dependent batched kernels doing ``work``: (flops, words, matrix size) per matrix."""
        compute = sum(f / (self.peak_flops * self.efficiency(n)) for f, _, n in work)
        memory = sum(w for _, w, _ in work) * self.bytes_per_word / self.bandwidth_bytes_per_s
        return max(compute, memory) + launches * self.launch_overhead_s

    def time_s(self, flops: float, words: float, launches: int, size: int = 0) -> float:
        return self.batch_time_s([(flops, words, max(size, 1))], launches)

    @property
    def power_w(self) -> float:
        return self.dynamic_power_w if self.dynamic_power_w is not None else self.board_power_w * self.power_fraction

    def energy_j(self, time_s: float) -> float:
        return time_s * self.power_w

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, path) -> "GpuModel":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"GPU model file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"GPU model file {path}: expected a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known - {"measurements"})
        if unknown:
            raise ConfigError(f"GPU model file {path}: unknown key(s) {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def _inverse_work(d: int) -> tuple[float, float, int]:
    return float(d) ** 3, 2.0 * d * d, d


def _apply_work(a: int, g: int) -> list[tuple[float, float, int]]:
    # dW A^-1 (g x a times a x a), then G^-1 (dW A^-1) (g x g times g x a)
    return [(2.0 * g * a * a, float(a * a + 2 * g * a), a), (2.0 * g * g * a, float(g * g + 2 * g * a), g)]


def gpu_kfac(layers: list[LayerFactors], inverse_every: int, gpu: GpuModel = GpuModel(),
             batched: bool = True) -> DigitalCost:
    """Per training step. batched: every factor's inverse in one variable-size batched potrf + potri pair (MAGMA's
    vbatched routines; 2 launches per inverse update) and every layer's two products as two grouped GEMMs (cuBLAS
    grouped batched GEMM; 2 launches per step). batched=False: each factor and each product its own launches (the
    sum of the parts)."""
    if not isinstance(inverse_every, int) or inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    inverses = [_inverse_work(d) for l in layers for d in (l.a_dim, l.g_dim)]
    products = [w for l in layers for w in _apply_work(l.a_dim, l.g_dim)]
    if batched:
        t_update = gpu.batch_time_s(inverses, 2)
        t_apply = gpu.batch_time_s(products, 2)
    else:
        t_update = sum(gpu.batch_time_s([w], 2) for w in inverses)
        t_apply = sum(gpu.batch_time_s([w], 1) for w in products)
    t = t_apply + t_update / inverse_every
    e = gpu.energy_j(t)
    return DigitalCost(t, e, {"inverse_update_s": t_update, "apply_s": t_apply, "gpu": gpu.name,
                              "gpu_source": gpu.source, "batched": batched, "power_w": gpu.power_w,
                              "breakdown": {"inverse update": gpu.energy_j(t_update / inverse_every),
                                            "apply": gpu.energy_j(t_apply)}})


def gpu_solve(n: int, gpu: GpuModel = GpuModel(), launches: int = 2) -> DigitalCost:
    """One dense n x n solve (LU getrf + getrs: 2/3 n^3 + 2 n^2 flops) on the GPU, ``launches`` dependent kernels."""
    flops = 2.0 / 3.0 * n ** 3 + 2.0 * n ** 2
    t = gpu.time_s(flops, float(n * n + 2 * n), launches, n)
    return DigitalCost(t, gpu.energy_j(t), {"flops": flops, "gpu": gpu.name, "gpu_source": gpu.source})
