"""The sweep engine: run the points that have no record yet, in worker processes, and write every record.

Executors:
- ``process`` (default): a ``ProcessPoolExecutor`` with the spawn start method (a fresh interpreter each, so no
  ngspice state is ever inherited); at most one point per worker is in flight, so a point's time is its own.
  A worker that dies (segfault, hard timeout) breaks the pool: the engine records the point that caused it
  and restarts the pool for the rest.
- ``dask``: an existing dask.distributed cluster (``scheduler`` address, or a ``Client``); records are still
  written here, by the submitting process. Workers should run one thread each (one ngspice per process).
- ``serial``: in this process (notebooks, debugging).

Resume: points whose id already has a record in ``records.jsonl`` are skipped (with ``retry_failed``, failed
ones run again and their new record supersedes the old one).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from amc.errors import ConfigError

from .points import RECYCLE, TIMEOUT_MARKERS, run_point
from .spec import Point, Sweep
from .store import ResultStore, StoreError, latest_by_id

META = "sweep.json"
MAX_CRASHES = 2


@dataclass
class SweepReport:
    out_dir: Path
    total: int
    skipped: int = 0
    ran: int = 0
    ok: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    repaired_bytes: int = 0
    figures: list = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.ran} point(s) run ({self.ok} ok, {self.failed} failed), {self.skipped} already done, "
                f"{self.total} in the sweep; {self.elapsed_s:.1f} s; results in {self.out_dir}")
        if self.interrupted:
            text = "interrupted: " + text + " (rerun the same command to resume)"
        return text


def default_out_dir(sweep: Sweep) -> Path:
    return Path("results") / "sweeps" / sweep.name


def pending_points(sweep: Sweep, out_dir: Path, retry_failed: bool = False) -> tuple[list[Point], dict[str, dict]]:
    from .store import read_records, RECORDS
    records, _ = read_records(Path(out_dir) / RECORDS)
    latest = latest_by_id(records)
    todo = []
    for p in sweep.points:
        rec = latest.get(p.id)
        if rec is None or (retry_failed and rec.get("status") != "ok"):
            todo.append(p)
    return todo, latest


def run_sweep(sweep: Sweep, out_dir: Optional[Path] = None, workers: int = 1, executor: str = "process",
              scheduler: Any = None, retry_failed: bool = False, progress: bool = True, plot: bool = True,
              start_method: str = "spawn", on_record: Optional[Callable[[dict], None]] = None,
              connect_timeout_s: float = 30.0) -> SweepReport:
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(sweep)
    if executor not in ("process", "dask", "serial"):
        raise ConfigError(f"executor must be process, dask or serial, got {executor!r}")
    if executor == "process" and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if executor == "dask" and scheduler is None:
        raise ConfigError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    started = time.time()
    store = ResultStore(out_dir)
    records = store.open()
    report = SweepReport(out_dir=out_dir, total=len(sweep.points), repaired_bytes=store.repaired_bytes)
    try:
        _refuse_another_sweep(sweep, out_dir, records)
        if store.repaired_bytes:
            print(f"note: removed a partial last record ({store.repaired_bytes} bytes) left by an interrupted run",
                  file=sys.stderr)
        _write_meta(sweep, out_dir)
        latest = latest_by_id(records)
        todo = [p for p in sweep.points
                if p.id not in latest or (retry_failed and latest[p.id].get("status") != "ok")]
        report.skipped = len(sweep.points) - len(todo)
        bar = _progress(len(todo), sweep.name, progress)

        def record(rec: dict) -> None:
            rec.pop(RECYCLE, None)        # a request to the process pool, not part of the result
            rec["sweep"] = sweep.name
            rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            store.append(rec)
            report.ran += 1
            if rec.get("status") == "ok":
                report.ok += 1
            else:
                report.failed += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=report.failed, refresh=False)
            if on_record is not None:
                on_record(rec)

        try:
            if todo:
                if executor == "serial":
                    _run_serial(todo, sweep, record)
                elif executor == "process":
                    _run_processes(todo, sweep, record, workers, out_dir, start_method)
                else:
                    _run_dask(todo, sweep, record, scheduler, connect_timeout_s)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            if bar is not None:
                bar.close()
        store.write_csv()
    finally:
        store.close()
    report.elapsed_s = time.time() - started
    if plot and not report.interrupted:
        try:
            from .plots import plot_results
            report.figures = plot_results(out_dir, sweep_plots=sweep.plots)
        except Exception as exc:  # figures are a view: never lose a finished sweep over one
            print(f"warning: figures not drawn: {type(exc).__name__}: {exc}", file=sys.stderr)
    return report


# ---- executors -----------------------------------------------------------------------------------
def _run_serial(todo: list[Point], sweep: Sweep, record: Callable[[dict], None]) -> None:
    for point in todo:
        record(run_point(point.payload(sweep.timeout_s)))


def _worker_init(parent: int) -> None:
    # The submitting process handles Ctrl-C and ends the workers; workers must not print tracebacks for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent)


def _exit_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """End this worker when the sweep process dies (kill -9 included), instead of idling on its queue forever.

    Linux: the kernel sends SIGKILL when the parent exits (prctl PR_SET_PDEATHSIG), even mid-ngspice. Elsewhere,
    and for a parent that died before the prctl, a daemon thread polls the parent's pid.
    """
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    import threading
    threading.Thread(target=watch, name="amc-parent-watchdog", daemon=True).start()


def _run_processes(todo: list[Point], sweep: Sweep, record: Callable[[dict], None], workers: int,
                   out_dir: Path, start_method: str) -> None:
    # One BLAS thread per worker: the workers are the parallelism (set before the interpreters are spawned).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    context = multiprocessing.get_context(start_method)
    marker_dir = out_dir / TIMEOUT_MARKERS
    queue = list(todo)
    crashes: Counter = Counter()
    while queue:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                     initargs=(os.getpid(),))
        inflight: dict[cf.Future, Point] = {}
        broken = False
        recycle = False     # a worker used half its ngspice failure budget: drain, then start fresh workers
        try:
            while (queue and not recycle) or inflight:
                while queue and not recycle and len(inflight) < workers:
                    point = queue.pop(0)
                    payload = point.payload(sweep.timeout_s)
                    payload.update(marker_dir=str(marker_dir), hard_timeout=True)
                    inflight[pool.submit(run_point, payload)] = point
                done, _ = cf.wait(list(inflight), timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    point = inflight.pop(future)
                    try:
                        rec = future.result()
                    except BrokenProcessPool:
                        broken = True
                        inflight[future] = point  # settled below, with the others caught in the crash
                        continue
                    except Exception as exc:  # pickling problems and the like: record and go on
                        rec = _error_record(point, f"{type(exc).__name__}: {exc}", "worker")
                    recycle |= bool(rec.pop(RECYCLE, False))
                    record(rec)
                if broken:
                    break
        except BaseException:  # Ctrl-C, or the results file could not be written: stop the workers now
            _kill_pool(pool)
            raise
        finally:
            if not broken:
                pool.shutdown(wait=True, cancel_futures=True)
        if broken:
            _kill_pool(pool)
            for future, point in list(inflight.items()):
                marker = marker_dir / point.id
                if future.done() and not future.cancelled() and future.exception() is None:
                    record(future.result())
                elif marker.exists():
                    marker.unlink()
                    record(_error_record(point, f"timeout: the point ran longer than timeout_s = {sweep.timeout_s:g} s "
                                                "and its worker process was ended", "timeout"))
                else:
                    crashes[point.id] += 1
                    if crashes[point.id] >= MAX_CRASHES:
                        record(_error_record(point, "worker process died while running this point "
                                                    f"({crashes[point.id]} times)", "crash"))
                    else:
                        queue.insert(0, point)


def _kill_pool(pool: cf.ProcessPoolExecutor) -> None:
    """End this pool's worker processes (only ours: the pool's own table of processes)."""
    processes = list(getattr(pool, "_processes", {}).values())  # private, but the only handle on them
    for process in processes:
        try:
            process.kill()
        except Exception:
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            process.join(timeout=5)
        except Exception:
            pass


def _run_dask(todo: list[Point], sweep: Sweep, record: Callable[[dict], None], scheduler: Any,
              connect_timeout_s: float = 30.0) -> None:
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError('--executor dask needs dask.distributed: pip install "dask[distributed]"') from None
    own_client = not isinstance(scheduler, Client)
    if own_client:
        try:
            client = Client(scheduler, set_as_default=False, timeout=connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the dask scheduler at {scheduler!r} within {connect_timeout_s:g} s "
                              f"({exc}); check --scheduler and that the cluster is running") from None
    else:
        client = scheduler
    try:
        slots = max(1, sum(client.nthreads().values()))
        queue = list(todo)
        inflight: dict[Any, tuple[Point, float]] = {}
        grace = max(30.0, 0.5 * sweep.timeout_s)
        try:
            while queue or inflight:
                while queue and len(inflight) < slots:
                    point = queue.pop(0)
                    future = client.submit(run_point, point.payload(sweep.timeout_s), pure=False,
                                           key=f"amc-point-{point.id}-{time.time_ns()}")
                    inflight[future] = (point, time.time())
                done = [f for f in inflight if f.done()]
                if not done:
                    time.sleep(0.02)
                for future in done:
                    point, _ = inflight.pop(future)
                    try:
                        rec = future.result()
                    except Exception as exc:  # KilledWorker, CancelledError, lost connection...
                        rec = _error_record(point, f"{type(exc).__name__}: {exc}", "dask")
                    record(rec)
                now = time.time()
                for future, (point, submitted) in list(inflight.items()):
                    if now - submitted > sweep.timeout_s + grace:  # the in-worker timer did not get through
                        future.cancel()
                        inflight.pop(future)
                        record(_error_record(point, f"timeout: no result within timeout_s = {sweep.timeout_s:g} s "
                                                    "(+ grace) from the dask cluster", "timeout"))
        except KeyboardInterrupt:
            for future in inflight:
                future.cancel()
            raise
    finally:
        if own_client:
            client.close()


# ---- helpers -------------------------------------------------------------------------------------
def _error_record(point: Point, message: str, error_type: str) -> dict:
    return {"id": point.id, "kind": point.kind, "params": dict(point.params), "status": "error",
            "error": message, "error_type": error_type, "metrics": {}, "wall_time_s": None}


def _progress(total: int, name: str, enabled: bool):
    if not enabled or total == 0:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=name, unit="pt", file=sys.stderr, dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} {bar} [{elapsed}<{remaining}{postfix}]")


def _refuse_another_sweep(sweep: Sweep, out_dir: Path, records: list[dict]) -> None:
    """One results directory holds one sweep: records of another would be mixed into its tables and figures."""
    others = set()
    meta_path = out_dir / META
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("name") != sweep.name or meta.get("kind") != sweep.kind:
                others.add(f"{meta.get('name')!r} ({meta.get('kind')}, from {meta.get('source')})")
        except (ValueError, OSError, AttributeError):
            pass  # a damaged sweep.json is rewritten below; the records still tell
    others |= {repr(r["sweep"]) for r in records if r.get("sweep") not in (None, sweep.name)}
    if others:
        raise ConfigError(f"{out_dir} holds the results of another sweep, {', '.join(sorted(others))}; this sweep "
                          f"is {sweep.name!r} ({sweep.kind}, from {sweep.path}): pick another --out")


def _write_meta(sweep: Sweep, out_dir: Path) -> None:
    meta = {"name": sweep.name, "kind": sweep.kind, "description": sweep.description,
            "source": str(sweep.path) if sweep.path else None, "grid_keys": sweep.grid_keys,
            "plots": sweep.plots, "timeout_s": sweep.timeout_s, "points": len(sweep.points),
            "point_ids": [p.id for p in sweep.points], "spec": sweep.raw}
    tmp = out_dir / (META + ".tmp")
    try:
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, out_dir / META)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise StoreError(f"cannot write {out_dir / META}: {exc.strerror or exc}") from None
