"""Per-example difficulty: which training examples are fitted early, and whether that is the same across seeds.

Arpit et al. (2017, fig. 1) train the same network from many initialisations and, for each training example,
count the fraction of runs that fit it after k epochs: on real data the fractions are spread out (some examples
are fitted by every run at once, others by none: a property of the example), on random inputs or labels they
bunch together (every example is as hard as any other). Maharaj et al. (2017, fig. 1) repeat this for recurrent
networks. Here the real data are ``SeqDigits-v0`` (scikit-learn's 8×8 digits read pixel by pixel); randX replaces
every training image by Gaussian noise, randY every label by a uniform class. One training set
(``data_seed``) is trained from ``SEEDS`` initialisations per cell and variant at one constant learning rate
(no decays, no plateau stop, so that epoch k means the same in every run), recording which examples are fitted
after every epoch (``record_examples``).

Reported per cell, variant and k: the histogram of the per-example fraction of seeds, and its **dispersion**: the
variance of those fractions over the variance they would have if every example were equally hard (a binomial
with the same mean). 1 means difficulty is a matter of chance; well above 1, some examples are consistently
easy and others consistently hard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memtasks.fitting.protocol import unpack_fitted
from memtasks.fitting.result import RunResult
from memtasks.studies import common
from memtasks.studies.common import StudyError, fill, fmt, write_csv
from memtasks.studies.registry import Study, register

TASK = "SeqDigits-v0"
SEQ_LEN = 64
DEFAULT_CELLS = ("rnn", "lstm", "gru", "mlp")
VARIANTS = (("real", {}), ("randX", {"x_noise": 1.0}), ("randY", {"y_noise": 1.0}))
N_EXAMPLES = 300
N_TEST = 100
HIDDEN = 32
EMBED_DIM = 4
BATCH = 30
EPOCHS = 100
SEEDS = 10
DATA_SEED = 0
LR = 0.01
#: The epochs whose histograms the figure shows.
EPOCHS_SHOWN = (1, 5, 20, 100)


def configs(cells: Sequence[str] = DEFAULT_CELLS, scale: float = 1.0) -> list[Any]:
    """One sweep per variant: cells × seeds on one training set, evaluated after every epoch."""
    from memtasks.sweeps.config import SweepConfig

    size = STUDY.size(cells, scale)
    steps_per_epoch = N_EXAMPLES // BATCH
    return [SweepConfig(
        name=f"{size.name}-{variant}", tasks=[TASK], cells=list(cells), n_examples=[N_EXAMPLES], seq_len=[SEQ_LEN],
        hidden=[HIDDEN], embed_dim=EMBED_DIM, seeds=size.seeds(SEEDS), data_seed=DATA_SEED,
        search={"lr": [LR], "batch_size": [BATCH]}, task_kwargs={"n_test": N_TEST, **noise},
        # the plateau rule with patience beyond the budget: one constant learning rate, a fixed number of epochs
        # (only the ceiling stops a run), so every seed records the same epochs
        protocol={"rule": "plateau", "max_steps": size.steps(EPOCHS * steps_per_epoch), "eval_every": steps_per_epoch,
                  "patience": 10 * EPOCHS, "record_examples": True})
        for variant, noise in VARIANTS]


def kept_epochs(last: int) -> list[int]:
    """The epochs whose per-example record is kept: every one of the first ten, then every fifth, and the last."""
    return sorted({k for k in range(1, min(last, 10) + 1)} | set(range(15, last + 1, 5)) | {last})


def keep_history(results: Sequence[RunResult]) -> list[RunResult]:
    """Keep the per-example record (and the accuracy) at the kept epochs only: a run's whole record of 100
    epochs is what the study needs least, and the largest part of its file."""
    out = common.trim_histories(results, lambda e: {"step": e["step"], "fitted": e["fitted"],
                                             "train": {"accuracy": e["train"]["accuracy"]}})
    for r in out:
        every = r.protocol["eval_every"]
        kept = set(kept_epochs(r.protocol["max_steps"] // every))
        r.history = [e for e in r.history if e["step"] % every == 0 and e["step"] // every in kept]
    return out


def _variant(r: RunResult) -> str:
    kw = r.task["kwargs"]
    return "randX" if kw.get("x_noise") else "randY" if kw.get("y_noise") else "real"


def fitted_at(r: RunResult, epochs: Sequence[int]) -> np.ndarray:
    """(len(epochs), n): which training examples the run fits after each of ``epochs``; a run that stopped (at its
    ceiling) before an epoch keeps its last state."""
    n = r.task["n_examples"]
    every = r.protocol["eval_every"]
    rows = {e["step"] // every: unpack_fitted(e["fitted"], n) for e in r.history if e.get("fitted")}
    if not rows:
        raise StudyError(f"run {r.task['id']} / {r.cell['name']} recorded no per-example fits (record_examples)")
    out = np.zeros((len(epochs), n), dtype=bool)
    for i, k in enumerate(epochs):
        earlier = [e for e in rows if e <= k]
        if earlier:
            out[i] = rows[max(earlier)]
    return out


def _dispersion(fractions: np.ndarray, seeds: int) -> float:
    counts = np.rint(fractions * seeds)  # whole numbers of seeds: an exact variance, exactly 0 when all agree
    p = float(counts.mean()) / seeds
    if p <= 0 or p >= 1 or seeds < 2:
        return float("nan")
    return float(counts.var() / seeds**2 / (p * (1 - p) / seeds))


@dataclass(frozen=True)
class Group:
    """One cell and variant: the fraction of seeds fitting each example after each kept epoch, (epochs, n), and
    each example's training label."""

    cell: str
    variant: str
    seeds: int
    epochs: list[int]
    fractions: np.ndarray
    labels: np.ndarray
    #: randY: whether each example's random label happens to be its image's own (None for the other variants).
    agrees: np.ndarray | None = None

    def at(self, epoch: int) -> np.ndarray:
        return self.fractions[self.epochs.index(epoch)]

    def dispersion(self, epoch: int) -> float:
        """Var of the per-example fractions over a binomial's with the same mean (1: chance; ≫1: consistent)."""
        return _dispersion(self.at(epoch), self.seeds)

    def class_dispersion(self, epoch: int) -> float:
        """The dispersion among examples of the same label, averaged over labels (weighted by their examples).

        A network that predicts one class for everything fits exactly the examples of that label in every seed;
        comparing examples within a label leaves that out and measures what is particular to the example."""
        frac = self.at(epoch)
        parts = [(int((self.labels == c).sum()), _dispersion(frac[self.labels == c], self.seeds))
                 for c in np.unique(self.labels)]
        parts = [(w, d) for w, d in parts if not np.isnan(d)]
        return float(sum(w * d for w, d in parts) / sum(w for w, _ in parts)) if parts else float("nan")

    def share(self, epoch: int, value: float) -> float:
        """The fraction of examples fitted by exactly ``value`` of the seeds (0: by none, 1: by all)."""
        return float(np.isclose(self.at(epoch), value).mean())


def _labels(r: RunResult) -> tuple[np.ndarray, np.ndarray | None]:
    """The run's training labels, regenerated from its task (and checked against its fingerprint), and with label
    noise, whether each label is the clean data's."""
    import memtasks

    def labels(kwargs: dict[str, Any]) -> tuple[np.ndarray, Any]:
        task = memtasks.make(r.task["id"], **kwargs)
        return task.train.y.reshape(len(task.train), -1)[:, -1].astype(np.int64), task.train.fingerprint

    y, fingerprint = labels(r.task["kwargs"])
    if fingerprint != r.task["fingerprint"]:
        raise StudyError(f"{r.task['id']}: the task no longer regenerates the data this run was trained on")
    if not r.task["kwargs"].get("y_noise"):
        return y, None
    return y, y == labels({**r.task["kwargs"], "y_noise": 0.0})[0]


def groups(results: Sequence[RunResult]) -> list[Group]:
    """Runs grouped by cell and variant, in cell-registry and variant order."""
    epochs = kept_epochs(max(r.protocol["max_steps"] // r.protocol["eval_every"] for r in results))
    grouped: dict[tuple[str, str], list[RunResult]] = {}
    for r in sorted(results, key=lambda r: common.sweep_point(r)["seed"]):
        grouped.setdefault((r.cell["name"], _variant(r)), []).append(r)
    names = [v for v, _ in VARIANTS]
    keys = sorted(grouped, key=lambda k: (*common.cell_rank(k[0]), names.index(k[1])))
    labels: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    out = []
    for cell, variant in keys:
        runs = grouped[(cell, variant)]
        if len({r.task["fingerprint"] for r in runs}) != 1:
            raise StudyError(f"{cell} / {variant}: the seeds trained on different data; per-example difficulty "
                             "needs one training set (data_seed)")
        fingerprint = runs[0].task["fingerprint"]
        if fingerprint not in labels:
            labels[fingerprint] = _labels(runs[0])
        out.append(Group(cell, variant, len(runs), epochs, np.mean([fitted_at(r, epochs) for r in runs], axis=0),
                         *labels[fingerprint]))
    return out


def shown_epochs(gs: Sequence[Group]) -> list[int]:
    """The epochs the figure and tables show: ``EPOCHS_SHOWN`` within the runs' budget, and the last."""
    last = gs[0].epochs[-1]
    return [k for k in EPOCHS_SHOWN if k < last and k in gs[0].epochs] + [last]


def write_outputs(results: Sequence[RunResult], out_dir: Path, study: dict[str, Any]) -> list[Path]:
    """The per-example and summary tables, the histograms and dispersion figures (with data), the README."""
    gs = common.require(groups(results), "difficulty runs")
    ks = shown_epochs(gs)
    written = [
        write_csv(out_dir / "difficulty.csv", ["cell", "variant", "seeds", "epoch", "mean_fitted", "fitted_by_none",
                                               "fitted_by_all", "dispersion", "within_label_dispersion"],
                  [[g.cell, g.variant, g.seeds, k, float(g.at(k).mean()), g.share(k, 0.0), g.share(k, 1.0),
                    g.dispersion(k), g.class_dispersion(k)] for g in gs for k in g.epochs]),
        write_csv(out_dir / "per_example.csv", ["cell", "variant", "example", "label"] + [f"epoch{k}" for k in ks],
                  [[g.cell, g.variant, i, int(g.labels[i])] + [float(g.at(k)[i]) for k in ks]
                   for g in gs for i in range(g.fractions.shape[1])]),
    ]
    return written + _histograms(gs, ks, out_dir) + _dispersion_figure(gs, out_dir) + [_readme(out_dir, gs, ks, study)]


def _histograms(gs: Sequence[Group], ks: Sequence[int], out_dir: Path) -> list[Path]:
    cells = common.cells_of(gs)
    variants = [v for v, _ in VARIANTS]
    fig, axes = common.subplots(len(cells), len(variants), (3.6 * len(variants), 2.2 * len(cells)), sharex=True,
                                sharey=True)
    colors = common.pyplot().get_cmap("viridis")
    data: dict[str, Any] = {}
    for g in gs:
        ax = axes[cells.index(g.cell)][variants.index(g.variant)]
        edges = np.linspace(-0.5 / g.seeds, 1 + 0.5 / g.seeds, g.seeds + 2)
        for i, k in enumerate(ks):
            counts, _ = np.histogram(g.at(k), bins=edges)
            share = counts / g.fractions.shape[1]
            ax.step(np.linspace(0, 1, g.seeds + 1), share, where="mid", color=colors(i / max(len(ks) - 1, 1)),
                    label=f"epoch {k}")
            data[f"{g.cell}/{g.variant}/epoch{k}"] = share.tolist()
        ax.set_title(f"{g.cell}, {g.variant}", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(f"fraction of the {gs[0].seeds} seeds that fit the example", fontsize=7)
    for row in axes:
        row[0].set_ylabel("share of examples", fontsize=7)
    axes[0][0].legend(fontsize=6)
    return common.save_figure(fig, data, out_dir, "histograms")


def _dispersion_figure(gs: Sequence[Group], out_dir: Path) -> list[Path]:
    variants = [v for v, _ in VARIANTS]
    cells = common.cells_of(gs)
    fig, (axes,) = common.subplots(1, len(variants), (4 * len(variants), 3.6), sharey=True)
    data: dict[str, Any] = {}
    for g in gs:
        ax = axes[variants.index(g.variant)]
        values = [g.class_dispersion(k) for k in g.epochs]
        ax.plot(g.epochs, values, marker="o", ms=2.5, color=common.cell_color(cells.index(g.cell)), label=g.cell)
        data[f"{g.cell}/{g.variant}"] = {"epoch": g.epochs, "within_label_dispersion":
                                         [None if np.isnan(v) else v for v in values]}
    for ax, variant in zip(axes, variants, strict=True):
        ax.axhline(1, color="k", ls=":", lw=1)
        ax.set(xscale="log" if len(gs[0].epochs) > 1 else "linear", xlabel="epoch", title=variant)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("dispersion within a label")
    return common.save_figure(fig, data, out_dir, "dispersion")


def _readme(out_dir: Path, gs: Sequence[Group], ks: Sequence[int], study: dict[str, Any]) -> Path:
    rows = [f"| {g.cell} | {g.variant} | " + " | ".join(fmt(float(g.at(k).mean())) for k in ks)
            + " | " + " | ".join(fmt(g.class_dispersion(k), 1) for k in ks) + " |" for g in gs]
    return STUDY.write_readme(
        out_dir, study, _random_labels(gs, ks), task=TASK, n_examples=N_EXAMPLES, data_seed=DATA_SEED, hidden=HIDDEN,
        seeds=gs[0].seeds, lr=f"{LR:g}", batch=BATCH, epochs=", ".join(map(str, ks)),
        fitted_columns=" | ".join(f"fitted, epoch {k}" for k in ks),
        dispersion_columns=" | ".join(f"dispersion within a label, epoch {k}" for k in ks),
        rule="---|" * (2 * len(ks)), rows="\n".join(rows))


def _random_labels(gs: Sequence[Group], ks: Sequence[int]) -> str:
    """randY: whether the examples whose random label is their own are fitted first ("" without randY)."""
    noisy = [g for g in gs if g.agrees is not None]
    if not noisy:
        return ""

    def shares(g: Group, k: int) -> tuple[float, float]:
        """The mean share of seeds fitting the right-label examples after epoch ``k``, and the others'."""
        right = g.agrees if g.agrees is not None else np.zeros(len(g.labels), dtype=bool)
        return float(g.at(k)[right].mean()), float(g.at(k)[~right].mean())

    rows = [f"| {g.cell} | " + " | ".join(f"{fmt(r)} / {fmt(o)}" for r, o in (shares(g, k) for k in ks)) + " |"
            for g in noisy]
    mid = ks[len(ks) // 2]
    ahead = sum(right > other for right, other in (shares(g, mid) for g in noisy))
    return fill("difficulty-random-labels", agree=int(noisy[0].agrees.sum()),  # type: ignore[union-attr]
                examples=len(noisy[0].labels), columns=" | ".join(f"epoch {k}: right label / other" for k in ks),
                rule="---|" * len(ks), rows="\n".join(rows), epoch=mid, ahead=ahead, cells=len(noisy),
                verdict=fill("difficulty-ahead" if 2 * ahead > len(noisy) else "difficulty-not-ahead"))


def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per cell and variant: the share fitted and the dispersion at the shown epochs."""
    gs = groups(results)
    ks = shown_epochs(gs)
    return [f"{g.cell:>12} {g.variant:>5}: " + ", ".join(
        f"epoch {k} fitted {g.at(k).mean():.2f} dispersion {g.class_dispersion(k):.1f}" for k in ks)
        for g in gs]


STUDY = register(Study("difficulty", configs, write_outputs, summary_lines, default_cells=DEFAULT_CELLS,
                       keep_history=keep_history))
