"""BLAS thread control, in one place for the whole project.

The matrices here are small (K-FAC factors up to ~1,000 rows, batch-64 matmuls); with a multi-threaded OpenBLAS on a
busy 2-core machine a 289 x 289 solve took 200 ms instead of 3 ms. Training and the circuit code therefore run with
one BLAS thread unless ``AMC_BLAS_THREADS`` says otherwise; the cost ledger's CPU baseline sets every core for its
timing (digital at its best) and restores the count after (``with_blas_threads``).
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
        "openblas_set_num_threads", "MKL_Set_Num_Threads")
_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
        "openblas_get_num_threads", "MKL_Get_Max_Threads")
_limited_to: Optional[int] = None


def _libraries() -> list[str]:
    """Paths of the OpenBLAS/MKL libraries loaded in this process."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({ln.split()[-1] for ln in f if ("blas" in ln or "mkl" in ln) and ".so" in ln})
    except OSError:
        return []


def _call_first(path: str, symbols: tuple, *args):
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for sym in symbols:
        fn = getattr(lib, sym, None)
        if fn is not None:
            return fn(*args)
    return None


def set_blas_threads(n: int) -> int:
    """Set the thread count of every loaded OpenBLAS/MKL; how many libraries took it (0: none found, harmless)."""
    global _limited_to
    _limited_to = None
    changed = 0
    for path in _libraries():
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


def blas_thread_counts() -> dict:
    """{library path: thread count} for every loaded OpenBLAS/MKL that reports it (benchmark headers)."""
    out = {}
    for path in _libraries():
        count = _call_first(path, _GET)
        if count is not None:
            out[path] = int(count)
    return out


def blas_threads() -> Optional[int]:
    """The thread count of the first loaded OpenBLAS/MKL that reports one (None: unknown)."""
    counts = blas_thread_counts()
    return next(iter(counts.values())) if counts else None


def limit_blas_threads(n: Optional[int] = None) -> int:
    """Every loaded BLAS to n threads (default: $AMC_BLAS_THREADS or 1), once per process and count; returns the
    number of libraries changed (threadpoolctl when installed, else the libraries' own setters)."""
    global _limited_to
    if n is None:
        n = int(os.environ.get("AMC_BLAS_THREADS", "1"))
    if _limited_to == n:
        return 0
    try:
        import threadpoolctl  # type: ignore
        threadpoolctl.threadpool_limits(n, user_api="blas")
        _limited_to = n
        return 1
    except Exception:
        pass
    changed = set_blas_threads(n)
    _limited_to = n
    return changed


def with_blas_threads(n: int, fn: Callable[[], T]) -> T:
    """fn() with every loaded BLAS set to n threads, the previous count restored after; a result with a
    ``detail`` dict records whether the count could be set."""
    before = blas_threads()
    took = set_blas_threads(n)
    try:
        result = fn()
    finally:
        if before is not None:
            set_blas_threads(before)
    if hasattr(result, "detail"):
        result.detail["blas_threads_set"] = bool(took)
    return result
