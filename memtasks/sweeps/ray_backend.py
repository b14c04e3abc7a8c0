"""The Ray backend of sweeps: each grid point is one Ray task (``pip install "memtasks[ray]"``).

``address=None`` starts a local Ray instance with ``workers`` CPUs; ``"auto"`` joins the cluster this
machine belongs to; ``"host:port"`` or ``"ray://host:port"`` connects to a running cluster, which is
contacted before any work starts so an unreachable address is one clear error. Workers run
:func:`memtasks.sweeps.point.run_group_dicts` and return results to this process, which writes them, so the runs folder
needs to exist only here. Results are the same as the local backend's: each point is a pure function of
its settings on CPU.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import torch

from memtasks.sweeps.config import Point, SweepError
from memtasks.sweeps.point import Outcome, run_group_dicts


def _remote_run(points: list[dict[str, Any]], device: str, threads: int) -> list[Outcome]:
    torch.set_num_threads(threads)
    return run_group_dicts(points, device)


def _check_reachable(address: str) -> None:
    """Fail fast on an address nothing listens on (Ray itself would retry for a long time)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise SweepError(f"Ray address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise SweepError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


class RayBackend:
    """Connects on construction; :meth:`run` yields outcomes as Ray tasks finish."""

    def __init__(self, address: str | None, *, threads: int = 1, device: str = "cpu", workers: int | None = None
                 ) -> None:
        try:
            import ray
        except ImportError:
            raise SweepError('the Ray backend needs Ray: pip install "memtasks[ray]"') from None
        if address not in (None, "auto", "local"):
            _check_reachable(address)
        self.ray, self.threads, self.device = ray, threads, device
        self._started = not ray.is_initialized()
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.ERROR}
        if address in (None, "local"):
            kwargs["num_cpus"] = workers or os.cpu_count() or 1
        else:
            kwargs["address"] = address
        try:
            if self._started:
                ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises many types for a failed connection
            raise SweepError(f"cannot start or join Ray ({address or 'local'}): {exc}") from None
        self._remote = ray.remote(num_cpus=1)(_remote_run)

    def run(self, groups: list[list[Point]]) -> Iterator[Outcome]:
        """One Ray task per group of points; its results come back (and are written) when the group ends."""
        refs = {self._remote.remote([p.to_dict() for p in g], self.device, self.threads): g
                for g in sorted(groups, key=len, reverse=True)}
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    yield from self.ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a failed run never stops the sweep
                    cause = getattr(exc, "cause", None) or exc
                    yield from (Outcome(p, error=f"{type(cause).__name__}: {cause}") for p in refs[ref])

    def close(self) -> None:
        """Shut down the Ray instance if this backend started it."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
