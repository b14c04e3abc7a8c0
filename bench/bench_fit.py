"""Lightning overhead, measured: the harness's training throughput against a hand-written PyTorch loop.

Both sides train the same :class:`~memtasks.models.sequence_model.SequenceModel` (same seed, so the same initial
weights) on the same data with the same batch size, optimizer (Adam), gradient-norm clip and
per-epoch whole-training-set + test evaluation. The raw loop is what a careful researcher would write
by hand: ``zero_grad / backward / clip_grad_norm_ / step`` over :meth:`TaskData.batches`, then an eval
pass under ``torch.no_grad``. The harness is :func:`memtasks.fit` (Lightning ``Trainer`` with the
protocol's callbacks) with the ceiling and plateau stops out of reach, so both run exactly ``--epochs``.

Reported per configuration, best of ``--repeats`` (the two sides alternate):

- *train ex/s*: training examples per second over the training epochs only (evaluation excluded);
- *end-to-end ex/s*: training examples per second over the whole call (set-up, training, evaluation);
- the ratios harness / raw loop (target: training ratio >= 0.9).

Run: ``python bench/bench_fit.py [--epochs 5] [--repeats 3] [--threads 1] [--write BENCHMARKS.md]``
"""

from __future__ import annotations

import os

if hasattr(os, "sched_setaffinity"):  # one core, as the figures say: set before torch starts its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from benchlib import cpu_name, render_section, write_section

import memtasks
from memtasks.fitting.protocol import Protocol
from memtasks.fitting.trainer import fit
from memtasks.models.sequence_model import MetricSums, SequenceModel

START, END = "<!-- bench_fit:start -->", "<!-- bench_fit:end -->"
TARGET = 0.9
HEADER = ("| configuration | batches/epoch | raw train ex/s | harness train ex/s | train ratio "
          "| raw end-to-end ex/s | harness end-to-end ex/s | end-to-end ratio |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")


@dataclass(frozen=True)
class Config:
    name: str
    task_id: str
    kwargs: dict
    cell: str
    hidden: int
    batch_size: int = 128


CONFIGS = [
    Config("default run: Seq2Vec-CatCat L=20, lstm h64", "Seq2Vec-CatCat-v0", {"seq_len": 20, "n_examples": 2048},
           "lstm", 64),
    Config("NextStep-CatCat L=50, lstm h128", "NextStep-CatCat-v0", {"seq_len": 50, "n_examples": 2048}, "lstm", 128),
    Config("Seq2Seq-RealReal L=25+25, gru h128", "Seq2Seq-RealReal-v0",
           {"seq_len": 25, "out_len": 25, "n_examples": 2048}, "gru", 128),
    Config("Seq2Vec-CatCat L=50, ugrnn h64 (custom cell)", "Seq2Vec-CatCat-v0",
           {"seq_len": 50, "n_examples": 2048}, "ugrnn", 64),
    Config("tiny: Seq2Vec-CatCat L=5, rnn h16, batch 32", "Seq2Vec-CatCat-v0", {"seq_len": 5, "n_examples": 2048},
           "rnn", 16, 32),
]


def raw_loop(task: memtasks.Task, cfg: Config, protocol: Protocol) -> tuple[float, float]:
    """(training seconds, whole-call seconds) of a hand-written loop doing the protocol's work."""
    start = time.perf_counter()
    torch.manual_seed(protocol.seed)
    model = SequenceModel(task.layout, memtasks.cell_spec(cfg.cell), cfg.hidden, lr=protocol.lr)
    opt = torch.optim.Adam(model.parameters(), lr=protocol.lr)
    loader = task.train.batches(protocol.batch_size, shuffle=True, seed=protocol.seed)
    evals = [task.train.batches(protocol.eval_batch_size), task.test.batches(protocol.eval_batch_size)]
    lay = task.layout
    train_s = 0.0
    for _ in range(protocol.max_epochs):
        t0 = time.perf_counter()
        model.train()
        for batch in loader:
            loss = model.loss(model(batch), model.targets(batch))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
            opt.step()
        train_s += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            for ev in evals:
                sums = MetricSums(lay.y_type, lay.out_size)
                for batch in ev:
                    pred, target = model(batch), model.targets(batch)
                    sums.update(pred.reshape(-1, pred.shape[-1]), target.reshape(-1) if lay.y_type == "cat"
                                else target.reshape(-1, target.shape[-1]))
                sums.metrics(1.0)
    return train_s, time.perf_counter() - start


def harness(task: memtasks.Task, cfg: Config, protocol: Protocol) -> tuple[float, float]:
    start = time.perf_counter()
    result = fit(task, cfg.cell, hidden=cfg.hidden, protocol=protocol)
    total = time.perf_counter() - start
    assert result.epochs == protocol.max_epochs, (result.epochs, result.stop_reason)
    return result.train_time_s, total


def bench(cfg: Config, args: argparse.Namespace) -> tuple[Config, int, list[float]]:
    task = memtasks.make(cfg.task_id, n_test=256, **cfg.kwargs)
    task.train.ceiling, task.test  # noqa: B018 - generate outside the timings
    # An lr of 1e-9 keeps the ceiling out of reach and a patience above the budget disables the plateau stop,
    # so both sides run exactly --epochs epochs; the arithmetic per step is the same as at any lr.
    protocol = Protocol(lr=1e-9, batch_size=cfg.batch_size, max_epochs=args.epochs, patience=args.epochs + 1)
    harness(task, cfg, Protocol(lr=1e-9, batch_size=cfg.batch_size, max_epochs=1))  # warm-up
    raw_loop(task, cfg, Protocol(lr=1e-9, batch_size=cfg.batch_size, max_epochs=1))
    best = {"raw": [float("inf")] * 2, "harness": [float("inf")] * 2}
    for _ in range(args.repeats):
        for name, fn in (("raw", raw_loop), ("harness", harness)):
            times = fn(task, cfg, protocol)
            best[name] = [min(a, b) for a, b in zip(best[name], times, strict=True)]
    n = len(task.train) * args.epochs
    raw_train, raw_total = (n / t for t in best["raw"])
    h_train, h_total = (n / t for t in best["harness"])
    batches = -(-len(task.train) // cfg.batch_size)
    return cfg, batches, [raw_train, h_train, h_train / raw_train, raw_total, h_total, h_total / raw_total]


def format_row(row: tuple[Config, int, list[float]]) -> str:
    cfg, batches, (rt, ht, r1, re_, he, r2) = row
    return f"| {cfg.name} | {batches} | {rt:,.0f} | {ht:,.0f} | {r1:.3f} | {re_:,.0f} | {he:,.0f} | {r2:.3f} |"


def machine(threads: int) -> str:
    import lightning

    return (f"CPU {cpu_name()}, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, lightning {lightning.__version__}, memtasks {memtasks.__version__}, "
            f"{threads} torch thread(s) (of {os.cpu_count()} cores)")


def verdict(rows: list) -> str:
    misses = [r for r in rows if r[2][2] < TARGET]
    if not misses:
        return f"Every configuration meets the target: the harness trains at >= {TARGET} of the raw loop's examples/s."
    parts = []
    for cfg, _, (raw, harness, *_rest) in misses:
        step_ms = (cfg.batch_size / harness - cfg.batch_size / raw) * 1e3
        parts.append(f"{cfg.name} (Lightning adds {step_ms:.2f} ms to a {cfg.batch_size / raw * 1e3:.2f} ms step)")
    return (f"Below the {TARGET} target on training throughput: {'; '.join(parts)}. Lightning's fixed cost per "
            "optimizer step (hook dispatch, the optimizer closure, loop bookkeeping) does not grow with the model, "
            "so its share shrinks as steps grow (see the ratios above).")


def report(rows: list, args: argparse.Namespace, command: str) -> str:
    table = "\n".join(format_row(r) for r in rows)
    intro = f"""\
Training examples per second of `memtasks.fit` (Lightning `Trainer` + the protocol's callbacks) against a
hand-written PyTorch loop doing the same work: the same `SequenceModel`, initial weights, data, batch
size, Adam, gradient-norm clip 1.0, and after each epoch a whole-training-set and test evaluation.
*train* counts the training epochs only; *end-to-end* the whole call (set-up and evaluations included).
{args.epochs} epochs, n_examples=2048, n_test=256, best of {args.repeats} alternating runs, one CPU core, no
progress bar."""
    return render_section(START, END, "Lightning overhead (`bench/bench_fit.py`)", intro, command,
                          machine(args.threads), f"{HEADER}\n{table}", verdict(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--only", type=int, nargs="*", help="indices of the configurations to run")
    parser.add_argument("--write", type=Path, metavar="PATH", help="write the Markdown section into PATH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(HEADER, flush=True)
    rows = []
    for i, cfg in enumerate(CONFIGS):
        if args.only is not None and i not in args.only:
            continue
        rows.append(bench(cfg, args))
        print(format_row(rows[-1]), flush=True)
    print("\n" + verdict(rows))
    if args.write:
        command = " ".join(["python", "bench/bench_fit.py", *sys.argv[1:]])
        write_section(args.write, report(rows, args, command), START, END)


if __name__ == "__main__":
    main()
