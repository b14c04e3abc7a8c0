"""How the cost of a sweep point grows with ``n_examples`` and ``seq_len``, measured through the sweep itself.

A sweep's wall time is the sum over its points of (epochs run) x (seconds per epoch) plus set-up. The number
of epochs depends on how fast a cell fits (see the baseline results); this benchmark measures the other
factor. It runs a grid of tasks x cells x ``n_examples`` x ``seq_len`` at one parameter budget through
:func:`memtasks.sweeps.runner.run_sweep` (one worker, one thread, pinned to one core) with a learning rate too small
to learn anything and the plateau patience beyond the budget, so every point trains exactly ``--epochs``
epochs. Reported per point:

- *ms/epoch*: the fit's wall time (trainer set-up, training, the per-epoch evaluation of the training and
  test sets; generating the data is not included) divided by its epochs: what one epoch of a sweep point costs;
- the growth exponents: the slope of log(ms/epoch) against log(n) (at the longest sequences) and against
  log(seq_len) (at the largest n), between the two largest values, where fixed per-epoch overheads weigh
  least.

Run: ``python bench/bench_sweep_cost.py [--epochs 20] [--write BENCHMARKS.md]``
"""

from __future__ import annotations

import os

if hasattr(os, "sched_setaffinity"):  # one core, as the figures say: set before torch starts its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

from benchlib import cpu_name, render_section, write_section

from memtasks.fitting.result import RunResult
from memtasks.sweeps.config import SweepConfig
from memtasks.sweeps.runner import run_sweep

START, END = "<!-- bench_sweep_cost:start -->", "<!-- bench_sweep_cost:end -->"
TASKS = ["NextStep-CatCat-v0", "Seq2Vec-CatCat-v0", "Seq2Seq-RealReal-v0"]
CELLS = ["lstm", "ugrnn"]


def measure(sizes: list[int], lengths: list[int], epochs: int, params: int) -> dict[tuple[str, str, int, int], float]:
    """ms per epoch for every task x cell x n x seq_len point."""
    config = SweepConfig(name="cost", tasks=TASKS, cells=CELLS, n_examples=sizes, seq_len=lengths, seeds=[0],
                         lr=[1e-9], params=[params], embed_dim=8, task_kwargs={"n_test": 100},
                         protocol={"max_epochs": epochs, "patience": epochs + 1, "batch_size": 64})
    with tempfile.TemporaryDirectory() as root:
        summary = run_sweep(config, root, workers=1, threads=1, progress=sys.stderr.isatty())
        if summary.failed:
            raise SystemExit(f"{len(summary.failed)} points failed: {summary.failed[0]}")
        out = {}
        for f in sorted(summary.path.glob("*.json")):
            if f.name == "sweep.json":
                continue
            run = RunResult.load(f)
            if run.epochs != epochs:
                raise SystemExit(f"{f.name} ran {run.epochs} epochs, not {epochs}: the cost figures need equal epochs")
            key = (run.task["id"], run.cell["name"], int(run.task["kwargs"]["n_examples"]),
                   int(run.task["kwargs"]["seq_len"]))
            out[key] = 1000 * run.wall_time_s / run.epochs
    return out


def slope(x0: float, y0: float, x1: float, y1: float) -> float:
    return math.log(y1 / y0) / math.log(x1 / x0)


def render(ms: dict[tuple[str, str, int, int], float], sizes: list[int], lengths: list[int]) -> tuple[str, str]:
    """The markdown table (rows task x cell x seq_len, columns n) and the growth summary."""
    head = ("| setting | cell | seq_len | " + " | ".join(f"n={n}" for n in sizes) + " |\n"
            "|---|---|---:|" + "---:|" * len(sizes))
    rows = [f"| {task} | {cell} | {t} | " + " | ".join(f"{ms[task, cell, n, t]:.1f}" for n in sizes) + " |"
            for task in TASKS for cell in CELLS for t in lengths]
    a, b = sizes[-2:], lengths[-2:]

    def exponents(cell: str) -> str:
        n_exp = [slope(a[0], ms[task, cell, a[0], b[1]], a[1], ms[task, cell, a[1], b[1]]) for task in TASKS]
        t_exp = [slope(b[0], ms[task, cell, a[1], b[0]], b[1], ms[task, cell, a[1], b[1]]) for task in TASKS]
        return (f"`{cell}`: a = {min(n_exp):.2f}–{max(n_exp):.2f}, b = {min(t_exp):.2f}–{max(t_exp):.2f} "
                "over the three settings")

    small = mean(ms[task, cell, sizes[-1], lengths[0]] / ms[task, cell, sizes[0], lengths[0]]
                 for task in TASKS for cell in CELLS)
    summary = (f"Growth exponents, ms/epoch ∝ n^a (from n={a[0]} to {a[1]} at seq_len={b[1]}) and ∝ seq_len^b "
               f"(from seq_len={b[0]} to {b[1]} at n={a[1]}): " + "; ".join(exponents(c) for c in CELLS) + ". "
               f"Fixed per-epoch costs (Lightning's loop, the evaluation passes, the embedding and readout) weigh "
               f"most on small sets and short sequences: at seq_len={lengths[0]}, {sizes[-1] // sizes[0]}x the data "
               f"(n={sizes[0]} to {sizes[-1]}) costs {small:.1f}x per epoch on average.")
    return head + "\n" + "\n".join(rows), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--params", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512, 2048])
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--write", type=Path, help="update this markdown file's bench_sweep_cost section")
    args = parser.parse_args()
    if len(args.sizes) < 2 or len(args.lengths) < 2:
        parser.error("--sizes and --lengths need at least two values each, to measure growth")
    sizes, lengths = sorted(args.sizes), sorted(args.lengths)
    started = time.perf_counter()
    ms = measure(sizes, lengths, args.epochs, args.params)
    table, summary = render(ms, sizes, lengths)
    took = time.perf_counter() - started
    print(table + "\n\n" + summary + f"\n\n({len(ms)} points in {took:.0f} s)")
    if args.write:
        import torch

        intro = (f"Cost of one epoch of a sweep point, in ms, as `n_examples` and `seq_len` grow: "
                 f"{len(ms)} points ({' × '.join(map(str, [len(TASKS), len(CELLS), len(sizes), len(lengths)]))}: "
                 f"settings × cells × n × seq_len) at {args.params} parameters, embed_dim 8, batch 64, n_test 100, "
                 f"each trained exactly {args.epochs} epochs through `run_sweep` with one worker on one core. "
                 "ms/epoch is the fit's wall time (trainer set-up, training and the per-epoch evaluation; data "
                 "generation excluded) over its epochs. A sweep's time is this times the epochs each point "
                 "needs before it stops.")
        command = (f"python bench/bench_sweep_cost.py --epochs {args.epochs} --params {args.params} "
                   f"--sizes {' '.join(map(str, sizes))} --lengths {' '.join(map(str, lengths))} --write {args.write}")
        machine = (f"{cpu_name()}, 1 core, torch {torch.__version__}, Python {platform.python_version()}; "
                   f"{len(ms)} points took {took:.0f} s")
        write_section(args.write, render_section(START, END, "Sweep cost vs n_examples and seq_len "
                                                 "(`bench/bench_sweep_cost.py`)", intro, command, machine, table,
                                                 summary), START, END)


if __name__ == "__main__":
    main()
