"""Are converged figures converged? Re-run points drawn at random from finished suite runs with 4× the steps and
4× the window, and compare their figures; also the share of a search's steps its selected trial got.

For each drawn point (across settings and cells, drawn with a fixed seed, never chosen by hand) the same spec
(data, cell, hidden size, seed, search) is trained again with ``max_steps``, ``passes`` and ``min_steps`` each 4×
the suite's, so the doubling test is judged on a 4× longer window and the budget is 4× larger. A figure that
more steps would change by more than 2 % is not a measurement. Figures go to BENCHMARKS.md.

    python bench/bench_convergence.py runs/suites/core-v1-*  [--points 20] [--seed 0] [--workers 2]

Each re-run point is appended to ``runs/bench/convergence-seed<SEED>.jsonl`` as it lands (``--resume`` names
another file), and a second call with the same draw re-runs only the points that file lacks: a long check may
span several sittings.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import cpu_name, measure_alone, render_section, run_and_keep, run_kept, write_section  # noqa: E402

START, END = "<!-- bench_convergence:start -->", "<!-- bench_convergence:end -->"
FACTOR = 4
#: The largest relative change a converged figure may show under 4× the steps and window.
LIMIT = 0.02


def _results(folders: list[Path]) -> list[dict[str, Any]]:
    out = []
    for folder in folders:
        for path in sorted(folder.glob("*/*.json")):
            if path.name == "sweep.json":
                continue
            d = json.loads(path.read_text())
            if "sweep_point" in d.get("extra", {}) and d.get("best"):
                out.append(d)
    return out


def _share(d: dict[str, Any]) -> float:
    """The selected trial's steps over the steps of all the search's trials."""
    steps = [t["steps"] for t in d["trials"]]
    return d["trials"][d["selected_trial"]]["steps"] / max(sum(steps), 1)


def _change(row: dict[str, Any]) -> float:
    return abs(row["after"] / row["before"] - 1) if row["before"] else 0.0


def _key(d: dict[str, Any]) -> str:
    """A drawn point's identity: its whole spec, so a changed suite never reuses an old re-run."""
    return hashlib.sha256(json.dumps(d["extra"]["sweep_point"], sort_keys=True).encode()).hexdigest()[:16]


def _rerun(d: dict[str, Any], factor: int = FACTOR) -> dict[str, Any]:
    """Train ``d``'s spec again alone, with ``max_steps``, ``passes`` and ``min_steps`` times ``factor``."""
    import torch

    from memtasks.fitting.protocol import Protocol
    from memtasks.fitting.spec import MeasurementSpec

    torch.set_num_threads(1)  # one per worker, as a suite's workers run
    spec = MeasurementSpec.from_dict(d["extra"]["sweep_point"])
    p = spec.protocol
    longer = dataclasses.replace(p, max_steps=factor * p.max_steps, passes=factor * p.passes,
                                 min_steps=factor * p.min_steps)
    spec = dataclasses.replace(spec, protocol=Protocol.from_dict(longer.to_dict()), save_model=False)
    r, seconds = measure_alone(spec)
    return {"key": _key(d) + ("" if factor == FACTOR else f"-x{factor}"), "task": d["task"]["id"],
            "cell": d["cell"]["name"], "seed": spec.seed, "before": d["best"]["bits_per_param"],
            "after": r.best["bits_per_param"], "steps_before": d["steps"], "steps_after": r.steps,
            "lr_before": d["trials"][d["selected_trial"]]["lr"], "lr_after": r.trials[r.selected_trial]["lr"],
            "converged_before": bool(d["convergence"]["converged"]), "converged_after": bool(r.converged),
            "seconds": round(seconds, 1)}


def _control(d: dict[str, Any]) -> dict[str, Any]:
    """The same spec again alone at the suite's own protocol: how far float rounding alone moves the figure (a
    suite trains points in groups, and a group's sums round differently from one point's)."""
    return _rerun(d, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="finished `memtasks suite run` folders")
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--converged-only", action="store_true",
                    help="draw only among figures the doubling test showed converged (does its verdict hold?)")
    ap.add_argument("--control", action="store_true",
                    help="re-run each point that moved more than 2 %% once more alone at the suite's own protocol, "
                         "to show how much of the move float rounding alone gives")
    ap.add_argument("--resume", type=Path, help="where finished re-runs are kept (default: "
                    "runs/bench/convergence-seed<SEED>.jsonl)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = ap.parse_args()
    results = _results(args.folders)
    if not results:
        sys.exit(f"no finished suite results under {', '.join(map(str, args.folders))}")
    pool_ = [d for d in results if d["convergence"]["converged"]] if args.converged_only else results
    drawn = random.Random(args.seed).sample(pool_, min(args.points, len(pool_)))
    store = args.resume or Path("runs/bench") / f"convergence-seed{args.seed}.jsonl"
    done = run_kept(_rerun, drawn, _key, store, args.workers)
    rows = [done[_key(d)] for d in drawn]  # in draw order
    moved = [d for d, r in zip(drawn, rows) if _change(r) > LIMIT]
    if args.control and moved:
        todo = [d for d in moved if _key(d) + "-x1" not in done]
        print(f"control: {len(moved)} moved points, {len(todo)} to re-run alone at 1x", flush=True)
        run_and_keep(_control, todo, store, done, args.workers)
    controls = {_key(d): done[_key(d) + "-x1"] for d in moved if args.control and _key(d) + "-x1" in done}
    signed = [r["after"] / r["before"] - 1 if r["before"] else 0.0 for r in rows]
    changes = [abs(c) for c in signed]
    table = ["| setting | cell | seed | bits/param | with 4× steps and window | change | steps | steps (4×) | "
             "learning rate (4×) | alone at 1× |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d, r, c in zip(drawn, rows, signed):
        ctl = controls.get(_key(d))
        alone = "–" if ctl is None else f"{ctl['after']:.3f} ({ctl['after'] / r['before'] - 1:+.1%})"
        lrs = "–" if "lr_after" not in r else f"{r['lr_after']:g}" + (
            "" if r["lr_after"] == r["lr_before"] else f" (was {r['lr_before']:g})")
        table.append(f"| {r['task']} | {r['cell']} | {r['seed']} | {r['before']:.3f}"
                     f"{'' if r['converged_before'] else ' †'} | {r['after']:.3f} | {c:+.1%} | {r['steps_before']:,} | "
                     f"{r['steps_after']:,} | {lrs} | {alone} |")
    shares = [_share(d) for d in results]
    spent = sum(d["trials"][d["selected_trial"]]["steps"] for d in results) / max(
        sum(t["steps"] for d in results for t in d["trials"]), 1)
    within = sum(c <= LIMIT for c in changes)
    even = sum(1 / len(d["trials"]) for d in results) / len(results)
    verdict = (f"{within} of {len(rows)} figures changed by 2 % or less (largest change {max(changes):.1%}, median "
               f"{statistics.median(changes):.1%}); † marks a drawn figure that was not converged. Over all "
               f"{len(results)} results, {spent:.0%} of the steps their searches spent went to the selected trials; "
               f"per result, the selected trial got {sum(shares) / len(shares):.0%} of its search's steps on average "
               f"(a point that reaches its ceiling in a few hundred steps stops its siblings there too, at an even "
               f"share; every trial to the end would give {even:.0%}).")
    if controls:
        moves = [abs(c["after"] / c["before"] - 1) for c in controls.values()]
        verdict += (f" The {len(controls)} figures that moved more than 2 % were trained once more alone at the "
                    f"suite's own protocol (*alone at 1×*): that alone moved them by {min(moves):.1%} to "
                    f"{max(moves):.1%}, the spread float rounding gives a figure (a suite trains its points in groups, "
                    f"whose sums round differently).")
    folders = " ".join(str(f) for f in args.folders)
    section = render_section(
        START, END, "Convergence: 4× the steps and the window",
        f"{len(rows)} points drawn at random (seed {args.seed}) from {len(pool_)} finished suite results"
        f"{' the doubling test showed converged' if args.converged_only else ''}, re-run "
        "with `max_steps`, `passes` and `min_steps` each 4× the suite's (same data, cell, hidden size, seed and "
        "search).", f"python bench/bench_convergence.py {folders} --points {args.points} --seed {args.seed}"
        + (" --converged-only" if args.converged_only else "") + (" --control" if args.control else ""),
        f"{cpu_name()}, {args.workers} workers", "\n".join(table), verdict)
    write_section(args.out, section, START, END)
    print(section)


if __name__ == "__main__":
    main()
