"""The local backend of sweeps: a process pool (or this process when ``workers == 1``)."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from memtasks.sweeps.config import Point
from memtasks.sweeps.point import Outcome, run_point


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    torch.set_num_threads(threads)
    if parent_pid is not None and sys.platform.startswith("linux"):
        # Die with the coordinating process: a killed sweep must not leave orphan runs burning CPU.
        # SIGKILL, not SIGTERM: Lightning catches SIGTERM to stop a fit gracefully, and the idle worker would
        # then wait forever on a queue it holds both ends of.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:
            # The coordinator died while this worker was still starting (importing torch takes seconds on a
            # loaded machine), before the death signal was armed: nobody will ever send it work.
            os._exit(1)


def run_local(points: list[Point], workers: int, threads: int, device: str) -> Iterator[Outcome]:
    """Run points on a local process pool (or in this process when ``workers == 1``), yielding as they end."""
    if workers == 1:
        _init_worker(threads)
        for p in points:
            try:
                yield Outcome(p, result=run_point(p.to_dict(), device))
            except Exception as exc:  # noqa: BLE001 - a failed run never stops the sweep
                yield Outcome(p, error=f"{type(exc).__name__}: {exc}")
        return
    # spawn: a clean interpreter per worker (fork after torch has started threads is unsafe).
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(threads, os.getpid()))
    finished_normally = False
    try:
        futures = {pool.submit(run_point, p.to_dict(), device): p for p in points}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                p = futures[fut]
                exc = fut.exception()
                yield Outcome(p, error=f"{type(exc).__name__}: {exc}") if exc else Outcome(p, fut.result())
        finished_normally = True
    finally:
        if finished_normally:
            pool.shutdown()
        else:
            # Interrupted (Ctrl-C, an error while writing): stop now instead of finishing the queued runs.
            procs = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
