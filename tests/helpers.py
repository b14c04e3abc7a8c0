"""Helpers shared by the tests."""

from __future__ import annotations

#: Small enough that all 16 settings generate in milliseconds.
TINY = {"seq_len": 6, "n_examples": 40, "n_test": 10}


def tiny_kwargs(task_id: str, **overrides: object) -> dict[str, object]:
    """TINY plus out_len for Seq2Seq settings, with overrides."""
    kw: dict[str, object] = dict(TINY)
    if task_id.startswith("Seq2Seq"):
        kw["out_len"] = 3
    kw.update(overrides)
    return kw
