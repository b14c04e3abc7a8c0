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
from typing import Any

import torch

from memtasks.fitting.cost import specs_seconds
from memtasks.sweeps.config import Point
from memtasks.sweeps.point import Outcome, run_group, run_group_dicts

#: Whether this pool worker is measuring a job: only then has a Ctrl-C anything to interrupt.
_busy = False


def _on_sigint(signum: int, frame: Any) -> None:
    """Ctrl-C in a pool worker (the terminal sends it to the coordinator and every worker): a busy worker stops its
    job as a single process would (its trials end as interrupted, and are written); an idle one has nothing to
    stop and waits, quietly, for the coordinator to shut it down, instead of dying with a traceback."""
    if _busy:
        raise KeyboardInterrupt


def _run_job(points: list[dict[str, Any]], device: str, write_to: str) -> list[Outcome]:
    """A pool worker's job: :func:`run_group_dicts`, with Ctrl-C armed while it runs."""
    global _busy
    _busy = True
    try:
        return run_group_dicts(points, device, write_to)
    finally:
        _busy = False


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    torch.set_num_threads(threads)
    if parent_pid is not None and hasattr(signal, "pthread_sigmask"):
        # A pool worker starts with SIGINT blocked (see run_local); one that came during start-up is delivered
        # now, to the handler.
        signal.signal(signal.SIGINT, _on_sigint)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
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
        # The workers are spawned by these submits and inherit this thread's signal mask: with SIGINT blocked, a
        # Ctrl-C cannot kill one while it is still importing torch (a traceback, before any handler of ours is
        # set); each unblocks it once its handler is in place. Here the Ctrl-C only waits until the mask is restored.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") \
            else None
        try:
            futures = {pool.submit(_run_job, [p.to_dict() for p in g], device, write_to): g for g in order}
        finally:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
