"""The ``connectivity`` study: how far back each cell's outputs look (Madsen 2019, Distill).

Every cell is trained on ``NextStep-CatCat-v0`` (20 steps) twice: on structured targets (``source="teacher"``, a
seeded random RNN's outputs, which depend on recent inputs more than on old ones) and on random targets (only
memorization fits them, and each one may need the whole prefix). The selected weights are kept, and for each
model :func:`memtasks.studies.connectivity.connectivity` gives ‖∂ logit_s / ∂ e_t‖ for every scored output step s
and input step t. The figure shows one example's heatmap per cell and the connectivity averaged over examples as a
function of the distance s − t, each curve normalised by its value at distance 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memtasks.fitting.result import RunResult
from memtasks.studies import common
from memtasks.studies.common import PLATEAU, fill, fmt, write_csv
from memtasks.studies.registry import Study, register

TASK = "NextStep-CatCat-v0"
SEQ_LEN = 20
SOURCES = ("teacher", "random")
N_EXAMPLES = {"teacher": 1000, "random": 100}
PARAMS = 2000
SEEDS = 1
MAX_STEPS = 4000
N_TEST = 200
#: Examples whose connectivity is averaged (the held-out set's first ones; for random targets, the training set's).
N_AVERAGED = 100


def configs(cells: Sequence[str] = common.DEFAULT_CELLS, scale: float = 1.0) -> list[Any]:
    """One sweep per target source, every point's selected weights kept."""
    from memtasks.sweeps.config import SweepConfig

    size = STUDY.size(cells, scale)
    return [SweepConfig(name=f"{size.name}-{source}", tasks=[TASK], cells=list(cells),
                        n_examples=[N_EXAMPLES[source]], seq_len=[SEQ_LEN], params=[PARAMS], seeds=size.seeds(SEEDS),
                        search={"lr": list(common.LRS)}, task_kwargs={"source": source, "n_test": N_TEST},
                        protocol={**PLATEAU, "max_steps": size.steps(MAX_STEPS)}, save_models=True)
            for source in SOURCES]


def collect(configs: Sequence[Any], root: Path, target: Path) -> None:
    """Copy every point's selected weights from the sweep folders into ``target/models`` (they are small: the
    committed outputs are computed from them, so ``--from`` needs them)."""
    import shutil

    from memtasks.sweeps.folder import SweepFolder

    models = target / "models"
    models.mkdir(parents=True, exist_ok=True)
    for config in configs:
        folder = SweepFolder(root, config)
        for point in config.points():
            shutil.copyfile(folder.weights_path(point), models / f"{point.stem}.safetensors")


@dataclass(frozen=True)
class Model:
    """One trained model's connectivity: the example heatmap and the curve by distance."""

    cell: str
    source: str
    train_accuracy: float
    test_accuracy: float
    chance: float
    stop: str
    heatmap: list[list[float]]
    curve: dict[int, float]

    @property
    def normalised(self) -> dict[int, float]:
        """The curve divided by its value at distance 0."""
        return {d: v / self.curve[0] for d, v in self.curve.items()} if self.curve.get(0) else self.curve

    @property
    def mean_distance(self) -> float:
        """The connectivity-weighted mean distance Σ d·c(d) / Σ c(d)."""
        total = sum(self.curve.values())
        return sum(d * v for d, v in self.curve.items()) / total if total else float("nan")

    @property
    def reach(self) -> int | None:
        """The first distance at which the curve falls below ``REACH`` of its value at distance 0 (None: never)."""
        norm = self.normalised
        return next((d for d, v in sorted(norm.items()) if v < REACH), None)


#: The fraction of the distance-0 connectivity that defines a cell's reach.
REACH = 0.1


def _ordered(results: Sequence[RunResult]) -> list[RunResult]:
    """Teacher runs first, then random; cells in registry order."""
    return sorted(results, key=lambda r: (SOURCES.index(r.task["kwargs"]["source"]), *common.cell_rank(r.cell["name"])))


def _measure(model: Any, task: Any, data: Any, result: dict[str, Any], label: str, source: str,
             example: int = 0) -> Model:
    """One model's connectivity: ``example``'s heatmap and the curve by distance over the first ``N_AVERAGED``
    examples of ``data``, with the fit its ``result`` reports."""
    from memtasks.studies.connectivity import by_distance, connectivity

    index = sorted({example, *range(min(N_AVERAGED, len(data)))})
    conn = connectivity(model, data, np.array(index))
    best = result.get("best") or {}
    metric = "accuracy" if task.layout.y_type == "cat" else "r2"
    return Model(cell=label, source=source, train_accuracy=(best.get("train") or {}).get(metric, float("nan")),
                 test_accuracy=(best.get("test") or {}).get(metric, float("nan")),
                 chance=float(result["task"].get("chance") or float("nan")), stop=result.get("stop_reason", "?"),
                 heatmap=conn[index.index(example)].tolist(),
                 curve=by_distance(conn, np.flatnonzero(task.layout.mask)))


def measure_models(results: Sequence[RunResult], folder: Path) -> list[Model]:
    """Rebuild every run's model from ``folder/models`` and compute its connectivity."""
    from memtasks.studies.connectivity import model_from_weights
    from memtasks.sweeps.config import Point

    out = []
    for r in _ordered(results):
        if r.best is None:
            continue
        point = Point(**common.sweep_point(r))
        weights = folder / "models" / f"{point.stem}.safetensors"
        model, task = model_from_weights(r.to_dict(), weights, f"{point.stem}")
        source = r.task["kwargs"]["source"]
        data = task.test if source == "teacher" else task.train  # random targets: what was memorized
        out.append(_measure(model, task, data, r.to_dict(), r.cell["name"], source))
    return common.require(out, "trained connectivity models")


def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """The heatmaps, the curves by distance (figures with their data), the table and the README."""
    models = measure_models(results, out_dir)
    written = [write_csv(out_dir / "connectivity.csv",
                         ["cell", "source", "train_accuracy", "test_accuracy", "chance", "stop", "mean_distance",
                          "reach"] + [f"d{d}" for d in range(SEQ_LEN)],
                         [[m.cell, m.source, m.train_accuracy, m.test_accuracy, m.chance, m.stop, m.mean_distance,
                           m.reach] + [m.normalised.get(d) for d in range(SEQ_LEN)] for m in models])]
    return written + _heatmaps(models, out_dir) + _curves(models, out_dir) + [_readme(out_dir, models, study)]


def _heatmaps(models: Sequence[Model], out_dir: Path) -> list[Path]:
    from matplotlib.colors import LogNorm

    cells = common.cells_of(models)
    rows = list(dict.fromkeys(m.source for m in models))
    fig, axes = common.subplots(len(rows), len(cells), (max(2.1 * len(cells) + 1, 6.5), 2.2 * len(rows) + 0.6))
    data: dict[str, Any] = {}
    for i, source in enumerate(rows):
        for j, cell in enumerate(cells):
            ax = axes[i][j]
            m = next((m for m in models if m.cell == cell and m.source == source), None)
            ax.set_xticks([]), ax.set_yticks([])
            if m is None:
                ax.set_axis_off()
                continue
            heat = np.array(m.heatmap)
            # a causal output has exactly zero connectivity to later inputs: left blank
            shown = np.where(heat > 0, heat, np.nan) / max(float(heat.max()), 1e-30)
            ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1e-3, vmax=1), origin="upper", aspect="auto")
            ax.set_title(f"{cell} ({source})", fontsize=8 if len(cells) > 1 else 9)
            data[f"{cell}/{source}"] = [[float(f"{v:.4g}") for v in row] for row in m.heatmap]
            if j == 0:
                ax.set_ylabel("output step s", fontsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel("input step t", fontsize=7)
    fig.suptitle("One example's connectivity ‖∂ logit_s / ∂ e_t‖ / its maximum (log colour, 1e-3 to 1)",
                 fontsize=9)
    return common.save_figure(fig, data, out_dir, "heatmaps")


def _curves(models: Sequence[Model], out_dir: Path) -> list[Path]:
    cells = common.cells_of(models)
    rows = list(dict.fromkeys(m.source for m in models))
    fig, (axes,) = common.subplots(1, len(rows), (5.5 * len(rows), 4.2), sharey=True)
    data: dict[str, Any] = {}
    for ax, source in zip(axes, rows, strict=True):
        for i, cell in enumerate(cells):
            m = next((m for m in models if m.cell == cell and m.source == source), None)
            if m is None:
                continue
            norm = m.normalised
            ax.plot(list(norm), list(norm.values()), marker="o", ms=3, color=common.cell_color(i), label=cell)
            data[f"{cell}/{source}"] = {"distance": list(norm), "connectivity": list(norm.values())}
        ax.axhline(REACH, color="k", ls=":", lw=1)
        ax.set(yscale="log", xlabel="distance s − t (steps)",
               title=f"{source} targets" if source in SOURCES else source)
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_ylabel("mean connectivity / its value at distance 0")
    return common.save_figure(fig, data, out_dir, "by_distance")


def _readme(out_dir: Path, models: Sequence[Model], study: dict[str, Any]) -> Path:
    rows = [f"| {m.cell} | {m.source} | {fmt(m.train_accuracy, 3)} | {fmt(m.test_accuracy, 3)} | {fmt(m.chance, 3)} | "
            f"{m.stop} | {fmt(m.mean_distance)} | {'–' if m.reach is None else m.reach} |" for m in models]
    budget = [m for m in models if m.stop == "budget"]
    stopped = "" if not budget else fill("connectivity-budget", stopped=len(budget), models=len(models),
                                          steps=f"{common.study_steps(study):,}")
    return STUDY.write_readme(
        out_dir, study, _distance_text(models), stopped, params=PARAMS, teacher_examples=N_EXAMPLES["teacher"],
        random_examples=N_EXAMPLES["random"], averaged=N_AVERAGED, reach=f"{REACH:g}", rows="\n".join(rows))


def _distance_text(models: Sequence[Model]) -> str:
    """How much further back the cells look on random targets than on teacher ones ("" without both)."""
    by = {(m.cell, m.source): m for m in models}
    far = [m for m in models if m.source == "random"]
    if not far or not any(m.source == "teacher" for m in models):
        return ""
    pairs = [(by[(m.cell, "teacher")], m) for m in far if (m.cell, "teacher") in by]
    return fill("connectivity-distance", reach=f"{REACH:g}", steps=SEQ_LEN - 1, cells=len(pairs),
                longer=sum(f.mean_distance > t.mean_distance for t, f in pairs))


def saved_models(paths: Sequence[Path], out_dir: Path, example: int = 0, split: str = "train") -> list[Path]:
    """Connectivity of models saved by ``memtasks run --save-model``: ``example``'s heatmap and the curve by
    distance over (at most ``N_AVERAGED`` examples of) ``split``, for each model; figures, data and a table."""
    from memtasks.studies.connectivity import ConnectivityError, model_from_result

    models = []
    for i, path in enumerate(paths, 1):
        model, task = model_from_result(path)
        data = task.train if split == "train" else task.test
        if not 0 <= example < len(data):
            raise ConnectivityError(f"--example {example}: {path} has {len(data)} {split} examples "
                                    f"(valid: 0 to {len(data) - 1})")
        result = json.loads(Path(path).read_text())
        label = f"{i}: {result['cell']['name']}, {result['task']['id']}"
        models.append(_measure(model, task, data, result, label, f"{split} examples", example))
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(len(m.curve) for m in models)
    written = [write_csv(out_dir / "connectivity.csv",
                         ["model", "best_train", "best_test", "mean_distance", "reach"]
                         + [f"d{d}" for d in range(width)],
                         [[m.cell, m.train_accuracy, m.test_accuracy, m.mean_distance, m.reach]
                          + [m.normalised.get(d) for d in range(width)] for m in models])]
    return written + _heatmaps(models, out_dir) + _curves(models, out_dir)


def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per trained model for the terminal: its accuracies and stop."""
    return [f"{r.cell['name']:>12} ({r.task['kwargs']['source']}): train {r.best['train']['accuracy']:.3f}, "
            f"held-out {(r.best.get('test') or {}).get('accuracy', float('nan')):.3f} ({r.stop_reason})"
            for r in _ordered(results) if r.best is not None]


STUDY = register(Study("connectivity", configs, write_outputs, summary_lines, files=("models",), collect=collect))
