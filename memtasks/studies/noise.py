"""Structured data against noise: training and held-out curves, and how fitting time grows with the noise.

Maharaj et al. (2017, figs. 2–3) and Arpit et al. (2017, randX / randY) train the same network on real data and
on data whose inputs (X-noise) or labels (Y-noise) are partly replaced by random ones, and find that noise is fitted
too, but more slowly, and that held-out accuracy falls with the noise fraction. Here the structured data are
``Seq2Vec-RealCat-v0`` with ``source="teacher"`` (labels computed by a seeded random RNN from 20 steps of real
4-vectors, so they generalise); ``x_noise`` replaces that fraction of training inputs by fresh draws (their labels
stay the teacher's labels of the clean inputs, randX), ``y_noise`` that fraction of labels by uniform classes
(randY). The held-out set is always clean. Per cell, noise type, fraction and training-set size:

- the selected trial's training and held-out accuracy against steps (the curves);
- **fitting time**: steps to 90 % and 100 % of the achievable training ceiling (``steps_to_ceiling``), and its
  ratio to the clean data's;
- the held-out accuracy: its peak, and at the best fit of the training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memtasks.fitting.result import RunResult
from memtasks.studies import common
from memtasks.studies.common import PLATEAU, fill, fmt, mean_std, write_csv
from memtasks.studies.registry import Study, register

TASK = "Seq2Vec-RealCat-v0"
SEQ_LEN = 20
DEFAULT_CELLS = ("rnn", "lstm", "gru", "mlp")
SIZES = (250, 1000)
FRACTIONS = (0.25, 0.5, 1.0)
PARAMS = 2000
SEEDS = 2
MAX_STEPS = 3000
N_TEST = 500
CURVE_POINTS = 40


def variants() -> list[tuple[str, float]]:
    """(noise type, fraction): the clean data, then X-noise and Y-noise at each fraction."""
    return [("clean", 0.0)] + [(kind, f) for kind in ("x", "y") for f in FRACTIONS]


def configs(cells: Sequence[str] = DEFAULT_CELLS, scale: float = 1.0) -> list[Any]:
    """One sweep per data variant (its noise kwargs), each over cells × sizes × seeds."""
    from memtasks.sweeps.config import SweepConfig

    size = STUDY.size(cells, scale)
    out = []
    for kind, fraction in variants():
        noise = {} if kind == "clean" else {f"{kind}_noise": fraction}
        out.append(SweepConfig(
            name=f"{size.name}-{kind}{fraction:g}" if kind != "clean" else f"{size.name}-clean", tasks=[TASK],
            cells=list(cells), n_examples=list(SIZES), seq_len=[SEQ_LEN], params=[PARAMS],
            seeds=size.seeds(SEEDS), search={"lr": list(common.LRS)},
            task_kwargs={"source": "teacher", "n_test": N_TEST, **noise},
            protocol={**PLATEAU, "max_steps": size.steps(MAX_STEPS)}))
    return out


def keep_history(results: Sequence[RunResult]) -> list[RunResult]:
    """Keep each run's training and held-out accuracy curves, thinned."""
    return common.trim_histories(results, lambda e: {"step": e["step"], "train": {"accuracy": e["train"]["accuracy"]},
                                              "test": {"accuracy": (e["test"] or {}).get("accuracy")}},
                          CURVE_POINTS)


def _variant(r: RunResult) -> tuple[str, float]:
    kw = r.task["kwargs"]
    if kw.get("x_noise"):
        return "x", float(kw["x_noise"])
    if kw.get("y_noise"):
        return "y", float(kw["y_noise"])
    return "clean", 0.0


@dataclass(frozen=True)
class NoiseRow:
    """One (cell, noise type, fraction, size) over its seeds."""

    cell: str
    kind: str
    fraction: float
    size: int
    train: list[float]
    test: list[float]
    steps90: list[int | None]
    steps100: list[int | None]
    stops: list[str]
    curve: list[tuple[int, float, float | None]]
    peak_test: list[float] = field(default_factory=list)

    def steps(self, which: str) -> float | None:
        """Mean steps to 90 or 100 % of the achievable ceiling over the seeds, None unless every seed got there."""
        values = self.steps90 if which == "90%" else self.steps100
        return None if any(v is None for v in values) else mean_std(values)[0]  # type: ignore[arg-type]


def points(results: Sequence[RunResult]) -> list[NoiseRow]:
    """The runs grouped over seeds: cells, then clean / x / y, fraction and size."""
    def key(r: RunResult) -> tuple[Any, ...]:
        kind, fraction = _variant(r)
        return (r.cell["name"], ("clean", "x", "y").index(kind), fraction, r.task["n_examples"])

    out = []
    for (cell, kind, fraction, size), runs in common.group_over_seeds(results, key):
        out.append(NoiseRow(cell, ("clean", "x", "y")[kind], fraction, size,
                            [r.best["train"]["accuracy"] for r in runs],  # type: ignore[index]
                            [r.best["test"]["accuracy"] for r in runs],  # type: ignore[index]
                            [r.steps_to_ceiling.get("90%") for r in runs],
                            [r.steps_to_ceiling.get("100%") for r in runs], [r.stop_reason for r in runs],
                            [(e["step"], e["train"]["accuracy"], e["test"]["accuracy"]) for e in runs[0].history],
                            [max(e["test"]["accuracy"] for e in r.history) for r in runs]))
    return out


def _series(pts: Sequence[NoiseRow], cell: str, kind: str, size: int) -> list[NoiseRow]:
    """A cell's points of one noise type at one size, the clean data first (fraction 0)."""
    return sorted((p for p in pts if p.cell == cell and p.size == size and p.kind in ("clean", kind)),
                  key=lambda p: p.fraction)


def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """The table, the curves and fitting-time figures (with data) and the README."""
    pts = common.require(points(results), "measured noise runs")
    written = [write_csv(out_dir / "noise.csv",
                         ["cell", "noise", "fraction", "n_examples", "seeds", "train_accuracy", "test_accuracy",
                          "test_accuracy_sd", "peak_test_accuracy", "steps_to_90pc", "steps_to_100pc", "stops"],
                         [[p.cell, p.kind, p.fraction, p.size, len(p.train), mean_std(p.train)[0],
                           *mean_std(p.test), mean_std(p.peak_test)[0], p.steps("90%"), p.steps("100%"),
                           " ".join(p.stops)] for p in pts])]
    return written + _curves(pts, out_dir) + _fitting_time(pts, out_dir) + [_readme(out_dir, pts, study)]


def _curves(pts: Sequence[NoiseRow], out_dir: Path) -> list[Path]:
    cells = common.cells_of(pts)
    size = max(p.size for p in pts)
    fractions = sorted({p.fraction for p in pts})
    colors = common.pyplot().get_cmap("plasma")
    fig, rows = common.panel_rows(cells, 2, 11, 2.8, sharey=True)
    data: dict[str, Any] = {}
    for cell, row in rows:
        for ax, kind in zip(row, ("x", "y"), strict=True):
            for p in _series(pts, cell, kind, size):
                color = colors(0.85 * fractions.index(p.fraction) / max(len(fractions) - 1, 1))
                steps = [s for s, _, _ in p.curve]
                ax.plot(steps, [a for _, a, _ in p.curve], color=color, label=f"{p.fraction:g}")
                ax.plot(steps, [t for _, _, t in p.curve], color=color, ls="--", lw=1)
                data[f"{cell}/{kind}{p.fraction:g}/n{size}"] = p.curve
            ax.set_title(f"{cell}, {'X' if kind == 'x' else 'Y'}-noise, {size} examples", fontsize=9)
            ax.set_ylabel("accuracy", fontsize=8)
        row[0].legend(title="noise fraction", fontsize=7, title_fontsize=7)
    for ax in rows[-1][1]:
        ax.set_xlabel("optimizer step (seed 0; solid: training set, dashed: clean held-out set)", fontsize=8)
    return common.save_figure(fig, data, out_dir, "curves")


def _fitting_time(pts: Sequence[NoiseRow], out_dir: Path) -> list[Path]:
    cells = common.cells_of(pts)
    fig, rows = common.panel_rows(sorted({p.size for p in pts}), 2, 11, 3.8)
    data: dict[str, Any] = {}
    for size, row in rows:
        for i, cell in enumerate(cells):
            for kind, ls in (("x", "-"), ("y", "--")):
                own = _series(pts, cell, kind, size)
                fr = [p.fraction for p in own]
                steps = [p.steps("90%") for p in own]
                test = [mean_std(p.test)[0] for p in own]
                label = f"{cell}, {kind.upper()}-noise"
                row[0].plot(fr, steps, marker="o", ms=3, ls=ls, color=common.cell_color(i), label=label)
                row[1].plot(fr, test, marker="o", ms=3, ls=ls, color=common.cell_color(i), label=label)
                data[f"{cell}/{kind}/n{size}"] = {"fraction": fr, "steps_to_90pc": steps, "test_accuracy": test}
        reached = any(p.steps("90%") for p in pts if p.size == size)
        row[0].set(yscale="log" if reached else "linear", xlabel="noise fraction",
                   ylabel="steps to 90 % of the ceiling", title=f"Fitting time, {size} examples (missing: never)")
        row[1].set(xlabel="noise fraction", ylabel="held-out accuracy at the best fit",
                   title=f"Held-out accuracy, {size} examples")
        row[0].legend(fontsize=6, ncol=2)
    return common.save_figure(fig, data, out_dir, "fitting_time")


def _readme(out_dir: Path, pts: Sequence[NoiseRow], study: dict[str, Any]) -> Path:
    sizes = sorted({p.size for p in pts})
    fractions = [f for f in sorted({p.fraction for p in pts}) if f > 0]
    noised = [f"X {f:g}" for f in fractions] + [f"Y {f:g}" for f in fractions]
    stops = [s for p in pts for s in p.stops]
    steps_tables, accuracy_tables = [], []
    for size in sizes:
        steps_rows, accuracy_rows = [], []
        for cell in common.cells_of(pts):
            at = {(p.kind, p.fraction): p for p in pts if p.cell == cell and p.size == size}
            clean = at.get(("clean", 0.0))
            base = clean.steps("90%") if clean else None
            cols = [fmt(base, 0)]
            ratios = []
            for kind in ("x", "y"):
                for f in fractions:
                    p = at.get((kind, f))
                    cols.append(fmt(p.steps("90%") if p else None, 0))
                full = at.get((kind, max(fractions)))
                value = full.steps("90%") if full else None
                ratios.append(fmt(value / base if value is not None and base else None) + "×"
                              if value is not None and base else "–")
            steps_rows.append(f"| {cell} | " + " | ".join(cols) + " | " + " | ".join(ratios) + " |")
            accuracy = [f"{fmt(mean_std(at[k].peak_test)[0])} → {fmt(mean_std(at[k].test)[0])}" if k in at else "–"
                        for k in [("clean", 0.0)] + [(kind, f) for kind in ("x", "y") for f in fractions]]
            accuracy_rows.append(f"| {cell} | " + " | ".join(accuracy) + " |")
        steps_tables.append(fill("noise-table", size=size, columns=" | ".join(noised + ["X 1 / clean", "Y 1 / clean"]),
                                 rule="---|" * (len(noised) + 2), rows="\n".join(steps_rows)))
        accuracy_tables.append(fill("noise-table", size=size, columns=" | ".join(noised), rule="---|" * len(noised),
                                    rows="\n".join(accuracy_rows)))
    return STUDY.write_readme(
        out_dir, study, params=PARAMS, task=TASK, seq_len=SEQ_LEN, n_test=N_TEST, lrs=common.listed(common.LRS),
        steps=f"{common.study_steps(study):,}", budget_stops=stops.count("budget"), runs=len(stops),
        steps_tables=common.paragraphs(*steps_tables), accuracy_tables=common.paragraphs(*accuracy_tables))


def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per cell and size: steps to 90 % on clean data and at full X- and Y-noise."""
    pts = points(results)
    out = []
    for cell in common.cells_of(pts):
        for size in sorted({p.size for p in pts}):
            at = {(p.kind, p.fraction): p for p in pts if p.cell == cell and p.size == size}
            parts = [f"{name} {fmt(at[k].steps('90%'), 0) if k in at else '–'}"
                     for name, k in (("clean", ("clean", 0.0)), ("X 1", ("x", 1.0)), ("Y 1", ("y", 1.0)))]
            out.append(f"{cell:>12} n={size}: steps to 90%: " + ", ".join(parts))
    return out


STUDY = register(Study("noise", configs, write_outputs, summary_lines, default_cells=DEFAULT_CELLS,
                       keep_history=keep_history))
