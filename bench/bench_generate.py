"""Single-core throughput of data generation, fingerprinting and the achievable ceiling, per grid setting.

Generation must never be what slows an experiment down: the project targets at least 10 million target
tokens per second on one core for ``source="random"``. A *target token* is one scored step of one
example (``n_examples * task.layout.target_len``), so settings of different kinds are comparable.

For each of the 16 settings this script times, best of ``--repeats`` with ``time.perf_counter``:

- ``task.generate("train")`` with ``source="random"``, on a fresh task each repeat;
- the same with ``source="teacher"`` (the lazily built teacher, calibration included, is part of it);
- ``TaskData.fingerprint`` and ``TaskData.ceiling`` of the random train split, cache cleared each repeat.

Run: ``python bench/bench_generate.py [--n-examples 10000] [--seq-len 100] [--repeats 5] [--write BENCHMARKS.md]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: set before numpy is imported
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from benchlib import cpu_name, render_section, write_section

import memtasks

START, END = "<!-- bench_generate:start -->", "<!-- bench_generate:end -->"
TARGET = 10e6  # target tokens per second, source="random", one core
HEADER = ("| setting | target tokens | random Mtok/s | random Msteps/s | teacher Mtok/s | fingerprint Mtok/s "
          "| ceiling Mtok/s |\n|---|---:|---:|---:|---:|---:|---:|")
Row = tuple[str, int, float, float, float, float, float]  # setting, target tokens, five rates (per second)


def format_row(row: Row) -> str:
    """One Markdown table row, rates in millions of tokens per second."""
    setting, tokens, *rates = row
    return f"| {setting} | {tokens:,} | " + " | ".join(f"{r / 1e6:.2f}" for r in rates) + " |"


def verdict(rows: list[Row]) -> str:
    """Whether every setting met the random-generation target."""
    slow = [row[0] for row in rows if row[2] < TARGET]
    slow_steps = [row[0] for row in rows if row[3] < TARGET]
    goal = f"the target of >= {TARGET / 1e6:.0f} M target tokens/s on one core with source=random"
    if not slow:
        return f"**Verdict: every setting met {goal}.**"
    steps = ("every setting generates >= 10 M model steps/s" if not slow_steps
             else f"below 10 M model steps/s: {', '.join(slow_steps)}")
    return (f"**Verdict: {len(rows) - len(slow)} of {len(rows)} settings met {goal}; missed: {', '.join(slow)}"
            f" ({steps}).**")


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make(setting: str, args: argparse.Namespace, source: str) -> memtasks.Task:
    """A fresh task of ``setting`` at the benchmark size (Seq2Seq: out_len = seq_len)."""
    extra = {"out_len": args.seq_len} if setting.startswith("Seq2Seq") else {}
    return memtasks.make(setting, n_examples=args.n_examples, seq_len=args.seq_len, n_test=1,
                         source=source, **extra)


def uncached(data: memtasks.TaskData, name: str) -> Callable[[], object]:
    """A call that recomputes the cached property ``name`` of ``data``."""
    def run() -> object:
        data.__dict__.pop(name, None)
        return getattr(data, name)
    return run


def bench(setting: str, args: argparse.Namespace) -> Row:
    """The table row of one setting: random, teacher, fingerprint and ceiling throughput."""
    task = make(setting, args, "random")
    tokens = args.n_examples * task.layout.target_len
    steps = args.n_examples * task.layout.length
    random, teacher = (best_time(lambda src=src: make(setting, args, src).generate("train"), args.repeats)
                       for src in ("random", "teacher"))
    data = task.generate("train")
    fingerprint, ceiling = (best_time(uncached(data, name), args.repeats) for name in ("fingerprint", "ceiling"))
    return (setting, tokens, tokens / random, steps / random, tokens / teacher, tokens / fingerprint,
            tokens / ceiling)


def machine() -> str:
    """CPU model, platform and library versions of this machine."""
    return (f"CPU {cpu_name()} (platform.processor: {platform.processor() or 'n/a'}, {platform.machine()}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"memtasks {memtasks.__version__}, 1 core used (of {os.cpu_count()})")


def report(rows: list[Row], args: argparse.Namespace, command: str) -> str:
    """The Markdown section, markers included."""
    table = "\n".join(format_row(row) for row in rows)
    intro = f"""\
Throughput in millions of target tokens per second (a target token is one scored step of one example:
n_examples x `layout.target_len`) on one core, best of {args.repeats} runs, n_examples={args.n_examples},
seq_len={args.seq_len} (Seq2Seq: out_len={args.seq_len}), other kwargs at their defaults. *random* and
*teacher* time `task.generate("train")` on a fresh task (teacher construction included); *random Msteps/s*
counts model steps instead (n_examples x L, every step a sequence holds); *fingerprint* and *ceiling* time
`TaskData.fingerprint` and `TaskData.ceiling` of the random train split.

Seq2Vec scores one target per example but must draw seq_len input steps for it, so its target-token rate
is bounded by numpy's sampler (`Generator.integers` / `standard_normal`, which `generate` already runs at
bare-numpy speed); its per-step rate is the comparable figure."""
    return render_section(START, END, "Generation throughput (`bench/bench_generate.py`)", intro, command,
                          machine(), f"{HEADER}\n{table}", verdict(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-examples", type=int, default=10000)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, metavar="PATH", help="write the Markdown section into PATH")
    args = parser.parse_args()
    print(HEADER)
    rows = []
    for setting in memtasks.SETTINGS:
        rows.append(bench(setting, args))
        print(format_row(rows[-1]), flush=True)
    print("\n" + verdict(rows))
    if args.write:
        command = " ".join(["python", "bench/bench_generate.py", *sys.argv[1:]])
        write_section(args.write, report(rows, args, command), START, END)


if __name__ == "__main__":
    main()
