"""The per-parameter capacity study: how many bits of random labels a cell stores per parameter.

Collins et al. (2017) train cells to memorize random input → random label mappings, choose the number of
mappings b that maximises the information stored, I = b·(1 − H₂(p)) for accuracy p, and report about 5 bits per
parameter for every common cell (3 to 6 over cells and depths) after 1000+ tuned trainings per point.

This study measures the same quantity with memtasks' protocol: every cell at four parameter budgets on
``NextStep-CatCat-v0`` (random targets: each of the 10 scored steps carries a uniform label of 4 classes, 2 bits),
with training sets sized from 0.5 to 8 bits per parameter; a point's bits are the information its training
predictions carry about the labels (:func:`memtasks.metrics.bits_categorical`, Collins' I for 2 classes), and a
cell's capacity at a budget is the most bits over those sizes. Collins' own task shows one random input and reads
one binary label a few steps later: 1 bit per example and five recurrent steps per bit, ten times the arithmetic
per stored bit of ``NextStep-CatCat`` (20 bits in 10 steps), which a 2-core CPU cannot afford within the hour.

A **budget check** re-measures every cell at the smallest budget on its largest set with four times the steps:
where the bits rise, the main figure is a lower bound set by the step budget, not the cell's capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.fitting.result import RunResult
from memtasks.studies.common import (
    BUILTIN_CELLS,
    StudyError,
    check_scale,
    fmt,
    group_over_seeds,
    mean_std,
    pyplot,
    reproduce_lines,
    save_figure,
    scaled_seeds,
    scaled_steps,
    sweep_name,
    sweep_point,
    write_csv,
)

TASK = "NextStep-CatCat-v0"
SEQ_LEN = 10
BUDGETS = (500, 1000, 2000, 4000)
BITS_PER_PARAM = (0.5, 1.0, 2.0, 4.0, 8.0)
SEEDS = 2
MAX_STEPS = 5000
LRS = (0.003, 0.01, 0.03)
EMBED_DIM = 8
#: How many times the main step budget the budget check trains.
CHECK_FACTOR = 4
#: What Collins et al. report, for the figure's reference line.
PAPER_BITS_PER_PARAM = 5.0


def configs(cells: Sequence[str] = BUILTIN_CELLS, scale: float = 1.0, budgets: Sequence[int] = BUDGETS,
            bits_per_param: Sequence[float] = BITS_PER_PARAM) -> list[Any]:
    """The study's two sweeps: the main grid, and the budget check (smallest budget, largest set, 4× steps)."""
    from memtasks.sweeps.config import SweepConfig

    scale = check_scale(scale)
    if not cells:
        raise StudyError("the capacity study needs at least one cell")
    steps, seeds = scaled_steps(MAX_STEPS, scale), scaled_seeds(SEEDS, scale)
    name = sweep_name("capacity", cells, scale)
    common = dict(tasks=[TASK], cells=list(cells), seq_len=[SEQ_LEN], seeds=seeds, embed_dim=EMBED_DIM,
                  search={"lr": list(LRS)}, task_kwargs={"n_test": 100})
    main = SweepConfig(name=name, bits_per_param=list(bits_per_param), params=list(budgets),
                       protocol={"max_steps": steps}, **common)
    check = SweepConfig(name=f"{name}-check", bits_per_param=[max(bits_per_param)], params=[min(budgets)],
                        protocol={"max_steps": steps * CHECK_FACTOR}, **common)
    return [main, check]


@dataclass(frozen=True)
class Point:
    """One (cell, budget, size) of the grid: its seeds' bits and what stopped them."""

    cell: str
    budget: int
    size: float  # offered bits per parameter
    max_steps: int
    params: list[int]
    n_examples: list[int]
    bits: list[float]
    fraction: list[float]
    stops: list[str]

    @property
    def params_mean(self) -> float:
        return sum(self.params) / len(self.params)

    @property
    def bits_per_param(self) -> list[float]:
        return [b / p for b, p in zip(self.bits, self.params)]


def points(results: Sequence[RunResult]) -> list[Point]:
    """The runs grouped over seeds into grid points, in a fixed order (cell order as given, budget, size, steps)."""
    def key(r: RunResult) -> tuple[str, int, float, int]:
        p = sweep_point(r)
        if p.get("params") is None or p.get("bits_per_param") is None:
            raise StudyError(f"{r.task['id']} / {r.cell['name']}: a capacity run needs a parameter budget and a "
                             "size in bits per parameter")
        return r.cell["name"], int(p["params"]), float(p["bits_per_param"]), int(r.protocol["max_steps"])

    out = []
    for key_, runs in group_over_seeds(results, key):
        out.append(Point(cell=key_[0], budget=key_[1], size=key_[2], max_steps=key_[3],
                         params=[int(r.cell["params_total"]) for r in runs],
                         n_examples=[int(r.task["n_examples"]) for r in runs],
                         bits=[float(r.best["train"]["bits"]) for r in runs],  # type: ignore[index]
                         fraction=[float(r.best["train"]["fraction_of_ceiling"]) for r in runs],  # type: ignore[index]
                         stops=[r.stop_reason for r in runs]))
    return out


def _main_steps(pts: Sequence[Point]) -> int:
    return min(p.max_steps for p in pts)


def capacity_by_budget(pts: Sequence[Point]) -> list[dict[str, Any]]:
    """Per cell and budget, the size that stored the most bits (mean over seeds), with its spread."""
    main = [p for p in pts if p.max_steps == _main_steps(pts)]
    best: dict[tuple[str, int], Point] = {}
    for p in main:
        key = (p.cell, p.budget)
        if key not in best or mean_std(p.bits)[0] > mean_std(best[key].bits)[0]:  # type: ignore[operator]
            best[key] = p
    rows = []
    for (cell, budget), p in best.items():
        bits, bits_sd = mean_std(p.bits)
        bpp, bpp_sd = mean_std(p.bits_per_param)
        budget_stops = sum(q.stops.count("budget") for q in main if (q.cell, q.budget) == (cell, budget))
        runs = sum(len(q.stops) for q in main if (q.cell, q.budget) == (cell, budget))
        rows.append({"cell": cell, "budget": budget, "params": p.params_mean, "best_size": p.size,
                     "n_examples": p.n_examples[0], "bits": bits, "bits_sd": bits_sd, "bits_per_param": bpp,
                     "bits_per_param_sd": bpp_sd, "fraction": mean_std(p.fraction)[0], "budget_stops": budget_stops,
                     "runs": runs})
    return rows


def best_by_cell(by_budget: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell, the budget and size with the most bits per parameter (mean over seeds, with their spread)."""
    best: dict[str, dict[str, Any]] = {}
    for row in by_budget:
        if row["cell"] not in best or row["bits_per_param"] > best[row["cell"]]["bits_per_param"]:
            best[row["cell"]] = row
    return list(best.values())


def budget_check(pts: Sequence[Point]) -> list[dict[str, Any]]:
    """Per cell: bits at the check point (smallest budget, largest size) with the main and the 4× step budget."""
    steps = sorted({p.max_steps for p in pts})
    if len(steps) < 2:
        return []
    short, long = steps[0], steps[-1]
    at = {(p.cell, p.budget, p.size, p.max_steps): p for p in pts}
    rows = []
    for p in pts:
        if p.max_steps != long or (p.cell, p.budget, p.size, short) not in at:
            continue
        q = at[(p.cell, p.budget, p.size, short)]
        before, after = mean_std(q.bits_per_param)[0], mean_std(p.bits_per_param)[0]
        rows.append({"cell": p.cell, "budget": p.budget, "size": p.size, "steps": short, "long_steps": long,
                     "bits_per_param": before, "long_bits_per_param": after,
                     "gain": None if not before else after / before,  # type: ignore[operator]
                     "long_stops": ",".join(sorted(set(p.stops)))})
    return rows


# ----- outputs ------------------------------------------------------------------------------------------------
def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """Write the tables, the figure (with its data) and the README of the study into ``out_dir``."""
    pts = points(results)
    if not pts:
        raise StudyError("no measured capacity runs to analyse")
    by_budget = capacity_by_budget(pts)
    best = best_by_cell(by_budget)
    check = budget_check(pts)
    written = [
        write_csv(out_dir / "capacity.csv", ["cell", "budget", "bits_per_param_offered", "max_steps", "seeds",
                                             "params_total", "n_examples", "bits_mean", "bits_sd",
                                             "bits_per_param_mean", "bits_per_param_sd", "fraction_of_ceiling",
                                             "stops"],
                  [[p.cell, p.budget, p.size, p.max_steps, len(p.bits), p.params_mean, p.n_examples[0],
                    *mean_std(p.bits), *mean_std(p.bits_per_param), mean_std(p.fraction)[0], " ".join(p.stops)]
                   for p in pts]),
        write_csv(out_dir / "best.csv", ["cell", "budget", "params_total", "bits_per_param_offered", "bits_mean",
                                         "bits_sd", "bits_per_param_mean", "bits_per_param_sd"],
                  [[r["cell"], r["budget"], r["params"], r["best_size"], r["bits"], r["bits_sd"],
                    r["bits_per_param"], r["bits_per_param_sd"]] for r in best]),
    ]
    written += _figure(by_budget, pts, out_dir)
    readme = out_dir / "README.md"
    readme.write_text(_readme(pts, by_budget, best, check, study))
    return written + [readme]


def _figure(by_budget: Sequence[dict[str, Any]], pts: Sequence[Point], out_dir: Path) -> list[Path]:
    plt = pyplot()
    cells = list(dict.fromkeys(r["cell"] for r in by_budget))
    colors = plt.get_cmap("tab10")
    main = [p for p in pts if p.max_steps == _main_steps(pts)]
    largest = max(p.budget for p in main)
    data: dict[str, Any] = {"bits_vs_params": {}, "stored_vs_offered": {"budget": largest}}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, cell in enumerate(cells):
        rows = sorted((r for r in by_budget if r["cell"] == cell), key=lambda r: r["params"])
        x, y, e = [r["params"] for r in rows], [r["bits"] for r in rows], [r["bits_sd"] for r in rows]
        left.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=2, color=colors(i % 10), label=cell)
        data["bits_vs_params"][cell] = {"params": x, "bits": y, "bits_sd": e}
        own = sorted((p for p in main if p.cell == cell and p.budget == largest), key=lambda p: p.size)
        xs, ys = [p.size for p in own], [mean_std(p.bits_per_param)[0] for p in own]
        right.plot(xs, ys, marker="o", ms=4, color=colors(i % 10), label=cell)
        data["stored_vs_offered"][cell] = {"offered": xs, "stored": ys}
    span = [min(r["params"] for r in by_budget) * 0.8, max(r["params"] for r in by_budget) * 1.25]
    left.plot(span, [PAPER_BITS_PER_PARAM * s for s in span], "k--", lw=1, label="5 bits/param (Collins et al.)")
    left.plot(span, span, "k:", lw=1, label="1 bit/param")
    left.set(xscale="log", yscale="log", xlabel="parameters", ylabel="bits stored (best size, mean over seeds)",
             title="Bits stored against parameters")
    left.legend(fontsize=7, ncol=2)
    sizes = sorted({p.size for p in main})
    right.plot(sizes, sizes, "k:", lw=1, label="everything offered")
    right.axhline(PAPER_BITS_PER_PARAM, color="k", ls="--", lw=1, label="5 bits/param")
    right.set(xscale="log", xlabel="bits per parameter offered (training-set information)",
              ylabel="bits per parameter stored", title=f"Stored against offered, {largest}-parameter budget")
    right.set_xticks(sizes, [f"{x:g}" for x in sizes])
    right.minorticks_off()
    right.legend(fontsize=7, ncol=2)
    return save_figure(fig, data, out_dir, "bits_vs_params")


def _readme(pts: Sequence[Point], by_budget: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]],
            check: Sequence[dict[str, Any]], study: dict[str, Any]) -> str:
    main = [p for p in pts if p.max_steps == _main_steps(pts)]
    steps = _main_steps(pts)
    budgets = sorted({p.budget for p in main})
    sizes = sorted({p.size for p in main})
    seeds = max(len(p.bits) for p in main)
    stops = [s for p in main for s in p.stops]
    top = max(best, key=lambda r: r["bits_per_param"])
    lines = [
        "# Per-parameter capacity: bits stored per parameter",
        "",
        "*Generated by `memtasks study capacity` from `results.jsonl` and `study.json`; do not edit.*",
        "",
        "Collins et al. (2017) report that every common cell stores about **5 bits per parameter** (3 to 6 over "
        "cells and depths) of random input → label mappings, each point the best of 1000+ tuned trainings of up "
        "to millions of steps.",
        "",
        f"**Measured here:** the best cell stores **{top['bits_per_param']:.2f} bits per parameter** "
        f"({top['cell']}, {top['budget']} parameters), {PAPER_BITS_PER_PARAM / top['bits_per_param']:.1f}× below "
        f"the paper's 5. Every figure below is the best of learning rates {', '.join(f'{x:g}' for x in LRS)} "
        f"with at most {steps:,} steps per trial, and {stops.count('budget')} of {len(stops)} points stopped at "
        "that step budget, still improving.",
        "",
        "![bits stored against parameters](bits_vs_params.png)",
        "",
        f"*Left: the most bits each cell stored at each budget (over training sets of {_sizes(sizes)} bits per "
        f"parameter, mean ± std over {seeds} seed{'s' * (seeds != 1)}), against its parameters, log-log; dashed, "
        f"the paper's 5 bits per parameter; dotted, 1 bit per parameter. Right: bits per parameter stored against "
        f"offered at {budgets[-1]} parameters: a cell that stored everything would follow the dotted line. The paper "
        f"reports about 5 bits per parameter for every cell; here the cells store "
        f"{min(r['bits_per_param'] for r in best):.2f} to {top['bits_per_param']:.2f} at their best.*",
        "",
        "## Best bits per parameter, per cell",
        "",
        "| cell | bits/param (mean ± std over seeds) | at budget | params | best training set (bits/param) | "
        "paper |",
        "|---|---|---|---|---|---|",
    ]
    for r in best:
        lines.append(f"| {r['cell']} | {fmt(r['bits_per_param'])} ± {fmt(r['bits_per_param_sd'])} | {r['budget']} | "
                     f"{r['params']:.0f} | {r['best_size']:g} | ≈5 |")
    lines += ["", "## Bits stored at each budget", "",
              "| cell | " + " | ".join(f"{b} params" for b in budgets) + " | budget stops |",
              "|---|" + "---|" * len(budgets) + "---|"]
    for cell in dict.fromkeys(r["cell"] for r in by_budget):
        rows = {r["budget"]: r for r in by_budget if r["cell"] == cell}
        cells = [f"{fmt(rows[b]['bits'], 0)} ± {fmt(rows[b]['bits_sd'], 0)} ({fmt(rows[b]['bits_per_param'])}/param)"
                 if b in rows else "–" for b in budgets]
        stopped = sum(r["budget_stops"] for r in rows.values())
        total = sum(r["runs"] for r in rows.values())
        lines.append(f"| {cell} | " + " | ".join(cells) + f" | {stopped}/{total} |")
    lines += ["", "## Would more steps change it?", ""]
    if check:
        gains = [r["gain"] for r in check if r["gain"] is not None]
        lines += [f"The budget check trains every cell again at {check[0]['budget']} parameters on its largest "
                  f"training set ({check[0]['size']:g} bits per parameter) with {check[0]['long_steps']:,} steps "
                  f"instead of {check[0]['steps']:,}:", "",
                  "| cell | bits/param, " + f"{check[0]['steps']:,} steps | bits/param, {check[0]['long_steps']:,} "
                  "steps | gain | stops |", "|---|---|---|---|---|"]
        for r in check:
            lines.append(f"| {r['cell']} | {fmt(r['bits_per_param'])} | {fmt(r['long_bits_per_param'])} | "
                         f"{fmt(r['gain'])}× | {r['long_stops']} |")
        if gains:
            rising = sum(g > 1.05 for g in gains)
            factor = check[0]["long_steps"] // check[0]["steps"]
            lines += ["", f"{rising} of {len(gains)} cells store more than 5 % more with {factor}× the steps (gain "
                      f"{min(gains):.2f}× to {max(gains):.2f}×)."]
            if rising:
                lines[-1] += (" For those cells the figures above are lower bounds set by the step budget and the "
                              "search, not capacities: the paper's points had up to millions of steps and 1000+ "
                              "tuned runs each.")
            if rising < len(gains):
                lines[-1] += (" Where the bits do not rise, more steps at these learning rates do not help; what is "
                              "left between them and the paper is the search (learning-rate schedule, "
                              "initialisation scales, optimizer) and the task.")
    else:
        lines.append("The budget check was not run.")
    lines += reproduce_lines("capacity", "baselines/studies/capacity", study)
    return "\n".join(lines)


def _sizes(sizes: Sequence[float]) -> str:
    return ", ".join(f"{s:g}" for s in sizes)



def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per cell for the terminal: best bits per parameter and where."""
    best = best_by_cell(capacity_by_budget(points(results)))
    return [f"{r['cell']:>12}: {r['bits_per_param']:.2f} ± {r['bits_per_param_sd']:.2f} bits/param "
            f"({r['budget']} params, {r['best_size']:g} bits/param offered)" for r in best]

