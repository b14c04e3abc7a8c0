"""Many models as one: points per hour of the baseline workload, one fit per trial against batched trials.

The workload is the baseline sweep's at its original size: all 8 built-in cells at 2000 parameters on the 16
settings, ``seq_len`` 10, 3 seeds (the committed sweep runs 2), ``n_examples`` ∈ {8, 32, 128}, each point
measured as the best of 3 learning rates, so a point is 3 trials. Every trial runs exactly ``--steps``
optimizer steps (the ceiling and plateau stops are switched off here, so both sides do the same work) with the
protocol's evaluations.

- *one at a time*: every trial is its own Lightning fit of one ordinary model (torch's fused kernels for
  rnn/irnn/lstm/gru) — the way the harness trained before trials were batched;
- *batched*: the 27 trials of one setting and cell (3 sizes × 3 seeds × 3 learning rates) train as one
  stacked model, as ``memtasks sweep`` trains them.

Both run in this process on one pinned core, on the same sample of (setting, cell) groups; points per
hour are extrapolated from that sample. The run also measures this core's matmul peak (a 1024² float32
``torch.mm``), the achieved GFLOP/s of each side (6 FLOPs per parameter per token, forward and backward)
and, with cProfile, where the batched side's time goes.

Run: ``python bench/bench_batched.py [--steps 240] [--groups 16] [--write BENCHMARKS.md]``
"""

from __future__ import annotations

import os

if hasattr(os, "sched_setaffinity"):  # one core, as the figures say: set before torch starts its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch
from benchlib import cpu_name, never_at_ceiling, render_section, write_section

import memtasks
from memtasks.fitting.engine import Trial, train_trials
from memtasks.fitting.protocol import Protocol
from memtasks.models.cells import BUILTIN_CELLS
from memtasks.models.registry import cell_spec, register_cell
from memtasks.models.sequence_model import hidden_for_params

START, END = "<!-- bench_batched:start -->", "<!-- bench_batched:end -->"
TARGET = 5.0
LRS = (0.003, 0.01, 0.03)
SIZES = (8, 32, 128)
SEEDS = (0, 1, 2)


def group(task_id: str, cell: str) -> tuple[list[Trial], int, int]:
    """The 27 trials of one setting and cell, the hidden size matching 2000 parameters, and the total."""
    extra = {"in_vocab": 64} if task_id.startswith("Vec2Seq-Cat") else {}
    trials = []
    for n in SIZES:
        for seed in SEEDS:
            task = memtasks.make(task_id, n_examples=n, seq_len=10, n_test=100, seed=seed, **extra)
            trials += [Trial(task.train, task.test, seed=seed, lr=lr, batch_size=64) for lr in LRS]
    layout = trials[0].train.layout
    hidden, total = hidden_for_params(layout, cell_spec(cell), 2000, embed_dim=8)
    return trials, hidden, total


def run(trials: list[Trial], cell: str, hidden: int, protocol: Protocol, batched: bool) -> float:
    spec = cell_spec(cell if batched else f"alone-{cell}")
    started = time.perf_counter()
    if batched:
        train_trials(trials, spec, hidden, embed_dim=8, cell_kwargs={}, protocol=protocol, on_done=lambda r: None)
    else:
        for t in trials:  # one Lightning fit per trial
            train_trials([t], spec, hidden, embed_dim=8, cell_kwargs={}, protocol=protocol, on_done=lambda r: None)
    return time.perf_counter() - started


def matmul_peak() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        torch.mm(a, b)
    reps, started = 20, time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * 1024**3 * reps / (time.perf_counter() - started) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=240, help="optimizer steps per trial")
    ap.add_argument("--groups", type=int, default=16, help="(setting, cell) groups in the sample, spread evenly")
    ap.add_argument("--write", type=Path, help="write the section into this Markdown file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    never_at_ceiling()  # both sides must run every step
    for cell in BUILTIN_CELLS:
        register_cell(f"alone-{cell}", BUILTIN_CELLS[cell][0], override=True)  # no batched kernel: one at a time
    protocol = Protocol(max_steps=args.steps, patience=10**6, max_decays=0)
    # Spread over settings and cells alike: group i takes the i-th cell (cycling) on every (16 / groups)-th setting.
    cells, settings = list(BUILTIN_CELLS), list(memtasks.SETTINGS)
    sample = [(settings[(i * len(settings) // args.groups) % len(settings)], cells[i % len(cells)])
              for i in range(args.groups)]
    peak = matmul_peak()
    rows, totals = [], {"alone": 0.0, "batched": 0.0}
    flops = 0.0
    profiler = cProfile.Profile()
    for task_id, cell in sample:
        trials, hidden, total = group(task_id, cell)
        length = trials[0].train.layout.length
        flops += 6.0 * total * 64 * length * args.steps * len(trials)
        alone = run(trials, cell, hidden, protocol, batched=False)
        batched = run(trials, cell, hidden, protocol, batched=True)
        totals["alone"] += alone
        totals["batched"] += batched
        points = len(trials) // len(LRS)
        rows.append(f"| {task_id} · {cell} (h{hidden}, {total} params) | {points} | {alone:.1f} | {batched:.1f} "
                    f"| {alone / batched:.1f}× |")
        print(rows[-1], flush=True)
    # The breakdown comes from separate, profiled runs of the batched side (cProfile slows Python-heavy code,
    # so it must not touch the timed runs above).
    profiled = 0.0
    for task_id, cell in sample:
        trials, hidden, _ = group(task_id, cell)
        profiler.enable()
        started = time.perf_counter()
        run(trials, cell, hidden, protocol, batched=True)
        profiled += time.perf_counter() - started
        profiler.disable()
    points = len(sample) * len(SIZES) * len(SEEDS)
    per_hour = {k: points / v * 3600 for k, v in totals.items()}
    speedup = per_hour["batched"] / per_hour["alone"]
    gflops = {k: flops / v / 1e9 for k, v in totals.items()}
    stats = pstats.Stats(profiler)
    parts = {"backward (autograd)": "run_backward", "forward: recurrent kernels": "kernels.py",
             "optimizer (StackedAdam)": "optim.py", "evaluation": "_evaluate", "batch assembly": "_gather"}
    shares = []
    for label, needle in parts.items():
        cum = max((v[3] for k, v in stats.stats.items()  # type: ignore[attr-defined]
                   if needle in k[0] or needle in k[2]), default=0.0)
        shares.append(f"{label} {100 * cum / profiled:.0f} %")
    table = ("| group (setting · cell) | points | one at a time (s) | batched (s) | speed-up |\n"
             "|---|---:|---:|---:|---:|\n" + "\n".join(rows) +
             f"\n| **sample: {len(sample)} groups, {points} points × {len(LRS)} trials** | {points} | "
             f"{totals['alone']:.1f} | {totals['batched']:.1f} | **{speedup:.1f}×** |")
    verdict = (f"Points per hour on one core: **{per_hour['alone']:,.0f} one at a time, {per_hour['batched']:,.0f} "
               f"batched: {speedup:.1f}×** (target ≥ {TARGET:g}×: {'met' if speedup >= TARGET else 'missed'}). "
               f"Matmul peak of this core in the same run: {peak:.0f} GFLOP/s; achieved (6 FLOPs per parameter "
               f"per token): {gflops['alone']:.2f} GFLOP/s one at a time, {gflops['batched']:.2f} GFLOP/s batched "
               f"({100 * gflops['batched'] / peak:.1f} % of peak). Where the batched side's time goes (cProfile, "
               f"cumulative, of a separate profiled run): {'; '.join(shares)}; the rest is Lightning's loop, building "
               "the 27 models and the stacked data, and Python.")
    machine = f"{cpu_name()}, 1 pinned core, torch {torch.__version__}, Python {sys.version.split()[0]}"
    section = render_section(START, END, "Batched trials: points per hour of the baseline workload", __doc__.split(
        "Run:")[0].split("\n", 2)[2], f"python bench/bench_batched.py --steps {args.steps} --groups {args.groups}"
        + (f" --write {args.write}" if args.write else ""), machine, table, verdict)
    print(section)
    if args.write:
        write_section(args.write, section, START, END)


if __name__ == "__main__":
    main()
