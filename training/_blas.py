"""Limit BLAS threads. The training matrices are small (<= 289 x 289 factors, batch-64 matmuls); with a
multi-threaded OpenBLAS on a busy 2-core machine a 289x289 solve took 200 ms instead of 3 ms. Training
therefore runs with one BLAS thread unless ``AMC_BLAS_THREADS`` says otherwise."""
from __future__ import annotations

import ctypes
import os

_SYMBOLS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads", "MKL_Set_Num_Threads")
_done = None


def limit_blas_threads(n: int | None = None) -> int:
    """Set the BLAS thread count of every loaded OpenBLAS/MKL (default: $AMC_BLAS_THREADS or 1). Returns the
    number of libraries changed (0 when none could be found; harmless)."""
    global _done
    if n is None:
        n = int(os.environ.get("AMC_BLAS_THREADS", "1"))
    if _done == n:
        return 0
    try:
        import threadpoolctl  # type: ignore
        threadpoolctl.threadpool_limits(n, user_api="blas")
        _done = n
        return 1
    except Exception:
        pass
    changed = 0
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if ("blas" in ln or "mkl" in ln) and ".so" in ln})
    except OSError:
        libs = []
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in _SYMBOLS:
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                changed += 1
                break
    _done = n
    return changed


_GET_SYMBOLS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
                "openblas_get_num_threads", "MKL_Get_Max_Threads")


def blas_threads() -> dict:
    """{library path: thread count} for every loaded OpenBLAS/MKL that reports it (for benchmark headers)."""
    out = {}
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if ("blas" in ln or "mkl" in ln) and ".so" in ln})
    except OSError:
        return out
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in _GET_SYMBOLS:
            fn = getattr(lib, sym, None)
            if fn is not None:
                out[path] = int(fn())
                break
    return out
