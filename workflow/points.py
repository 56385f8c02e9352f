"""What runs inside a worker process: one sweep point in, one record out (never raises).

``run_point(payload)`` is the function the engine submits (to a ``ProcessPoolExecutor`` or to dask). It builds
the circuit configuration, runs the point, and returns a plain record with its metrics, or with the error if
the point failed (ngspice error, unstable circuit, timeout...). ngspice is loaded lazily by
``amc.hw.runner.session()`` the first time a point in this process needs it: one ngspice per process.

Timeouts: in a worker's main thread a POSIX interval timer raises :class:`PointTimeout` at ``timeout_s``
(checked whenever control returns to Python: between ngspice analyses, between training steps). As a last
resort a watchdog thread ends the process ``grace`` seconds later, after leaving a marker file that tells the
submitting process which point it was (the pool is then restarted and the other points go on).
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from amc.errors import ConfigError
from amc.hw.counters import OperationCounts
from amc.record_schema import operation_metrics

# One ngspice per process: threads of one dask worker take turns.
_NGSPICE_LOCK = threading.Lock()
TIMEOUT_MARKERS = ".timeouts"


class PointTimeout(Exception):
    """The point ran longer than the sweep's timeout_s."""


# ---- entry point ----------------------------------------------------------------------------------
# A record carrying this key asks the engine to replace the worker process that wrote it (ngspice failure budget).
RECYCLE = "_recycle_worker"


def run_point(payload: Mapping[str, Any]) -> dict:
    """Run one point; return its record (status ok or error). Safe to call in any process or thread."""
    start = time.time()
    timeout = float(payload.get("timeout_s") or 0)
    record: dict[str, Any] = {"id": payload["id"], "kind": payload["kind"], "params": dict(payload["params"]),
                              "status": "ok", "error": None, "metrics": {}, "host": socket.gethostname(),
                              "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start))}
    watchdog = _Watchdog(payload, timeout)
    try:
        # A point's warnings (e.g. amc's AccuracyWarning) belong to its record, not to the sweep's terminal.
        with _NGSPICE_LOCK, watchdog, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from amc.hw import mapping
            mapping._ACCURACY_WARNED.clear()  # each point's record tells its own warnings
            _run_into(record, payload)
    except PointTimeout:  # delivered late, just as the point finished: the point did finish
        pass
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    if messages:
        record["warnings"] = messages
    if watchdog.fired and record["status"] == "ok":
        # One ngspice analysis cannot be interrupted from Python: it ended past the limit. Still a timeout.
        record["status"] = "error"
        record["error_type"] = "timeout"
        record["error"] = (f"timeout: the point ran longer than timeout_s = {timeout:g} s "
                           "(it finished late; its metrics are kept)")
    record["wall_time_s"] = time.time() - start
    from amc.hw import runner
    if runner._SESSION is not None and runner._SESSION.failures_left <= runner._SESSION.failure_budget // 2:
        record[RECYCLE] = True      # read and removed by the engine: this worker process is replaced
    return record


def _run_into(record: dict, payload: Mapping[str, Any]) -> None:
    timeout = float(payload.get("timeout_s") or 0)
    try:
        if payload["kind"] == "circuit":
            record["metrics"] = run_circuit_point(payload["spec"])
        elif payload["kind"] == "analog":
            record["metrics"] = run_analog_point(payload["spec"])
        else:
            record["metrics"], extra = run_training_point(payload["spec"])
            record.update(extra)
    except PointTimeout:
        record["status"] = "error"
        record["error_type"] = "timeout"
        record["error"] = f"timeout: the point ran longer than timeout_s = {timeout:g} s"
    except Exception as exc:  # a failed point is a result, not a crash of the sweep
        record["status"] = "error"
        record["error_type"] = type(exc).__name__
        record["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        if not _is_amc_error(exc):
            record["traceback"] = traceback.format_exc()[-4000:]


def _is_amc_error(exc: BaseException) -> bool:
    from amc.errors import AmcError
    return isinstance(exc, AmcError)


class _Watchdog:
    """Soft timeout (SIGALRM -> PointTimeout, main thread only) and a hard one (marker file + os._exit)."""

    def __init__(self, payload: Mapping[str, Any], timeout: float):
        self.timeout = timeout
        self.marker_dir = payload.get("marker_dir")
        self.point_id = payload["id"]
        self.hard = bool(payload.get("hard_timeout")) and self.marker_dir is not None
        self._soft = False
        self.fired = False
        self._async = None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.timeout <= 0:
            return self
        if threading.current_thread() is threading.main_thread():
            def alarm(signum, frame):
                self.fired = True
                if _in_callback(frame):
                    return  # ngspice is calling back into Python: an exception would be swallowed there
                raise PointTimeout()
            self._previous = signal.signal(signal.SIGALRM, alarm)
            # Repeats every 0.25 s after the first: an exception raised while ngspice calls back into Python
            # (cffi callback) is swallowed there, so the timer keeps firing until one gets through.
            signal.setitimer(signal.ITIMER_REAL, self.timeout, 0.25)
            self._soft = True
        else:
            # A worker thread (dask): raise PointTimeout in it asynchronously, at its next Python bytecode.
            target = threading.get_ident()
            def fire():
                if self._stop.wait(self.timeout):
                    return
                self.fired = True
                while True:  # repeat, as above, until the point's thread has left
                    if not _in_callback(sys._current_frames().get(target)):
                        _raise_in_thread(target)
                    if self._stop.wait(0.25):
                        return
            self._async = threading.Thread(target=fire, daemon=True)
            self._async.start()
        if self.hard:
            grace = max(10.0, 0.25 * self.timeout)
            self._thread = threading.Thread(target=self._hard_stop, args=(self.timeout + grace,), daemon=True)
            self._thread.start()
        return self

    def _hard_stop(self, after: float) -> None:
        if self._stop.wait(after):
            return
        try:  # tell the submitting process which point this was, then end the stuck process
            path = Path(self.marker_dir) / f"{self.point_id}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(self.timeout))
        finally:
            os._exit(75)

    def __exit__(self, *exc):
        if self._soft:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
        self._stop.set()
        if self._async is not None:
            self._async.join(timeout=5)
            _clear_async_exception(threading.get_ident())  # one queued just before the stop must not leak
        return False


def _raise_in_thread(thread_id: int) -> None:
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(PointTimeout))


def _in_callback(frame) -> bool:
    while frame is not None:
        if "PySpice" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _clear_async_exception(thread_id: int) -> None:
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


# ---- circuit points -------------------------------------------------------------------------------
def run_circuit_point(spec: Mapping[str, Any]) -> dict:
    """Generate the point's test matrix, solve it through the circuit (.op and/or .tran), return metrics."""
    from amc.config import CircuitConfig
    from amc.solver import AnalogSolver
    from .matrices import make_problem

    config = CircuitConfig.from_dict(spec["circuit"], source="point")
    h, g = make_problem(spec["matrix"])
    exact = np.linalg.solve(h, g)
    solve = spec["solve"]
    eig = np.linalg.eigvals(h)
    metrics: dict[str, Any] = {
        "n": int(h.shape[0]),
        "matrix_condition": float(np.linalg.cond(h)),
        "matrix_lambda_min": float(np.min(eig.real) / np.max(np.abs(eig))),
    }
    method = solve.get("method", "direct")
    if method != "direct" or solve.get("array_size") is not None:
        return {**metrics, **_run_method_point(config, h, g, exact, solve)}
    solver = AnalogSolver(config, backend=solve.get("backend", "circuit"))
    operations = OperationCounts()
    if solve.get("op", True):
        t0 = time.perf_counter()
        sol = solver.solve(h, g)
        operations = operations + sol.operations
        metrics.update({
            "relative_error": sol.error_against(exact),
            "relative_residual": float(sol.relative_residual),
            "saturated": bool(np.any(sol.saturated)),
            "n_saturated": int(np.sum(sol.saturated)),
            "static_power_w": _scalar(sol.static_power_w),
            "rescales": int(sol.rescales),
            "lambda_min": sol.lambda_min,
            "mapped_condition": sol.condition_number,
            "g0_s": sol.g0_s,
            "op_time_s": time.perf_counter() - t0,
        })
    if solve.get("transient", False):
        t0 = time.perf_counter()
        sol = solver.solve(h, g, transient=True)
        operations = operations + sol.operations
        metrics.update({
            "tran_relative_error": sol.error_against(exact),
            "settling_time_s": _scalar(sol.settling_time_s),
            "energy_j": _scalar(sol.energy_j),
            "settled": bool(np.all(sol.settled)) if sol.settled is not None else None,
            "lambda_min": sol.lambda_min,
            "tran_time_s": time.perf_counter() - t0,
        })
        if "relative_error" not in metrics:
            metrics.update({"relative_error": metrics["tran_relative_error"],
                            "relative_residual": float(sol.relative_residual),
                            "saturated": bool(np.any(sol.saturated)),
                            "static_power_w": _scalar(sol.static_power_w)})
        if metrics["lambda_min"]:
            metrics["inverse_lambda_min"] = 1.0 / metrics["lambda_min"]
    elif metrics.get("lambda_min"):
        metrics["inverse_lambda_min"] = 1.0 / metrics["lambda_min"]
    metrics.update(operation_metrics(operations, h.shape[0]))
    return metrics


def _run_method_point(config, h: np.ndarray, g: np.ndarray, exact: np.ndarray, solve: Mapping[str, Any]) -> dict:
    """HP-INV / BlockAMC (amc.solve_system): accuracy, equivalent bits and array-operation counts."""
    from amc import MethodSolver
    options = dict(solve.get("options") or {})
    for key in ("array_size", "iterations"):
        if solve.get(key) is not None:
            options[key] = solve[key]
    t0 = time.perf_counter()
    solver = MethodSolver(config, method=solve.get("method", "direct"), backend=solve.get("backend", "circuit"),
                          **options)
    sol = solver.solve(h, g)
    cfg = solver.method_config
    array_n = min(h.shape[0], getattr(cfg, "array_size", None) or h.shape[0])
    error = float(np.linalg.norm(sol.x - exact) / np.linalg.norm(exact))
    label = solve.get("method") if isinstance(solve.get("method"), str) else sol.method
    metrics = {"method": label, "relative_error": error, "analog_error": sol.analog_error,
               "equivalent_bits": float(-np.log2(max(error, 2.0 ** -60))),
               "relative_residual": float(sol.relative_residual), "saturated": bool(np.any(sol.saturated)),
               "iterations": len(sol.history) - 1 if sol.history else None, "op_time_s": time.perf_counter() - t0}
    metrics.update(operation_metrics(sol.operations, array_n))
    return metrics


def _scalar(value: Any) -> Any:
    if value is None:
        return None
    arr = np.asarray(value, dtype=float)
    return float(np.max(arr)) if arr.size else None


# ---- training points ------------------------------------------------------------------------------
def validate_training(spec: Mapping[str, Any], where: str) -> dict:
    """Normalise the ``training`` mapping of a training point (via training/loop.py), or raise ConfigError."""
    try:
        from . import training_adapter
    except ImportError as exc:  # pragma: no cover - training package missing
        raise ConfigError(f"{where}: training points need the training package ({exc})") from None
    return training_adapter.validate(spec, where)


def run_training_point(spec: Mapping[str, Any]) -> tuple[dict, dict]:
    from . import training_adapter
    return training_adapter.run(spec)


# ---- analog weight-update points ------------------------------------------------------------------------
def validate_analog(spec: Mapping[str, Any], where: str) -> dict:
    """Normalise the ``analog`` mapping of an analog point (training/analog/config.py), or raise ConfigError."""
    try:
        from training.analog import config as aconfig
    except ImportError as exc:  # pragma: no cover - training package missing
        raise ConfigError(f"{where}: analog points need the training package ({exc})") from None
    return aconfig.validate(spec, where)


def run_analog_point(spec: Mapping[str, Any]) -> dict:
    """One analog-training run (least squares or a network) on pulsed tiles with the point's circuit periphery."""
    from amc.config import CircuitConfig
    from training.analog.run import run
    return run(spec["analog"], CircuitConfig.from_dict(spec["circuit"], source="point"), seed=int(spec.get("seed") or 0))
