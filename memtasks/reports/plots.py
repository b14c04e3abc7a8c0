"""The report's figures: ``fit_vs_size.png``, ``bits_vs_params.png`` and ``frontier.png``, each with the data it plots.

matplotlib is imported inside the functions that draw: :mod:`memtasks.reports` re-exports :func:`write_plots`,
and loading results, exporting them or ``memtasks report --no-plots`` do not need it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memtasks.errors import MemtasksError
from memtasks.reports.aggregate import FrontierRow, Group, Ranks, json_ready
from memtasks.reports.tables import pct

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Reference slope of the bits-vs-parameters plot.
BITS_PER_PARAM_REF = 5.0
DPI = 110


def write_plots(groups: list[Group], frontier_rows: list[FrontierRow], out_dir: str | Path) -> list[Path]:
    """Write ``fit_vs_size.png``, ``bits_vs_params.png`` and ``frontier.png`` into ``out_dir``, each with a
    ``.json`` beside it holding exactly the data plotted. Returns the paths written."""
    if not groups:
        raise MemtasksError("no results to plot")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    style = _CellStyle(groups)
    written: list[Path] = []
    for name, draw in (("fit_vs_size", _fit_vs_size), ("bits_vs_params", _bits_vs_params),
                       ("frontier", _frontier_plot)):
        fig, data = draw(groups, frontier_rows, style)
        png = out_dir / f"{name}.png"
        # No Software/date metadata, fixed dpi and size: the same results give the same bytes.
        fig.savefig(png, dpi=DPI, metadata={"Software": None})
        data = json_ready({"figure": name, **data})
        js = png.with_suffix(".json")
        js.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
        written += [png, js]
    return written


class _CellStyle:
    """One colour and marker per cell, the same in every figure."""

    MARKERS = "osD^vPX*<>"

    def __init__(self, groups: list[Group]) -> None:
        from matplotlib import colormaps  # lazy: see the module docstring

        names = list(dict.fromkeys(g.key.cell for g in groups))  # groups are in cell-registry order
        cmap = colormaps["tab10"]
        self.colour = {c: cmap(i % 10) for i, c in enumerate(names)}
        self.marker = {c: self.MARKERS[i % len(self.MARKERS)] for i, c in enumerate(names)}
        self.cells = names


def _selection(groups: list[Group]) -> dict[str, tuple[Any, ...]]:
    """Per task, the first (smallest) seq_len, size and search, so one figure shows one slice of the grid."""
    ranks = Ranks()
    sel: dict[str, tuple[Any, ...]] = {}
    for task_id, seq_len, budget, hidden, search in sorted(
            {(g.key.task_id, g.key.seq_len, g.key.params_budget, g.key.hidden, g.key.search) for g in groups},
            key=lambda s: (ranks.task(s[0]), s[1], ranks.size(s[2], s[3]), s[4])):
        sel.setdefault(task_id, (seq_len, budget, hidden, search))
    return sel


def _slice_dict(s: tuple[Any, ...]) -> dict[str, Any]:
    return {"seq_len": s[0], "params_budget": s[1], "hidden": s[2], "search": s[3]}


def _slice_text(s: tuple[Any, ...]) -> str:
    size = f"params {s[1]}" if s[1] is not None else f"hidden {s[2]}"
    return f"seq_len {s[0]} · {size} · {s[3]}"


def _selection_text(groups: list[Group], sel: dict[str, tuple[Any, ...]]) -> str:
    """Which slice of the grid a figure shows, and whether there were others."""
    several = len({(g.key.seq_len, g.key.params_budget, g.key.hidden, g.key.search) for g in groups}) > 1
    if len(set(sel.values())) == 1:
        return _slice_text(next(iter(sel.values()))) + (" (the first of several)" if several else "")
    return "the first seq_len, size and search of each setting"


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no global backend, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: see the module docstring
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _fit_vs_size(groups: list[Group], frontier_rows: list[FrontierRow],
                 style: _CellStyle) -> tuple[Figure, dict[str, Any]]:
    from matplotlib.lines import Line2D  # lazy: see the module docstring
    from matplotlib.ticker import NullFormatter

    sel = _selection(groups)
    tasks = list(sel)
    ncols = min(4, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = _new_figure(3.4 * ncols + 0.4, 2.8 * nrows + 1.3)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    same = len(set(sel.values())) == 1
    panels = []
    for ax, task_id in zip(axes, tasks, strict=False):  # the grid may have spare panels
        lines = []
        for cell in style.cells:
            gs = [g for g in groups if g.key.task_id == task_id and g.key.cell == cell
                  and (g.key.seq_len, g.key.params_budget, g.key.hidden, g.key.search) == sel[task_id]
                  and g.mean["fraction"] is not None]
            if not gs:
                continue
            x = [g.key.n_examples for g in gs]
            y = [g.mean["fraction"] for g in gs]
            e = [g.std["fraction"] for g in gs]
            ax.errorbar(x, y, yerr=e, color=style.colour[cell], marker=style.marker[cell], ms=4, capsize=2,
                        lw=1.2, label=cell)
            lines.append({"cell": cell, "n_examples": x, "mean": y, "std": e})
        ax.axhline(threshold, color="0.6", lw=0.8, ls="--")
        ax.set_xscale("log")
        sizes = sorted({n for line in lines for n in line["n_examples"]})
        if 0 < len(sizes) <= 6:  # label the sizes tried rather than powers of ten
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(task_id if same else f"{task_id}\n{_slice_text(sel[task_id])}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, lw=0.5)
        panels.append({"task_id": task_id, **_slice_dict(sel[task_id]), "lines": lines})
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("training examples", fontsize=8)
    for ax in axes[::ncols]:
        ax.set_ylabel("fraction of ceiling", fontsize=8)
    title = "Training-set fit vs size (mean ± std over seeds)\n" + _selection_text(groups, sel)
    fig.suptitle(title, fontsize=10)
    handles = [Line2D([], [], color=style.colour[c], marker=style.marker[c], label=c) for c in style.cells]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    return fig, {"title": title, "threshold": threshold, "y": "mean fraction_of_ceiling (train)",
                 "x": "n_examples", "panels": panels}


def _bits_vs_params(groups: list[Group], frontier_rows: list[FrontierRow],
                    style: _CellStyle) -> tuple[Figure, dict[str, Any]]:
    # A cell's capacity is the most it stores over the dataset sizes tried (Collins et al. optimise the number
    # of examples): too small a set caps the bits at the data's information, too large a one may not fit at all.
    most: dict[tuple[Any, ...], Group] = {}
    for g in sorted(groups, key=lambda g: g.key.sort_key()):
        if g.mean["bits"] is not None and g.mean["params_total"] is not None:
            best = most.get(g.key.series)
            if best is None or g.mean["bits"] > best.mean["bits"]:  # type: ignore[operator]
                most[g.key.series] = g
    points, omitted = [], []
    for g in most.values():
        entry = {"task_id": g.key.task_id, "cell": g.key.cell, "size": g.key.size, "seq_len": g.key.seq_len,
                 "search": g.key.search, "n_examples": g.key.n_examples, "params_total": g.mean["params_total"],
                 "bits": g.mean["bits"], "bits_std": g.std["bits"], "teacher": "teacher" in g.sources}
        (points if g.mean["bits"] > 0 and g.mean["params_total"] > 0 else omitted).append(entry)
    fig = _new_figure(6.4, 4.8)
    ax = fig.subplots()
    for cell in style.cells:
        for teacher in (False, True):
            ps = [p for p in points if p["cell"] == cell and p["teacher"] == teacher]
            if ps:
                c = style.colour[cell]
                ax.scatter([p["params_total"] for p in ps], [p["bits"] for p in ps], marker=style.marker[cell],
                           s=28, color=c if not teacher else "none", edgecolors=c,
                           label=cell if not teacher else f"{cell} (teacher)")
    xs = [g.mean["params_total"] for g in groups if g.mean["params_total"]]
    lo, hi = (min(xs) / 1.5, max(xs) * 1.5) if xs else (10.0, 1e5)
    ref = [lo, hi]
    ax.plot(ref, [BITS_PER_PARAM_REF * x for x in ref], color="0.4", ls="--", lw=1,
            label="≈5 bits/parameter (Collins et al. 2017)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("parameters (total)")
    ax.set_ylabel("bits stored (train, mean over seeds)")
    ax.grid(alpha=0.3, lw=0.5, which="both")
    ax.legend(fontsize=7, loc="upper left")
    n_teacher = sum(p["teacher"] for p in points)
    title = ("Bits stored vs parameters (each task × cell × size at its best training-set size)\n"
             'bits are memorized information only for source="random" runs')
    if n_teacher:
        title += f"; {n_teacher} teacher-target point(s) drawn hollow"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, {"title": title, "x": "params_total", "y": "bits", "points": points,
                 "omitted_nonpositive": omitted,
                 "reference": {"bits_per_param": BITS_PER_PARAM_REF, "x": ref,
                               "y": [BITS_PER_PARAM_REF * x for x in ref]}}


def _frontier_plot(groups: list[Group], frontier_rows: list[FrontierRow],
                   style: _CellStyle) -> tuple[Figure, dict[str, Any]]:
    sel = _selection(groups)
    tasks = list(sel)
    rows = [r for r in frontier_rows if (r.seq_len, r.params_budget, r.hidden, r.search) == sel.get(r.task_id)]
    threshold = frontier_rows[0].threshold if frontier_rows else 0.99
    fig = _new_figure(min(16.0, max(6.4, 1.0 + len(tasks) * (0.1 * len(style.cells) + 0.35))), 4.8)
    ax = fig.subplots()
    width = 0.8 / max(1, len(style.cells))
    fitted = [r.largest_fitted for r in rows if r.largest_fitted]
    floor = min((n for r in rows for n in r.sizes_tried), default=1) / 2  # the log axis: below the smallest size
    bars = []
    for j, cell in enumerate(style.cells):
        xs, hs, miss = [], [], []
        for i, task_id in enumerate(tasks):
            r = next((r for r in rows if r.task_id == task_id and r.cell == cell), None)
            if r is None:
                continue
            x = i + (j - (len(style.cells) - 1) / 2) * width
            (xs if r.largest_fitted else miss).append(x)
            if r.largest_fitted:
                hs.append(r.largest_fitted)
            bars.append({"task_id": task_id, "cell": cell, **_slice_dict(sel[task_id]),
                         "largest_fitted": r.largest_fitted, "sizes_tried": r.sizes_tried})
        ax.bar(xs, [h - floor for h in hs], width=width, bottom=floor, color=style.colour[cell], label=cell)
        if miss:
            ax.scatter(miss, [floor * 1.3] * len(miss), marker="x", color=style.colour[cell], s=30, zorder=3)
    ax.set_yscale("log")
    ax.set_ylim(floor, max(fitted, default=10) * 3)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"largest n fitted ≥ {pct(threshold)}")
    ax.grid(alpha=0.3, lw=0.5, axis="y")
    ax.legend(fontsize=7, loc="upper left", ncol=min(4, max(1, len(style.cells))))
    title = (f"Capacity frontier: largest training set fitted to ≥ {pct(threshold)} of the ceiling (× = none)\n"
             + _selection_text(groups, sel))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, {"title": title, "threshold": threshold, "tasks": tasks, "cells": style.cells,
                 "slices": {t: _slice_dict(s) for t, s in sel.items()}, "bars": bars}
