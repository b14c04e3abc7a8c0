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

TASK = "DelayedRecall-Real-v0"
HIDDEN = (8, 16, 32)
RATIOS = (0.25, 0.5, 1.0, 2.0, 4.0)
DELAY = 5
N_EXAMPLES = 2000
N_TEST = 500
SEEDS = 2
MAX_STEPS = 3000
LRS = (0.003, 0.01, 0.03)
#: Held-out R² below which recall counts as failed.
THRESHOLD = 0.9


def dim_of(hidden: int, ratio: float) -> int:
    """The vector size of ratio dim/N at N hidden units (at least 1)."""
    return max(1, round(ratio * hidden))


def configs(cells: Sequence[str] = BUILTIN_CELLS, scale: float = 1.0, hidden: Sequence[int] = HIDDEN,
            ratios: Sequence[float] = RATIOS) -> list[Any]:
    """One sweep per (N, dim): the encoder width follows dim, so each is its own grid of cells × seeds."""
    from memtasks.sweeps.config import SweepConfig

    scale = check_scale(scale)
    if not cells:
        raise StudyError("the per-unit study needs at least one cell")
    steps, seeds = scaled_steps(MAX_STEPS, scale), scaled_seeds(SEEDS, scale)
    name = sweep_name("per-unit", cells, scale)
    out = []
    for n in hidden:
        for dim in dict.fromkeys(dim_of(n, r) for r in ratios):
            out.append(SweepConfig(
                name=f"{name}-N{n}-dim{dim}", tasks=[TASK], cells=list(cells), n_examples=[N_EXAMPLES], seq_len=[1],
                hidden=[n], seeds=seeds, embed_dim=dim + 1, search={"lr": list(LRS)},
                task_kwargs={"dim": dim, "delay": DELAY, "n_test": N_TEST}, protocol={"max_steps": steps}))
    return out


def bits_per_real(r2: float) -> float:
    """½ log₂ (1 / (1 − R²)), 0 for R² ≤ 0, capped like every real target (8 bits)."""
    if r2 <= 0:
        return 0.0
    if r2 >= 1:
        return MAX_BITS_PER_SCALAR
    return min(0.5 * math.log2(1 / (1 - r2)), MAX_BITS_PER_SCALAR)


@dataclass(frozen=True)
class Point:
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


def points(results: Sequence[RunResult]) -> list[Point]:
    """The runs grouped over seeds, in a fixed order (cells, N, dim)."""
    def key(r: RunResult) -> tuple[str, int, int]:
        p = sweep_point(r)
        if r.task["id"] != TASK or p.get("hidden") is None:
            raise StudyError(f"{r.task['id']} / {r.cell['name']}: a per-unit run is {TASK} at a fixed hidden size")
        if r.best.get("test") is None:  # type: ignore[union-attr]
            raise StudyError(f"{TASK} / {r.cell['name']}: the run has no held-out evaluation (n_test=0)")
        return r.cell["name"], int(p["hidden"]), int(r.task["kwargs"]["dim"])

    out = []
    for key_, runs in group_over_seeds(results, key):
        out.append(Point(cell=key_[0], hidden=key_[1], dim=key_[2],
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
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y1 < level:
            t = (y0 - level) / (y0 - y1)
            return 2 ** (math.log2(x0) + t * (math.log2(x1) - math.log2(x0))), "="
    return curve[-1][0], ">"


def thresholds(pts: Sequence[Point]) -> list[dict[str, Any]]:
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
    pts = points(results)
    if not pts:
        raise StudyError("no measured per-unit runs to analyse")
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
    written += _figure(pts, out_dir)
    readme = out_dir / "README.md"
    readme.write_text(_readme(pts, cells, study))
    return written + [readme]


def _curves(pts: Sequence[Point]) -> dict[str, dict[str, list[float]]]:
    """Per cell, mean over N (and seeds) of R², bits per real and reals per unit at each dim/N."""
    by: dict[str, dict[float, list[Point]]] = defaultdict(lambda: defaultdict(list))
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


def _figure(pts: Sequence[Point], out_dir: Path) -> list[Path]:
    plt = pyplot()
    curves = _curves(pts)
    colors = plt.get_cmap("tab10")
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    for i, (cell, c) in enumerate(curves.items()):
        left.errorbar(c["dim_per_unit"], c["r2"], yerr=c["r2_sd"], marker="o", ms=4, capsize=2, color=colors(i % 10),
                      label=cell)
        middle.plot(c["dim_per_unit"], c["bits_per_real"], marker="o", ms=4, color=colors(i % 10), label=cell)
        right.plot(c["dim_per_unit"], c["reals_per_unit"], marker="o", ms=4, color=colors(i % 10), label=cell)
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
    return save_figure(fig, curves, out_dir, "recall_vs_dim")


def _readme(pts: Sequence[Point], cells: Sequence[dict[str, Any]], study: dict[str, Any]) -> str:
    hidden = sorted({p.hidden for p in pts})
    ratios = sorted({p.ratio for p in pts})
    seeds = max(len(p.test_r2) for p in pts)
    stops = [s for p in pts for s in p.stops]
    sweep = study["sweeps"][0] if study.get("sweeps") else {}
    steps = sweep.get("protocol", {}).get("max_steps", MAX_STEPS)
    lines = [
        "# Per-unit capacity: real numbers recalled per hidden unit",
        "",
        "*Generated by `memtasks study per-unit` from `results.jsonl` and `study.json`; do not edit.*",
        "",
        "Collins et al. (2017) find that every cell reconstructs a random vector shown once if and only if it has "
        "at least as many hidden units as the vector has numbers: about **one real number per hidden unit**.",
        "",
        f"**Measured here** on `{TASK}` (one vector of dim standard-normal numbers, {DELAY} blank steps, then the "
        f"vector back; {N_EXAMPLES} training vectors, R² on {N_TEST} held-out ones), N = "
        f"{', '.join(map(str, hidden))} hidden units, dim/N = {', '.join(f'{r:g}' for r in ratios)}, each point the "
        f"best of learning rates {', '.join(f'{x:g}' for x in LRS)} with at most {steps:,} steps, mean over {seeds} "
        f"seed{'s' * (seeds != 1)}. {stops.count('budget')} of {len(stops)} runs stopped at that step budget "
        "(their R² are lower bounds), the others on a plateau after three learning-rate decays or at the ceiling.",
        "",
        "![recall against dim/N](recall_vs_dim.png)",
        "",
        "*Left: held-out R² of the recalled vector against dim/N (mean over N and seeds, ± std); dotted, what the best "
        "N-dimensional subspace of the input explains (min(1, N/dim)); dashed, R² = 0.9. Middle: the information per "
        "recalled number, ½ log₂(1/(1 − R²)) (capped at 8 bits). Right: reals recalled per unit, dim · R² / N; "
        "dashed, the paper's one real per unit. The paper reports about one real per unit for "
        f"every cell; here the cells recall at most {min(c['max_reals_per_unit'] for c in cells):.2f} to "
        f"{max(c['max_reals_per_unit'] for c in cells):.2f} per unit.*",
        "",
        "## Per cell",
        "",
        f"| cell | dim/N where held-out R² falls below 0.9 (N = {' / '.join(map(str, hidden))}) | mean | most reals "
        "recalled per unit | paper |",
        "|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(f"| {c['cell']} | {c['by_hidden']} | {fmt(c['threshold_mean'])} | {fmt(c['max_reals_per_unit'])}"
                     " | ≈1 |")
    lines += ["", "`<x`: below 0.9 already at the smallest dim/N; `>x`: never below 0.9 up to the largest. The best "
              "linear N-subspace falls below 0.9 at dim/N = 1/0.9 ≈ 1.11.", "",
              "## Held-out R² at each size", "",
              "| cell | N | " + " | ".join(f"dim/N={r:g}" for r in ratios) + " |",
              "|---|---|" + "---|" * len(ratios)]
    for cell in dict.fromkeys(p.cell for p in pts):
        for n in hidden:
            own = {p.ratio: p for p in pts if (p.cell, p.hidden) == (cell, n)}
            if own:
                lines.append(f"| {cell} | {n} | " + " | ".join(fmt(own[r].r2, 3) if r in own else "–" for r in ratios)
                             + " |")
    lines += reproduce_lines("per-unit", "baselines/studies/per-unit", study)
    return "\n".join(lines)



def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per cell for the terminal: the threshold and the most reals per unit."""
    return [f"{c['cell']:>12}: R² < 0.9 at dim/N {c['by_hidden']} (N = {c['hidden']}); at most "
            f"{c['max_reals_per_unit']:.2f} reals per unit" for c in per_cell(thresholds(points(results)))]
