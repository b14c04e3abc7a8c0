"""The local backend of sweeps: a process pool (or this process when ``workers == 1``), one job per group of
points of one shape."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from memtasks.fitting.cost import specs_seconds
from memtasks.sweeps.config import Point
from memtasks.sweeps.point import Outcome, run_group, run_group_dicts


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


def group_cost(group: list[Point]) -> float:
    """A group's worst-case seconds: every trial of every point's search to its step budget."""
    return sum(specs_seconds(group))


def run_local(groups: list[list[Point]], workers: int, threads: int, device: str, write_to: str
              ) -> Iterator[Outcome]:
    """Measure groups of points on a local process pool (or in this process when ``workers == 1``), yielding
    each group's outcomes as it ends; every result is written to ``write_to`` the moment it is measured."""
    if workers == 1:
        _init_worker(threads)
        for group in groups:
            yield from run_group(group, device, write_to)
        return
    # spawn: a clean interpreter per worker (fork after torch has started threads is unsafe).
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(threads, os.getpid()))
    finished_normally = False
    try:
        # Costliest groups first (by their worst case), so the last jobs to start are short ones.
        order = sorted(groups, key=group_cost, reverse=True)
        futures = {pool.submit(run_group_dicts, [p.to_dict() for p in g], device, write_to): g for g in order}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                exc = fut.exception()
                if exc is None:
                    yield from fut.result()
                else:
                    yield from (Outcome(p, error=f"{type(exc).__name__}: {exc}") for p in futures[fut])
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
