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

from amc.errors import ConfigError, InputError
from amc.cost.workloads import LayerFactors, kfac_flops

# AMD EPYC 7763 (Zen 3 "Milan"): 280 W default TDP for 64 cores (AMD product page): 4.4 W per core.
# ASSUMPTION: lscpu on this VM says only "AMD EPYC", 2 cores; we take the per-core share of a current EPYC part and
# count only the cores BLAS uses. RAPL (/sys/class/powercap) is read instead whenever it is readable.
CPU_WATTS_PER_CORE = 280.0 / 64
RAPL_PATH = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


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


_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
        "openblas_set_num_threads", "MKL_Set_Num_Threads")


def set_blas_threads(n: int) -> int:
    """Set the thread count of every loaded OpenBLAS/MKL; returns how many libraries took it (0: unknown BLAS).

    Small factorisations on a shared 2-core machine run ~100x slower with a multi-threaded BLAS fighting other jobs
    (training/_blas.py measured 200 ms against 3 ms for a 289 x 289 solve), so the CPU baseline is one core."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if ("blas" in ln or "mkl" in ln) and ".so" in ln})
    except OSError:
        return 0
    changed = 0
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in _SET:
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                changed += 1
                break
    return changed


def _spd(d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((d, 2 * d))
    return x @ x.T / (2 * d) + 1e-2 * np.eye(d)


def _spd_inverse(m: np.ndarray) -> np.ndarray:
    c, info = lapack.dpotrf(m, lower=1)
    if info:
        raise InputError(f"Cholesky failed (info {info}): the factor is not positive definite")
    inv, info = lapack.dpotri(c, lower=1)
    return inv


def measure_cpu_kfac(layers: list[LayerFactors], inverse_every: int, repeats: int = 5, seed: int = 0,
                     watts_per_core: float = CPU_WATTS_PER_CORE) -> DigitalCost:
    """Exact K-FAC inverse and apply work per training step in NumPy/LAPACK (float64), timed on this CPU.

    Best of ``repeats`` (other jobs share the machine; the minimum is the machine's capability). Energy: RAPL when
    readable, else time x watts_per_core x BLAS threads.
    """
    if inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    rng = np.random.default_rng(seed)
    factors = [(_spd(l.a_dim, rng), _spd(l.g_dim, rng), rng.standard_normal((l.g_dim, l.a_dim))) for l in layers]
    inverses = [(_spd_inverse(a), _spd_inverse(g)) for a, g, _ in factors]

    def update():
        for a, g, _ in factors:
            _spd_inverse(a)
            _spd_inverse(g)

    def apply():
        for (ai, gi), (_, _, dw) in zip(inverses, factors):
            # potri fills one triangle: symmetric use through the lower triangle is what a real code would do;
            # the full product costs the same flops
            gi @ dw @ ai

    def best(fn) -> tuple[float, Optional[float]]:
        times, energies = [], []
        for _ in range(repeats):
            e0, t0 = _rapl_energy(), time.perf_counter()
            fn()
            t1, e1 = time.perf_counter(), _rapl_energy()
            times.append(t1 - t0)
            if e0 is not None and e1 is not None:
                energies.append(e1 - e0)
        return min(times), (min(energies) if energies else None)

    threads = 1 if set_blas_threads(1) else (os.cpu_count() or 1)
    apply()  # warm-up (BLAS thread pool, caches)
    update()
    t_update, e_update = best(update)
    t_apply, e_apply = best(apply)
    t_step = t_apply + t_update / inverse_every
    if e_update is not None and e_apply is not None:
        energy, how = e_apply + e_update / inverse_every, "RAPL package energy"
    else:
        energy, how = t_step * watts_per_core * threads, f"time x {watts_per_core:.3g} W/core x {threads} BLAS threads"
    inv_flops, step_flops = kfac_flops(layers)
    return DigitalCost(t_step, energy, {"inverse_update_s": t_update, "apply_s": t_apply, "energy_from": how,
                                        "flops_per_step": step_flops + inv_flops / inverse_every,
                                        "cpu": "this machine (lscpu: AMD EPYC), float64, best of %d" % repeats})


@dataclass(frozen=True)
class GpuModel:
    """Roofline-with-latency model of a GPU: t = max(flops / (peak x efficiency), bytes / bandwidth) + launches x
    launch overhead; energy = t x board power x power_fraction.

    The JSON written by benchmarks/bench_gpu_cholesky.py has these fields, so a measured GPU replaces the model.
    """

    name: str = "NVIDIA A100 SXM4 40GB"
    # NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TFLOP/s (non-tensor), HBM2 1,555 GB/s (40 GB), 400 W max TDP.
    peak_flops: float = 19.5e12
    bandwidth_bytes_per_s: float = 1555e9
    board_power_w: float = 400.0
    # ASSUMPTION: 3 % of peak for batched factorisations and products of matrices below ~500: MAGMA's batched
    # small-matrix Cholesky (Abdelfattah, Haidar, Tomov, Dongarra, "Fast Cholesky factorization on GPUs for batch and
    # native modes in MAGMA", J. Comput. Sci. 20, 2017) runs at a few percent of peak at these sizes. Replace it
    # with the measured value from benchmarks/bench_gpu_cholesky.py.
    small_matrix_efficiency: float = 0.03
    # ASSUMPTION: 70 % of peak for factorisations and products of matrices above small_matrix_limit (thousands of
    # rows), where cuBLAS/cuSOLVER/MAGMA run compute-bound near peak; only ResNet-18's big factors reach it.
    large_matrix_efficiency: float = 0.7
    small_matrix_limit: int = 512
    # ASSUMPTION: 5 us per dependent kernel launch (launch + completion latency of a small CUDA kernel, the commonly
    # measured order); measured by benchmarks/bench_gpu_cholesky.py where a GPU exists.
    launch_overhead_s: float = 5e-6
    # The datasheet gives maximum power only; a GPU running latency-bound small kernels draws less. 1.0 (TDP) is the
    # upper bound we use; the README states how the ratio scales with it.
    power_fraction: float = 1.0
    bytes_per_word: int = 4          # FP32, the precision of HP-INV's 24-bit comparison
    source: str = "model (datasheet + stated assumptions)"

    def __post_init__(self):
        for key in ("peak_flops", "bandwidth_bytes_per_s", "board_power_w", "small_matrix_efficiency",
                    "large_matrix_efficiency", "small_matrix_limit", "launch_overhead_s", "power_fraction"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"GPU model {key} must be positive, got {value!r}")

    def efficiency(self, size: int) -> float:
        return self.small_matrix_efficiency if size <= self.small_matrix_limit else self.large_matrix_efficiency

    def time_s(self, flops: float, words: float, launches: int, size: int = 0) -> float:
        compute = flops / (self.peak_flops * self.efficiency(size))
        memory = words * self.bytes_per_word / self.bandwidth_bytes_per_s
        return max(compute, memory) + launches * self.launch_overhead_s

    def energy_j(self, time_s: float) -> float:
        return time_s * self.board_power_w * self.power_fraction

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, path) -> "GpuModel":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"GPU model file {path}: {exc}") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known - {"measurements"})
        if unknown:
            raise ConfigError(f"GPU model file {path}: unknown key(s) {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def gpu_kfac(layers: list[LayerFactors], inverse_every: int, gpu: GpuModel = GpuModel()) -> DigitalCost:
    """Per training step: the batched inverse update (one potrf + potri launch pair per distinct factor size,
    amortised over inverse_every) and the two matmuls per layer every step."""
    if inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    sizes = {l.a_dim for l in layers} | {l.g_dim for l in layers}
    # one batched potrf + potri per distinct size (equal sizes share a launch), each at its size's efficiency
    t_update = sum(gpu.time_s(sum(float(d) ** 3 * ((l.a_dim == d) + (l.g_dim == d)) for l in layers),
                              sum(2.0 * d * d * ((l.a_dim == d) + (l.g_dim == d)) for l in layers), 2, d)
                   for d in sizes)
    t_apply = sum(gpu.time_s(2.0 * l.g_dim * l.a_dim * (l.a_dim + l.g_dim),
                             float(l.a_dim ** 2 + l.g_dim ** 2 + 3 * l.a_dim * l.g_dim), 2, max(l.a_dim, l.g_dim))
                  for l in layers)
    t = t_apply + t_update / inverse_every
    return DigitalCost(t, gpu.energy_j(t), {"inverse_update_s": t_update, "apply_s": t_apply, "gpu": gpu.name,
                                            "gpu_source": gpu.source})


def gpu_solve(n: int, gpu: GpuModel = GpuModel(), launches: int = 2) -> DigitalCost:
    """One dense n x n solve (LU getrf + getrs: 2/3 n^3 + 2 n^2 flops) on the GPU, ``launches`` dependent kernels."""
    flops = 2.0 / 3.0 * n ** 3 + 2.0 * n ** 2
    t = gpu.time_s(flops, float(n * n + 2 * n), launches, n)
    return DigitalCost(t, gpu.energy_j(t), {"flops": flops, "gpu": gpu.name, "gpu_source": gpu.source})
