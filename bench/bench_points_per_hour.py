"""Converged points per hour: the doubling rule (with successive halving) against the plateau rule, side by side
on points drawn from the committed baseline sweep.

Each drawn point (seeded draw from every point of ``baselines/baseline.toml``, never chosen by hand) is measured
twice in the same worker, one after the other: with the protocol and search the baseline committed (the plateau
rule, every trial to its end) and with the default doubling protocol and the same learning rates and batch sizes
under successive halving. A point counts as converged when its result says so: at the achievable ceiling, or
the doubling test holds on its own histories (a plateau-rule result is judged by the same test after the fact).
Converged points per hour is each protocol's count over the hours it spent. Figures go to BENCHMARKS.md; each
measured point is kept in ``runs/bench/points-per-hour-seed<SEED>.jsonl`` as it lands, so a killed run resumes.

    python bench/bench_points_per_hour.py [--points 16] [--seed 0] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import cpu_name, measure_alone, render_section, run_kept, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_points_per_hour:start -->", "<!-- bench_points_per_hour:end -->"
CONFIG = ROOT / "baselines" / "baseline.toml"


def _judged(result: Any, protocol: Any) -> bool:
    """Converged as the result says, or (a plateau-rule result, which carries no verdict) as the doubling test of
    ``protocol`` says on its own histories after the fact."""
    from memtasks.fitting.convergence import assess

    if result.converged is not None:
        return bool(result.converged)
    got = assess(result.history, result.lr_history, tolerance=protocol.tolerance, min_steps=protocol.min_steps,
                 max_decays=protocol.max_decays)
    return bool(got and got["converged"])


def _key(point: Any) -> str:
    return f"{point.task}/{point.cell}/{point.n_examples}/{point.seed}"


def _both(point: Any) -> dict[str, Any]:
    """The point under the plateau rule as committed, then under the doubling rule with halving."""
    import torch

    from memtasks.fitting.protocol import Protocol

    torch.set_num_threads(1)
    old_spec = dataclasses.replace(point, save_model=False)
    new_spec = dataclasses.replace(old_spec, protocol=Protocol(),
                                   search=dataclasses.replace(point.search, halving=True))
    old, old_s = measure_alone(old_spec)
    new, new_s = measure_alone(new_spec)
    return {"key": _key(point), "task": point.task, "cell": point.cell, "n": point.n_examples, "seed": point.seed,
            "old": (old.best["bits_per_param"], _judged(old, new_spec.protocol), old.steps, old_s),
            "new": (new.best["bits_per_param"], _judged(new, new_spec.protocol), new.steps, new_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resume", type=Path, help="where finished points are kept (default: "
                    "runs/bench/points-per-hour-seed<SEED>.jsonl)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    from memtasks.sweeps.config import SweepConfig

    points = SweepConfig.load(CONFIG).points()
    drawn = random.Random(args.seed).sample(points, min(args.points, len(points)))
    store = args.resume or Path("runs/bench") / f"points-per-hour-seed{args.seed}.jsonl"
    done = run_kept(_both, drawn, _key, store, args.workers)
    rows = [done[_key(p)] for p in drawn]  # in draw order
    table = ["| setting | cell | examples | seed | plateau rule: bits/param | converged | steps | s | "
             "doubling rule: bits/param | converged | steps | s |", "|---|---|---:|---:|" + "---:|---|---:|---:|" * 2]
    for r in rows:
        cols = [f"{b:.3f} | {'yes' if c else 'no'} | {steps:,} | {s:.0f}" for b, c, steps, s in (r["old"], r["new"])]
        table.append(f"| {r['task']} | {r['cell']} | {r['n']} | {r['seed']} | {cols[0]} | {cols[1]} |")
    rate = {}
    for key in ("old", "new"):
        hours = sum(r[key][3] for r in rows) / 3600
        rate[key] = (sum(r[key][1] for r in rows), hours)
    per_hour = {k: c / h if h else 0.0 for k, (c, h) in rate.items()}
    ratio = per_hour["new"] / per_hour["old"] if per_hour["old"] else float("inf")
    verdict = (f"Plateau rule: {rate['old'][0]} of {len(rows)} points converged in {rate['old'][1] * 60:.1f} min "
               f"({per_hour['old']:.0f} per hour). Doubling rule with halving: {rate['new'][0]} of {len(rows)} in "
               f"{rate['new'][1] * 60:.1f} min ({per_hour['new']:.0f} per hour): **×{ratio:.1f}** converged points "
               "per hour.")
    differ = [r for r in rows if r["old"][2] != r["new"][2]]
    verdict += (f" {len(rows) - len(differ)} of {len(rows)} points trained the same steps under both rules (each stopped "
                "before either rule acted); the rules differ only on "
                f"{len(differ)}: " + "; ".join(
                    f"{r['cell']} on {r['task']} ({r['n']} examples) {r['old'][2]:,} → {r['new'][2]:,} steps, "
                    f"{'converged' if r['old'][1] else 'unconverged'} → {'converged' if r['new'][1] else 'unconverged'}"
                    for r in differ) + ".")
    section = render_section(
        START, END, "Converged points per hour: doubling rule against plateau rule",
        f"{len(rows)} points drawn at random (seed {args.seed}) from the {len(points)} points of "
        "`baselines/baseline.toml`, each measured under the plateau rule as committed and under the default "
        "doubling protocol (same learning rates and batch sizes, successive halving), one after the other in the "
        "same worker. Converged: at the ceiling, or the doubling test holds on the result's own histories.",
        f"python bench/bench_points_per_hour.py --points {args.points} --seed {args.seed} --workers {args.workers}",
        f"{cpu_name()}, {args.workers} workers, 1 torch thread each", "\n".join(table), verdict)
    write_section(args.out, section, START, END)
    print(section)


if __name__ == "__main__":
    main()
