"""The per-parameter capacity study: how many bits of random labels a cell stores per parameter.

Collins et al. (2017) train cells to memorize random input → random label mappings, choose the number of
mappings b that maximises the information stored, I = b·(1 − H₂(p)) for accuracy p, and report about 5 bits per
parameter for every common cell (3 to 6 over cells and depths) after 1000+ tuned trainings per point.

This study measures the same quantity with memtasks' converged protocol: every cell at two parameter budgets on
``NextStep-CatCat-v0`` (random targets: each of the 10 scored steps carries a uniform label of 4 classes, 2 bits),
with training sets of 1, 2 and 4 bits per parameter (the old grid's peaks were at 2 and 4); each point is the best
of four learning rates by successive halving, each trial trained until the doubling test says more steps would
not change its figure, or its cap. A point's bits are the information its training predictions carry about the
labels (:func:`memtasks.metrics.bits_categorical`, Collins' I for 2 classes), and a cell's capacity at a budget is
the most bits over those sizes. Collins' own task shows one random input and reads one binary label a few steps
later: 1 bit per example and five recurrent steps per bit, ten times the arithmetic per stored bit of
``NextStep-CatCat`` (20 bits in 10 steps).

A **budget check** (:func:`followup`, run once the grid is done) re-measures every cell whose peak converged at
that peak, the budget and size where it stored the most, with four times the cap, the passes and ``min_steps``:
where the bits rise by more than 2 %, the peak is a lower bound set by the budget, not the cell's capacity. A peak
not shown converged is a lower bound by its own evidence and is not re-run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.fitting.result import RunResult
from memtasks.studies import common
from memtasks.studies.common import StudyError, fill, fmt, mean_std, paragraphs, write_csv
from memtasks.studies.registry import Study, register

TASK = "NextStep-CatCat-v0"
SEQ_LEN = 10
BUDGETS = (500, 1000)
BITS_PER_PARAM = (1.0, 2.0, 4.0)
SEEDS = 2
#: The cap of a trial's steps; ``MIN_STEPS`` the first judgement and halving rung (both times ``--scale``).
MAX_STEPS = 64_000
MIN_STEPS = 4000
#: Four rates cost little more than three under successive halving (the worse half stops at each rung).
LRS = (0.003, 0.01, 0.03, 0.1)
EMBED_DIM = 8
#: How many times the cap, the passes and ``min_steps`` the budget check trains.
CHECK_FACTOR = 4
#: The most a peak may rise in the check for the study to call it converged.
CHECK_LIMIT = 0.02
#: What Collins et al. report, for the figure's reference line.
PAPER_BITS_PER_PARAM = 5.0


def protocol(scale: float = 1.0) -> dict[str, Any]:
    """The grid's protocol at ``scale``: the doubling rule (gain under 1 % over the last half) with a cap that the
    passes never bind (full batch: a pass is a step)."""
    steps = common.scaled_steps(MAX_STEPS, scale)
    return {"rule": "doubling", "tolerance": 0.01, "max_steps": steps, "passes": steps,
            "min_steps": common.scaled_steps(MIN_STEPS, scale)}


def configs(cells: Sequence[str] = common.DEFAULT_CELLS, scale: float = 1.0, budgets: Sequence[int] = BUDGETS,
            bits_per_param: Sequence[float] = BITS_PER_PARAM) -> list[Any]:
    """The study's grid (its budget check follows from the grid's results: :func:`followup`)."""
    from memtasks.sweeps.config import SweepConfig

    size = STUDY.size(cells, scale)
    return [SweepConfig(name=size.name, tasks=[TASK], cells=list(cells), seq_len=[SEQ_LEN], seeds=size.seeds(SEEDS),
                        embed_dim=EMBED_DIM, bits_per_param=list(bits_per_param), params=list(budgets),
                        search={"lr": list(LRS), "batch_size": [1_000_000]}, task_kwargs={"n_test": 100},
                        protocol=protocol(scale))]


def followup(done: Sequence[Any], results: Sequence[RunResult]) -> list[Any]:
    """The budget check, once the grid is done: each cell whose peak (the budget and size with the most bits, mean
    over seeds) converged in every seed, at that peak with :data:`CHECK_FACTOR` times the cap, passes and
    ``min_steps``; one sweep per peak shared by cells. A peak not shown converged is not re-run: its own last half
    already says more steps would change it (a lower bound, marked so). Nothing once the check has run."""
    if len(done) > 1:
        return []
    grid = done[0]
    peaks: dict[tuple[int, float], list[str]] = {}
    for row in best_by_cell(capacity_by_budget(points(results))):
        if not row["peak_unconverged"]:
            peaks.setdefault((row["budget"], row["best_size"]), []).append(row["cell"])
    longer = {**grid.protocol, **{k: grid.protocol[k] * CHECK_FACTOR for k in ("max_steps", "passes", "min_steps")}}
    return [dataclasses.replace(grid, name=f"{grid.name}-check-p{budget}-b{size:g}", cells=cells, params=[budget],
                                bits_per_param=[size], protocol=longer)
            for (budget, size), cells in sorted(peaks.items())]


@dataclass(frozen=True)
class CapacityRow:
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
    #: Each seed's convergence verdict (None: a result without evidence, from before the doubling rule).
    converged: list[bool | None]

    @property
    def unconverged(self) -> int:
        """Seeds whose figure is not shown converged."""
        return sum(c is not True for c in self.converged)

    @property
    def params_mean(self) -> float:
        return sum(self.params) / len(self.params)

    @property
    def bits_per_param(self) -> list[float]:
        return [b / p for b, p in zip(self.bits, self.params, strict=True)]


def points(results: Sequence[RunResult]) -> list[CapacityRow]:
    """The runs grouped over seeds into grid points, in a fixed order (cell order as given, budget, size, steps)."""
    def key(r: RunResult) -> tuple[str, int, float, int]:
        p = common.sweep_point(r)
        if p.get("params") is None or p.get("bits_per_param") is None:
            raise StudyError(f"{r.task['id']} / {r.cell['name']}: a capacity run needs a parameter budget and a "
                             "size in bits per parameter")
        return r.cell["name"], int(p["params"]), float(p["bits_per_param"]), int(r.protocol["max_steps"])

    out = []
    for key_, runs in common.group_over_seeds(results, key):
        out.append(CapacityRow(cell=key_[0], budget=key_[1], size=key_[2], max_steps=key_[3],
                               params=[int(r.cell["params_total"]) for r in runs],
                               n_examples=[int(r.task["n_examples"]) for r in runs],
                               bits=[float(r.best["train"]["bits"]) for r in runs],  # type: ignore[index]
                               fraction=[float(r.best["train"]["fraction_of_ceiling"])  # type: ignore[index]
                                         for r in runs],
                               stops=[r.stop_reason for r in runs], converged=[r.converged for r in runs]))
    return out


def _main_steps(pts: Sequence[CapacityRow]) -> int:
    return min(p.max_steps for p in pts)


def capacity_by_budget(pts: Sequence[CapacityRow]) -> list[dict[str, Any]]:
    """Per cell and budget, the size that stored the most bits (mean over seeds), with its spread."""
    main = [p for p in pts if p.max_steps == _main_steps(pts)]
    best: dict[tuple[str, int], CapacityRow] = {}
    for p in main:
        key = (p.cell, p.budget)
        if key not in best or mean_std(p.bits)[0] > mean_std(best[key].bits)[0]:  # type: ignore[operator]
            best[key] = p
    rows = []
    for (cell, budget), p in best.items():
        bits, bits_sd = mean_std(p.bits)
        bpp, bpp_sd = mean_std(p.bits_per_param)
        unconverged = sum(q.unconverged for q in main if (q.cell, q.budget) == (cell, budget))
        runs = sum(len(q.stops) for q in main if (q.cell, q.budget) == (cell, budget))
        rows.append({"cell": cell, "budget": budget, "params": p.params_mean, "best_size": p.size,
                     "n_examples": p.n_examples[0], "bits": bits, "bits_sd": bits_sd, "bits_per_param": bpp,
                     "bits_per_param_sd": bpp_sd, "fraction": mean_std(p.fraction)[0], "unconverged": unconverged,
                     "runs": runs, "peak_unconverged": p.unconverged, "seeds": len(p.bits)})
    return rows


def best_by_cell(by_budget: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell, the budget and size with the most bits per parameter (mean over seeds, with their spread)."""
    best: dict[str, dict[str, Any]] = {}
    for row in by_budget:
        if row["cell"] not in best or row["bits_per_param"] > best[row["cell"]]["bits_per_param"]:
            best[row["cell"]] = row
    return list(best.values())


def budget_check(pts: Sequence[CapacityRow]) -> list[dict[str, Any]]:
    """Per cell: bits at its check point (its peak) with the grid's protocol and with the check's longer one."""
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
                     "stops": ",".join(sorted(set(q.stops))), "long_stops": ",".join(sorted(set(p.stops))),
                     "unconverged": q.unconverged, "long_unconverged": p.unconverged})
    return rows


# ----- outputs ------------------------------------------------------------------------------------------------
def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """Write the tables, the figure (with its data) and the README of the study into ``out_dir``."""
    pts = common.require(points(results), "measured capacity runs")
    by_budget = capacity_by_budget(pts)
    best = best_by_cell(by_budget)
    check = budget_check(pts)
    written = [
        write_csv(out_dir / "capacity.csv", ["cell", "budget", "bits_per_param_offered", "max_steps", "seeds",
                                             "params_total", "n_examples", "bits_mean", "bits_sd",
                                             "bits_per_param_mean", "bits_per_param_sd", "fraction_of_ceiling",
                                             "stops", "unconverged"],
                  [[p.cell, p.budget, p.size, p.max_steps, len(p.bits), p.params_mean, p.n_examples[0],
                    *mean_std(p.bits), *mean_std(p.bits_per_param), mean_std(p.fraction)[0], " ".join(p.stops),
                    p.unconverged] for p in pts]),
        write_csv(out_dir / "best.csv", ["cell", "budget", "params_total", "bits_per_param_offered", "bits_mean",
                                         "bits_sd", "bits_per_param_mean", "bits_per_param_sd"],
                  [[r["cell"], r["budget"], r["params"], r["best_size"], r["bits"], r["bits_sd"],
                    r["bits_per_param"], r["bits_per_param_sd"]] for r in best]),
    ]
    written += _figure(by_budget, pts, out_dir)
    return written + [_readme(out_dir, pts, by_budget, best, check, study)]


def _figure(by_budget: Sequence[dict[str, Any]], pts: Sequence[CapacityRow], out_dir: Path) -> list[Path]:
    cells = list(dict.fromkeys(r["cell"] for r in by_budget))
    main = [p for p in pts if p.max_steps == _main_steps(pts)]
    largest = max(p.budget for p in main)
    data: dict[str, Any] = {"bits_vs_params": {}, "stored_vs_offered": {"budget": largest}}
    fig, ((left, right),) = common.subplots(1, 2, (12, 4.8))
    for i, cell in enumerate(cells):
        rows = sorted((r for r in by_budget if r["cell"] == cell), key=lambda r: r["params"])
        x, y, e = [r["params"] for r in rows], [r["bits"] for r in rows], [r["bits_sd"] for r in rows]
        left.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=2, color=common.cell_color(i), label=cell)
        data["bits_vs_params"][cell] = {"params": x, "bits": y, "bits_sd": e}
        own = sorted((p for p in main if p.cell == cell and p.budget == largest), key=lambda p: p.size)
        xs, ys = [p.size for p in own], [mean_std(p.bits_per_param)[0] for p in own]
        right.plot(xs, ys, marker="o", ms=4, color=common.cell_color(i), label=cell)
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
    return common.save_figure(fig, data, out_dir, "bits_vs_params")


def _readme(out_dir: Path, pts: Sequence[CapacityRow], by_budget: Sequence[dict[str, Any]],
            best: Sequence[dict[str, Any]], check: Sequence[dict[str, Any]], study: dict[str, Any]) -> Path:
    main = [p for p in pts if p.max_steps == _main_steps(pts)]
    budgets = sorted({p.budget for p in main})
    stops = [s for p in main for s in p.stops]
    top = max(best, key=lambda r: r["bits_per_param"])
    seeds = max(len(p.bits) for p in main)
    largest_size = max(p.size for p in main)
    edge = [r for r in best if r["best_size"] == largest_size]
    best_rows = [f"| {r['cell']} | {fmt(r['bits_per_param'])} ± {fmt(r['bits_per_param_sd'])}{_dagger(r)} | "
                 f"{r['budget']} | {r['params']:.0f} | {r['best_size']:g}{' ‡' if r in edge else ''} | "
                 f"{r['seeds'] - r['peak_unconverged']}/{r['seeds']} | ≈5 |" for r in best]
    grid = study["sweeps"][0]
    budget_rows = []
    for cell in dict.fromkeys(r["cell"] for r in by_budget):
        rows = {r["budget"]: r for r in by_budget if r["cell"] == cell}
        cells = [f"{fmt(rows[b]['bits'], 0)} ± {fmt(rows[b]['bits_sd'], 0)} ({fmt(rows[b]['bits_per_param'])}/param)"
                 f"{_dagger(rows[b])}" if b in rows else "–" for b in budgets]
        stopped = sum(r["unconverged"] for r in rows.values())
        total = sum(r["runs"] for r in rows.values())
        budget_rows.append(f"| {cell} | " + " | ".join(cells) + f" | {stopped}/{total} |")
    return STUDY.write_readme(
        out_dir, study, best=f"{top['bits_per_param']:.2f}", best_cell=top["cell"], best_budget=top["budget"],
        below=f"{PAPER_BITS_PER_PARAM / top['bits_per_param']:.1f}", lrs=common.listed(grid["search"]["lr"]),
        steps=f"{_main_steps(pts):,}", unconverged=sum(p.unconverged for p in main), points=len(stops),
        min_steps=f"{int(grid['protocol']['min_steps']):,}",

        sizes=common.listed(sorted({p.size for p in main})),
        seeds=common.counted(seeds, "seed"), largest=budgets[-1],
        lowest=f"{min(r['bits_per_param'] for r in best):.2f}",
        best_rows=paragraphs("\n".join(best_rows), fill("capacity-edge", size=f"{largest_size:g}",
                                                        cells=", ".join(r["cell"] for r in edge)) if edge else ""),
        budget_columns=" | ".join(f"{b} params" for b in budgets), budget_rule="---|" * (len(budgets) + 1),
        budget_rows="\n".join(budget_rows), check=_check_text(check, best))


def _dagger(row: dict[str, Any]) -> str:
    """† after a figure whose seeds are not all shown converged."""
    return " †" if row["peak_unconverged"] else ""


def _check_text(check: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]]) -> str:
    """The section on the budget check: its table, whether the longer protocol raised each checked peak, and the
    peaks it did not re-run (not shown converged: lower bounds by their own evidence)."""
    checked = {r["cell"] for r in check}
    skipped = [r["cell"] for r in best if r["cell"] not in checked and r["peak_unconverged"]]
    unchecked = fill("capacity-unchecked", cells=", ".join(skipped), n=len(skipped)) if skipped else ""
    if not check:
        return paragraphs(fill("no-check"), unchecked)
    first = check[0]
    rows = [f"| {r['cell']} | {r['budget']} | {r['size']:g} | {fmt(r['bits_per_param'])} | "
            f"{fmt(r['long_bits_per_param'])} | {fmt(r['gain'], 3)}× | {r['stops']} → {r['long_stops']} |" for r in check]
    table = fill("capacity-check", factor=first["long_steps"] // first["steps"], long_steps=f"{first['long_steps']:,}",
                 steps=f"{first['steps']:,}", rows="\n".join(rows))
    gains = [r["gain"] for r in check if r["gain"] is not None]
    if not gains:
        return paragraphs(table, unchecked)
    rising = sum(g > 1 + CHECK_LIMIT for g in gains)
    falling = sum(g < 1 - CHECK_LIMIT for g in gains)
    verdict = [fill("capacity-gains", within=len(gains) - rising - falling, cells=len(gains),
                    limit=f"{CHECK_LIMIT:.0%}", low=f"{min(gains):.3f}", high=f"{max(gains):.3f}")]
    if rising:
        verdict.append(fill("capacity-rising"))
    if falling:
        verdict.append(fill("capacity-falling"))
    if rising + falling < len(gains):
        verdict.append(fill("capacity-flat"))
    return paragraphs(table, " ".join(verdict), unchecked)


def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per cell for the terminal: best bits per parameter and where."""
    best = best_by_cell(capacity_by_budget(points(results)))
    return [f"{r['cell']:>12}: {r['bits_per_param']:.2f} ± {r['bits_per_param_sd']:.2f} bits/param "
            f"({r['budget']} params, {r['best_size']:g} bits/param offered)" for r in best]


STUDY = register(Study("capacity", configs, write_outputs, summary_lines, followup=followup))
