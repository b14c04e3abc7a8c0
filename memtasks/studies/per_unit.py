"""The per-unit capacity study: how many real numbers a cell with N hidden units recalls after a delay.

Collins et al. (2017) show a random vector once and ask for it back later; every cell, at every depth and size,
reconstructs it if and only if it has at least as many units as the vector has numbers: about **one real number
per hidden unit**.

This study measures that on ``DelayedRecall-Real-v0`` (one vector of ``dim`` standard-normal numbers, ``DELAY``
blank steps, then the vector back): every cell with N hidden units for several N, with ``dim`` from N/4 to 4N. The
targets are the inputs, so a cell cannot learn them into its weights: the figure is the R² on **held-out** vectors,
which only what the state carries can explain. The encoder is ``dim + 1`` wide (the numbers and the blank flag),
so the N hidden units are the only bottleneck. From it:

- **reals recalled per unit** = dim · R² / N (the paper's measure; a cell that keeps the best N-dimensional
  subspace of isotropic inputs recalls N of them, so this saturates at 1);
- **bits per real** = ½ log₂ (1 / (1 − R²)), the information per recalled number of a Gaussian channel;
- per cell, the **threshold**: the dim/N at which held-out R² falls below 0.9 (linear in log₂ dim/N between
  the two sizes around it; the best linear N-subspace gives 1/0.9 ≈ 1.11).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.fitting.result import RunResult
from memtasks.metrics import MAX_BITS_PER_SCALAR
from memtasks.studies import common
from memtasks.studies.common import PLATEAU, StudyError, fmt, mean_std, write_csv
from memtasks.studies.registry import Study, register

TASK = "DelayedRecall-Real-v0"
HIDDEN = (8, 16, 32)
RATIOS = (0.25, 0.5, 1.0, 2.0, 4.0)
DELAY = 5
N_EXAMPLES = 2000
N_TEST = 500
SEEDS = 2
MAX_STEPS = 3000
#: Held-out R² below which recall counts as failed.
THRESHOLD = 0.9


def dim_of(hidden: int, ratio: float) -> int:
    """The vector size of ratio dim/N at N hidden units (at least 1)."""
    return max(1, round(ratio * hidden))


def configs(cells: Sequence[str] = common.DEFAULT_CELLS, scale: float = 1.0, hidden: Sequence[int] = HIDDEN,
            ratios: Sequence[float] = RATIOS) -> list[Any]:
    """One sweep per (N, dim): the encoder width follows dim, so each is its own grid of cells × seeds."""
    from memtasks.sweeps.config import SweepConfig

    size = STUDY.size(cells, scale)
    steps, seeds = size.steps(MAX_STEPS), size.seeds(SEEDS)
    out = []
    for n in hidden:
        for dim in dict.fromkeys(dim_of(n, r) for r in ratios):
            out.append(SweepConfig(
                name=f"{size.name}-N{n}-dim{dim}", tasks=[TASK], cells=list(cells), n_examples=[N_EXAMPLES],
                seq_len=[1], hidden=[n], seeds=seeds, embed_dim=dim + 1, search={"lr": list(common.LRS)},
                task_kwargs={"dim": dim, "delay": DELAY, "n_test": N_TEST}, protocol={**PLATEAU, "max_steps": steps}))
    return out


def bits_per_real(r2: float) -> float:
    """½ log₂ (1 / (1 − R²)), 0 for R² ≤ 0, capped like every real target (8 bits)."""
    if r2 <= 0:
        return 0.0
    if r2 >= 1:
        return MAX_BITS_PER_SCALAR
    return min(0.5 * math.log2(1 / (1 - r2)), MAX_BITS_PER_SCALAR)


@dataclass(frozen=True)
class RecallRow:
    """One (cell, N, dim): its seeds' held-out and training R²."""

    cell: str
    hidden: int
    dim: int
    test_r2: list[float]
    train_r2: list[float]
    stops: list[str]

    @property
    def ratio(self) -> float:
        return self.dim / self.hidden

    @property
    def r2(self) -> float:
        return mean_std(self.test_r2)[0]  # type: ignore[return-value]

    @property
    def reals_per_unit(self) -> float:
        return self.dim * max(self.r2, 0.0) / self.hidden


def points(results: Sequence[RunResult]) -> list[RecallRow]:
    """The runs grouped over seeds, in a fixed order (cells, N, dim)."""
    def key(r: RunResult) -> tuple[str, int, int]:
        p = common.sweep_point(r)
        if r.task["id"] != TASK or p.get("hidden") is None:
            raise StudyError(f"{r.task['id']} / {r.cell['name']}: a per-unit run is {TASK} at a fixed hidden size")
        if r.best.get("test") is None:  # type: ignore[union-attr]
            raise StudyError(f"{TASK} / {r.cell['name']}: the run has no held-out evaluation (n_test=0)")
        return r.cell["name"], int(p["hidden"]), int(r.task["kwargs"]["dim"])

    out = []
    for key_, runs in common.group_over_seeds(results, key):
        out.append(RecallRow(cell=key_[0], hidden=key_[1], dim=key_[2],
                             test_r2=[float(r.best["test"]["r2"]) for r in runs],  # type: ignore[index]
                             train_r2=[float(r.best["train"]["r2"]) for r in runs],  # type: ignore[index]
                             stops=[r.stop_reason for r in runs]))
    return out


def threshold(curve: Sequence[tuple[float, float]], level: float = THRESHOLD) -> tuple[float | None, str]:
    """Where R² first falls below ``level`` along ``(dim/N, R²)`` sorted by dim/N: the crossing, interpolated
    linearly in log₂ dim/N, and a relation: ``=``, ``<`` (below at the smallest size) or ``>`` (never below)."""
    curve = sorted(curve)
    if not curve:
        return None, "="
    if curve[0][1] < level:
        return curve[0][0], "<"
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if y1 < level:
            t = (y0 - level) / (y0 - y1)
            return 2 ** (math.log2(x0) + t * (math.log2(x1) - math.log2(x0))), "="
    return curve[-1][0], ">"


def thresholds(pts: Sequence[RecallRow]) -> list[dict[str, Any]]:
    """Per cell and N, the threshold dim/N; per cell, their mean over N (when every N crossed inside the grid)."""
    by: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for p in pts:
        by[(p.cell, p.hidden)].append((p.ratio, p.r2))
    rows = []
    for (cell, n), curve in by.items():
        value, rel = threshold(curve)
        rows.append({"cell": cell, "hidden": n, "threshold": value, "relation": rel,
                     "max_reals_per_unit": max(p.reals_per_unit for p in pts if (p.cell, p.hidden) == (cell, n))})
    return rows


def per_cell(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell: the thresholds over N (mean, range) and the most reals recalled per unit."""
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        own = [r for r in rows if r["cell"] == cell]
        exact = [r["threshold"] for r in own if r["relation"] == "="]
        mean = mean_std(exact)[0] if len(exact) == len(own) else None
        text = " / ".join(f"{r['relation'] if r['relation'] != '=' else ''}{fmt(r['threshold'])}" for r in own)
        out.append({"cell": cell, "threshold_mean": mean, "by_hidden": text,
                    "hidden": " / ".join(str(r["hidden"]) for r in own),
                    "max_reals_per_unit": max(r["max_reals_per_unit"] for r in own)})
    return out


# ----- outputs ------------------------------------------------------------------------------------------------
def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """Write the tables, the figure (with its data) and the README of the study into ``out_dir``."""
    pts = common.require(points(results), "measured per-unit runs")
    rows = thresholds(pts)
    cells = per_cell(rows)
    written = [
        write_csv(out_dir / "recall.csv", ["cell", "hidden", "dim", "dim_per_unit", "seeds", "test_r2_mean",
                                           "test_r2_sd", "train_r2_mean", "bits_per_real", "reals_per_unit"],
                  [[p.cell, p.hidden, p.dim, p.ratio, len(p.test_r2), *mean_std(p.test_r2),
                    mean_std(p.train_r2)[0], bits_per_real(p.r2), p.reals_per_unit] for p in pts]),
        write_csv(out_dir / "thresholds.csv", ["cell", "hidden", "dim_per_unit_at_r2_0.9", "relation",
                                               "max_reals_per_unit"],
                  [[r["cell"], r["hidden"], r["threshold"], r["relation"], r["max_reals_per_unit"]] for r in rows]),
    ]
    return written + _figure(pts, out_dir) + [_readme(out_dir, pts, cells, study)]


def _curves(pts: Sequence[RecallRow]) -> dict[str, dict[str, list[float]]]:
    """Per cell, mean over N (and seeds) of R², bits per real and reals per unit at each dim/N."""
    by: dict[str, dict[float, list[RecallRow]]] = defaultdict(lambda: defaultdict(list))
    for p in pts:
        by[p.cell][p.ratio].append(p)
    out = {}
    for cell, ratios in by.items():
        xs = sorted(ratios)
        out[cell] = {"dim_per_unit": xs,
                     "r2": [mean_std(p.r2 for p in ratios[x])[0] for x in xs],
                     "r2_sd": [mean_std(v for p in ratios[x] for v in p.test_r2)[1] for x in xs],
                     "bits_per_real": [mean_std(bits_per_real(p.r2) for p in ratios[x])[0] for x in xs],
                     "reals_per_unit": [mean_std(p.reals_per_unit for p in ratios[x])[0] for x in xs]}
    return out  # type: ignore[return-value]


def _figure(pts: Sequence[RecallRow], out_dir: Path) -> list[Path]:
    curves = _curves(pts)
    fig, ((left, middle, right),) = common.subplots(1, 3, (16, 4.8))
    for i, (cell, c) in enumerate(curves.items()):
        color = common.cell_color(i)
        left.errorbar(c["dim_per_unit"], c["r2"], yerr=c["r2_sd"], marker="o", ms=4, capsize=2, color=color,
                      label=cell)
        middle.plot(c["dim_per_unit"], c["bits_per_real"], marker="o", ms=4, color=color, label=cell)
        right.plot(c["dim_per_unit"], c["reals_per_unit"], marker="o", ms=4, color=color, label=cell)
    xs = sorted({x for c in curves.values() for x in c["dim_per_unit"]})
    fine = [2 ** (math.log2(xs[0]) + k * (math.log2(xs[-1]) - math.log2(xs[0])) / 100) for k in range(101)]
    left.plot(fine, [min(1.0, 1 / x) for x in fine], "k:", lw=1, label="best N-dim subspace")
    left.axhline(THRESHOLD, color="k", ls="--", lw=1, label=f"R² = {THRESHOLD}")
    left.set(xscale="log", xlabel="dim / N (numbers shown per hidden unit)", ylabel="held-out R² of the recall",
             title="Recall after a delay, held-out vectors", ylim=(-0.05, 1.05))
    left.set_xscale("log", base=2)
    left.legend(fontsize=7, ncol=2)
    middle.plot(fine, [bits_per_real(min(1.0, 1 / x)) for x in fine], "k:", lw=1, label="best N-dim subspace")
    middle.set(xlabel="dim / N", ylabel="bits per recalled number, ½ log₂(1/(1 − R²))",
               title="Information per recalled number")
    middle.set_xscale("log", base=2)
    middle.legend(fontsize=7, ncol=2)
    right.axhline(1.0, color="k", ls="--", lw=1, label="1 real per unit (Collins et al.)")
    right.set(xlabel="dim / N", ylabel="reals recalled per unit (dim · R² / N)", title="Reals recalled per hidden unit")
    right.set_xscale("log", base=2)
    right.legend(fontsize=7, ncol=2)
    return common.save_figure(fig, curves, out_dir, "recall_vs_dim")


def _readme(out_dir: Path, pts: Sequence[RecallRow], cells: Sequence[dict[str, Any]], study: dict[str, Any]) -> Path:
    hidden = sorted({p.hidden for p in pts})
    ratios = sorted({p.ratio for p in pts})
    stops = [s for p in pts for s in p.stops]
    sweep = study["sweeps"][0] if study.get("sweeps") else {}
    size_rows = []
    for cell in common.cells_of(pts):
        for n in hidden:
            own = {p.ratio: p for p in pts if (p.cell, p.hidden) == (cell, n)}
            if own:
                size_rows.append(f"| {cell} | {n} | "
                                 + " | ".join(fmt(own[r].r2, 3) if r in own else "–" for r in ratios) + " |")
    return STUDY.write_readme(
        out_dir, study, task=TASK, delay=DELAY, n_examples=N_EXAMPLES, n_test=N_TEST,
        hidden=", ".join(map(str, hidden)), ratios=common.listed(ratios), lrs=common.listed(common.LRS),
        steps=f"{sweep.get('protocol', {}).get('max_steps', MAX_STEPS):,}",
        seeds=common.counted(max(len(p.test_r2) for p in pts), "seed"), budget_stops=stops.count("budget"),
        runs=len(stops), least=f"{min(c['max_reals_per_unit'] for c in cells):.2f}",
        most=f"{max(c['max_reals_per_unit'] for c in cells):.2f}", hidden_columns=" / ".join(map(str, hidden)),
        cell_rows="\n".join(f"| {c['cell']} | {c['by_hidden']} | {fmt(c['threshold_mean'])} | "
                            f"{fmt(c['max_reals_per_unit'])} | ≈1 |" for c in cells),
        ratio_columns=" | ".join(f"dim/N={r:g}" for r in ratios), ratio_rule="---|" * len(ratios),
        size_rows="\n".join(size_rows))


def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per cell for the terminal: the threshold and the most reals per unit."""
    return [f"{c['cell']:>12}: R² < 0.9 at dim/N {c['by_hidden']} (N = {c['hidden']}); at most "
            f"{c['max_reals_per_unit']:.2f} reals per unit" for c in per_cell(thresholds(points(results)))]


STUDY = register(Study("per-unit", configs, write_outputs, summary_lines))
