"""Recurrent cells against the causal MLP: who fits random labels faster, and further, at equal parameters.

Maharaj, Krueger and Cooijmans (2017) report that a feed-forward network fits random labels faster than
recurrent ones. This study puts every cell on ``Seq2Vec-CatCat-v0`` with random labels (10 classes, sequences
of 10 symbols, so only memorization fits them) at equal **total** parameters, on training sets sized in bits of
label information per parameter, and measures per point:

- **how far**: the bits stored per parameter at the best evaluation (the fitting ceiling, as everywhere);
- **how fast**: the optimizer steps the selected trial took to reach 50 % and 90 % of the achievable ceiling
  (``steps_to_ceiling``; missing when it never got there within the budget).

Per recurrent cell and size it reports the ratio of its steps to the MLP's and of its bits to the MLP's, and the
sizes where the order **flips** (where a recurrent cell stores more than the MLP or gets there first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memtasks.fitting.result import RunResult
from memtasks.studies import common
from memtasks.studies.common import PLATEAU, fill, fmt, mean_std, write_csv
from memtasks.studies.registry import Study, register

TASK = "Seq2Vec-CatCat-v0"
SEQ_LEN = 10
OUT_CLASSES = 10
BUDGETS = (500, 2000)
BITS = (0.5, 1.0, 2.0, 4.0)
SEEDS = 2
MAX_STEPS = 5000
N_TEST = 100
REFERENCE = "mlp"
#: Bits per parameter within this fraction of each other count as a tie (sets fitted whole differ by a few
#: parameters of budget, not by bits).
TIE = 0.01
#: The learning curve kept per run (training accuracy at up to this many evaluations).
CURVE_POINTS = 40


#: The budget check: these cells (those of the study) again at the largest budget and size, seed 0, with
#: ``CHECK_FACTOR`` times the steps.
CHECK_CELLS = ("rnn", "gru", "mlp")
CHECK_FACTOR = 4


def configs(cells: Sequence[str] = common.DEFAULT_CELLS, scale: float = 1.0) -> list[Any]:
    """The main sweep (cells × budgets × sizes × seeds, each point the best of the learning rates) and the budget
    check (a few cells at the largest budget and size with four times the steps)."""
    from memtasks.sweeps.config import SweepConfig

    size = STUDY.size(cells, scale)
    shared = dict(tasks=[TASK], seq_len=[SEQ_LEN], embed_dim=16, search={"lr": list(common.LRS)},
                  task_kwargs={"out_classes": OUT_CLASSES, "n_test": N_TEST})
    out = [SweepConfig(name=size.name, cells=list(cells), bits_per_param=list(BITS), params=list(BUDGETS),
                       seeds=size.seeds(SEEDS), protocol={**PLATEAU, "max_steps": size.steps(MAX_STEPS)},
                       **shared)]  # type: ignore[arg-type]
    check = [c for c in cells if c in CHECK_CELLS]
    if check:
        out.append(SweepConfig(name=f"{size.name}-check", cells=check, bits_per_param=[max(BITS)],
                               params=[max(BUDGETS)], seeds=[0],
                               protocol={**PLATEAU, "max_steps": size.steps(CHECK_FACTOR * MAX_STEPS)},
                               **shared))  # type: ignore[arg-type]
    return out


def keep_history(results: Sequence[RunResult]) -> list[RunResult]:
    """Keep each run's training-accuracy curve (the figure's right panel), thinned."""
    return common.trim_histories(results, lambda e: {"step": e["step"], "train": {"accuracy": e["train"]["accuracy"]}},
                          CURVE_POINTS)


@dataclass(frozen=True)
class FitRow:
    """One (cell, parameter budget, size): its seeds' bits per parameter and steps to 50 / 90 % of the ceiling."""

    cell: str
    budget: int
    size: float
    max_steps: int
    params: float
    n_examples: int
    bits_per_param: list[float]
    steps50: list[int | None]
    steps90: list[int | None]
    stops: list[str]
    curve: list[tuple[int, float]]
    hidden: int = 0

    @property
    def bpp(self) -> float:
        return mean_std(self.bits_per_param)[0]  # type: ignore[return-value]

    def steps(self, which: str) -> float | None:
        """Mean steps to 50 or 90 % of the ceiling over the seeds, None unless every seed got there."""
        values = self.steps50 if which == "50%" else self.steps90
        return None if any(v is None for v in values) else mean_std(values)[0]  # type: ignore[arg-type]


def points(results: Sequence[RunResult]) -> list[FitRow]:
    """The runs grouped over seeds: cells in registry order, then budget and size."""
    def key(r: RunResult) -> tuple[Any, ...]:
        p = common.sweep_point(r)
        return (r.cell["name"], p["params"], p["bits_per_param"], r.protocol["max_steps"])

    out = []
    for (cell, budget, size, steps), runs in common.group_over_seeds(results, key):
        out.append(FitRow(cell, budget, size, steps,
                          mean_std(r.cell["params_total"] for r in runs)[0],  # type: ignore[arg-type]
                          runs[0].task["n_examples"], [r.best["bits_per_param"] for r in runs],  # type: ignore[index]
                          [r.steps_to_ceiling.get("50%") for r in runs], [r.steps_to_ceiling.get("90%") for r in runs],
                          [r.stop_reason for r in runs],
                          [(e["step"], e["train"]["accuracy"]) for e in runs[0].history],
                          runs[0].cell["hidden_size"]))
    return out


def comparisons(pts: Sequence[FitRow]) -> list[dict[str, Any]]:
    """Per recurrent cell, budget and size: its bits and steps against the MLP's at the same budget and size."""
    ref = {(p.budget, p.size): p for p in pts if p.cell == REFERENCE}
    rows = []
    for p in pts:
        m = ref.get((p.budget, p.size))
        if p.cell == REFERENCE or m is None:
            continue
        s_rnn, s_mlp = p.steps("90%"), m.steps("90%")
        rows.append({"cell": p.cell, "budget": p.budget, "size": p.size, "bits_ratio": p.bpp / m.bpp if m.bpp else None,
                     "steps90": s_rnn, "mlp_steps90": s_mlp,
                     "steps_ratio": s_rnn / s_mlp if s_rnn is not None and s_mlp else None,
                     "more_bits": p.bpp > (1 + TIE) * m.bpp,
                     "faster": s_rnn is not None and (s_mlp is None or s_rnn < s_mlp)})
    return rows


def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """The tables, the figure (with its data) and the README."""
    every = common.require(points(results), "measured rnn-vs-mlp runs")
    pts, check = split(every)
    rows = comparisons(pts)
    written = [
        write_csv(out_dir / "points.csv", ["cell", "budget", "bits_per_param_offered", "max_steps", "params_total",
                                           "n_examples", "seeds", "bits_per_param_mean", "bits_per_param_sd",
                                           "steps_to_50pc", "steps_to_90pc", "stops"],
                  [[p.cell, p.budget, p.size, p.max_steps, p.params, p.n_examples, len(p.bits_per_param),
                    *mean_std(p.bits_per_param), p.steps("50%"), p.steps("90%"), " ".join(p.stops)]
                   for p in every]),
        write_csv(out_dir / "against_mlp.csv", ["cell", "budget", "bits_per_param_offered", "bits_ratio",
                                                "steps_to_90pc", "mlp_steps_to_90pc", "steps_ratio"],
                  [[r["cell"], r["budget"], r["size"], r["bits_ratio"], r["steps90"], r["mlp_steps90"],
                    r["steps_ratio"]] for r in rows]),
    ]
    return written + _figure(pts, out_dir) + [_readme(out_dir, pts, rows, check, study)]


def split(pts: Sequence[FitRow]) -> tuple[list[FitRow], list[FitRow]]:
    """The main points (the smallest step budget) and the budget check's (with more steps)."""
    main = min(p.max_steps for p in pts)
    return [p for p in pts if p.max_steps == main], [p for p in pts if p.max_steps > main]


def _figure(pts: Sequence[FitRow], out_dir: Path) -> list[Path]:
    cells = common.cells_of(pts)
    fig, rows = common.panel_rows(sorted({p.budget for p in pts}), 3, 15, 3.9)
    data: dict[str, Any] = {}
    for budget, row in rows:
        curve_size = sorted({p.size for p in pts if p.budget == budget})[len({p.size for p in pts}) // 2]
        for i, cell in enumerate(cells):
            own = sorted((p for p in pts if p.cell == cell and p.budget == budget), key=lambda p: p.size)
            style = {"color": common.cell_color(i), "lw": 2.5 if cell == REFERENCE else 1.2,
                     "ls": "--" if cell == REFERENCE else "-"}
            sizes = [p.size for p in own]
            row[0].plot(sizes, [p.bpp for p in own], marker="o", ms=3, label=cell, **style)
            row[1].plot(sizes, [p.steps("90%") for p in own], marker="o", ms=3, label=cell, **style)
            at = next((p for p in own if p.size == curve_size), None)
            if at is not None and at.curve:
                row[2].plot([s for s, _ in at.curve], [a for _, a in at.curve], label=cell, **style)
            data[f"{cell}/{budget}"] = {"offered": sizes, "bits_per_param": [p.bpp for p in own],
                                        "steps_to_90pc": [p.steps("90%") for p in own],
                                        "curve": at.curve if at is not None else []}
        row[0].set(xscale="log", xlabel="bits per parameter offered", ylabel="bits per parameter stored",
                   title=f"How far: {budget} parameters")
        reached = any(p.steps("90%") for p in pts if p.budget == budget)
        row[1].set(xscale="log", yscale="log" if reached else "linear", xlabel="bits per parameter offered",
                   ylabel="steps to 90 % of the ceiling", title=f"How fast: {budget} parameters (missing: never)")
        row[2].set(xlabel="optimizer step", ylabel="training accuracy (seed 0)",
                   title=f"Learning curves: {budget} parameters, {curve_size:g} bits/param offered")
        for ax in row[:2]:
            ax.set_xticks(sorted({p.size for p in pts}), [f"{s:g}" for s in sorted({p.size for p in pts})])
            ax.minorticks_off()
        row[0].legend(fontsize=7, ncol=2)
    return common.save_figure(fig, data, out_dir, "rnn_vs_mlp")


def _readme(out_dir: Path, pts: Sequence[FitRow], rows: Sequence[dict[str, Any]], check: Sequence[FitRow],
            study: dict[str, Any]) -> Path:
    budgets = sorted({p.budget for p in pts})
    sizes = sorted({p.size for p in pts})
    stops = [s for p in pts for s in p.stops]
    by = {(r["cell"], r["budget"], r["size"]): r for r in rows}
    ratio_rows = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        entries = [by.get((cell, b, s)) for b in budgets for s in sizes]
        ratio_rows.append(f"| {cell} | " + " | ".join("–" if r is None else f"{fmt(r['bits_ratio'])} / "
                                                      f"{fmt(r['steps_ratio'])}" for r in entries) + " |")
    units = {c: {p.budget: p.hidden for p in pts if p.cell == c} for c in common.cells_of(pts)}
    return STUDY.write_readme(
        out_dir, study, task=TASK, seq_len=SEQ_LEN, classes=OUT_CLASSES, budgets=" and ".join(map(str, budgets)),
        sizes=common.listed(sizes), lrs=common.listed(common.LRS), steps=f"{common.study_steps(study):,}",
        budget_stops=stops.count("budget"), runs=len(stops), reference=REFERENCE,
        ratio_columns=" | ".join(f"{b} p, {s:g} b/p" for b in budgets for s in sizes),
        ratio_rule="---|" * (len(budgets) * len(sizes)), ratio_rows="\n".join(ratio_rows),
        reference_rows="\n".join(f"| {p.budget} | {p.size:g} | {fmt(p.bpp)} | {fmt(p.steps('50%'), 0)} | "
                                 f"{fmt(p.steps('90%'), 0)} | {' '.join(p.stops)} |"
                                 for p in pts if p.cell == REFERENCE),
        flips=_flips(rows), unit_columns=" | ".join(f"{b} parameters" for b in budgets),
        unit_rule="---|" * len(budgets),
        unit_rows="\n".join(f"| {c} | " + " | ".join(str(u.get(b, "–")) for b in budgets) + " |"
                            for c, u in units.items()),
        check=_check_text(pts, check))


def _flips(rows: Sequence[dict[str, Any]]) -> str:
    """Where a recurrent cell beats the MLP, and where the MLP beats it ("" without comparisons)."""
    if not rows:
        return ""

    def where(chosen: Sequence[dict[str, Any]]) -> str:
        return ", ".join(f"{r['cell']} ({r['budget']} p, {r['size']:g} b/p)" for r in chosen) or "nowhere"

    return fill("rnn-vs-mlp-flips", tie=f"{TIE:.0%}", more=sum(r["more_bits"] for r in rows), points=len(rows),
                faster=sum(r["faster"] for r in rows), reference=REFERENCE,
                reference_more=where([r for r in rows if r["bits_ratio"] is not None and r["bits_ratio"] < 1 - TIE]),
                reference_faster=where([r for r in rows if r["steps_ratio"] is not None and r["steps_ratio"] > 1]))


def _check_text(pts: Sequence[FitRow], check: Sequence[FitRow]) -> str:
    """The budget check's table, and whether the cells keep their order with more steps."""
    if not check:
        return fill("no-check")
    at = {(p.cell, p.budget, p.size): p for p in pts}
    rows = []
    for p in check:
        q = at.get((p.cell, p.budget, p.size))
        before = q.bits_per_param[0] if q else None
        rows.append(f"| {p.cell} | {fmt(before)} | {fmt(p.bpp)} | {fmt(p.bpp / before if before else None)}× | "
                    f"{fmt(p.steps('90%'), 0)} | {p.stops[0]} |")
    pairs = [(p.cell, at[(p.cell, p.budget, p.size)].bits_per_param[0], p.bpp) for p in check
             if (p.cell, p.budget, p.size) in at]
    same = ([c for c, _, _ in sorted(pairs, key=lambda x: -x[1])]
            == [c for c, _, _ in sorted(pairs, key=lambda x: -x[2])])
    return fill("rnn-vs-mlp-check", cells=", ".join(p.cell for p in check), budget=check[0].budget,
                size=f"{check[0].size:g}", long_steps=f"{check[0].max_steps:,}", steps=f"{pts[0].max_steps:,}",
                rows="\n".join(rows), order=fill("rnn-vs-mlp-same-order" if same else "rnn-vs-mlp-other-order"))


def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per recurrent cell: its median bits and steps ratios to the MLP."""
    import statistics

    rows = comparisons(split(points(results))[0])
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        own = [r for r in rows if r["cell"] == cell]
        bits = [r["bits_ratio"] for r in own if r["bits_ratio"] is not None]
        steps = [r["steps_ratio"] for r in own if r["steps_ratio"] is not None]
        out.append(f"{cell:>12}: bits/MLP median {statistics.median(bits) if bits else float('nan'):.2f}, "
                   f"steps to 90%/MLP median {statistics.median(steps) if steps else float('nan'):.2f}")
    return out


STUDY = register(Study("rnn-vs-mlp", configs, write_outputs, summary_lines, keep_history=keep_history))
