"""The ``memtasks`` command line: ``list``, ``show``, ``generate``, ``cells``, ``run``, ``sweep``, ``report``.

Exit codes: 0 success; 2 bad usage or bad input (one ``Error:`` line on stderr, no traceback); 1 a
failure while running (set ``MEMTASKS_DEBUG=1`` to see its traceback).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

import memtasks
from memtasks.errors import MemtasksError
from memtasks.params import parse_overrides
from memtasks.protocol import Protocol
from memtasks.registration import TaskSpec
from memtasks.task import Task, format_bytes

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class BadInput(click.ClickException):
    """Bad input: one line, exit code 2."""

    exit_code = 2


class Failure(click.ClickException):
    """A failure while running: one line, exit code 1."""

    exit_code = 1


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    err.print(f"[yellow]Warning:[/] {message}", soft_wrap=True)


class _Group(click.Group):
    """Turns library errors into one clear line and the documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemtasksError as exc:
            raise BadInput(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MEMTASKS_DEBUG"):
                raise
            raise Failure(f"{type(exc).__name__}: {exc} (set MEMTASKS_DEBUG=1 for the traceback)") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(memtasks.__version__, prog_name="memtasks")
def main() -> None:
    """memtasks: how much can a recurrent cell memorize?

    Synthetic memorization tasks with controlled sequence length and dataset size.
    """
    warnings.showwarning = _show_warning


KWARG_OPTION = click.option(
    "-k", "--kwarg", "kwargs", multiple=True, metavar="KEY=VALUE",
    help="Override a task kwarg (repeatable), e.g. -k seq_len=50 -k source=teacher.",
)


def _make(task_id: str, pairs: Sequence[str]) -> Task:
    found = memtasks.spec(task_id)
    task = memtasks.make(found, **parse_overrides(pairs, found.params(), found.id))
    if not isinstance(task, Task):
        raise MemtasksError(
            f"{found.id} does not build a memtasks.Task (its entry point returned {type(task).__name__})")
    return task


# ----- list -------------------------------------------------------------------------------------
@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def list_cmd(as_json: bool) -> None:
    """List every registered task."""
    specs = sorted(memtasks.registry.values(), key=lambda s: (s.namespace or "", s.id))
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in specs], indent=2))
        return
    table = Table(title=f"memtasks registry ({len(specs)} tasks)", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("in", no_wrap=True)
    table.add_column("out", no_wrap=True)
    table.add_column("what the model does", overflow="fold")
    for s in specs:
        cls = _task_class(s)
        table.add_row(s.id, getattr(cls, "x_type", ""), getattr(cls, "y_type", ""),
                      getattr(cls, "summary", "") or s.description)
    out.print(table)


def _task_class(s: TaskSpec) -> Any:
    try:
        return s.load()
    except MemtasksError:
        return None


# ----- show -------------------------------------------------------------------------------------
def _steps_text(steps: np.ndarray) -> str:
    """``[0,1,2,5]`` -> ``'1-3, 6'`` (1-based step ranges)."""
    idx = np.flatnonzero(steps) + 1
    if idx.size == 0:
        return "none"
    runs, start = [], idx[0]
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b != a + 1:
            runs.append((start, a))
            start = b
    runs.append((start, idx[-1]))
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _fmt_vec(v: np.ndarray, limit: int = 4) -> str:
    body = " ".join(f"{float(e):+.2f}" for e in v[:limit])
    return f"[{body}{' …' if len(v) > limit else ''}]"


def _render_example(task: Task, i: int, max_rows: int) -> Table:
    lay, data = task.layout, task.train
    tokens, values, targets = data.model_inputs(np.array([i]))
    table = Table(title=f"train example {i}", title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("input")
    table.add_column("target")
    table.add_column("scored")
    rows = list(range(lay.length))
    if len(rows) > max_rows:
        rows = rows[: max_rows - 3] + [-1] + rows[-2:]
    for s in rows:
        if s < 0:
            table.add_row("…", "…", "…", "")
            continue
        parts = []
        for k, (name, size, marker) in enumerate(lay.token_streams()):
            t = int(tokens[0, s, k])
            parts.append(f"{name}={marker if t == size else t}")
        if values is not None:
            parts.append(_fmt_vec(values[0, s], limit=6))
        scored = bool(lay.mask[s])
        tgt = ("" if not scored else str(int(targets[0, s])) if lay.y_type == "cat"
               else _fmt_vec(targets[0, s]))
        table.add_row(str(s + 1), " ".join(parts), tgt, "yes" if scored else "")
    return table


def _summary(task: Task) -> dict[str, Any]:
    lay, info = task.layout, task.info
    splits = {}
    for data in (task.train, task.test):
        splits[data.split] = {
            "n": len(data), "x": {"dtype": str(data.x.dtype), "shape": list(data.x.shape)},
            "y": {"dtype": str(data.y.dtype), "shape": list(data.y.shape)},
            "x_noised": int(data.x_noised.sum()), "y_noised": int(data.y_noised.sum()),
            "fingerprint": data.fingerprint,
        }
    return {
        "spec": task.spec.to_dict(),
        "info": info.to_dict(),
        "layout": {**lay.to_dict(), "length": lay.length, "scored_steps": _steps_text(lay.mask),
                   "streams": lay.streams()},
        "splits": splits,
        "ceiling": task.train.ceiling.to_dict(),
    }


@main.command("show")
@click.argument("task_id", metavar="ID")
@KWARG_OPTION
@click.option("--example", "example", type=click.IntRange(min=0), default=0, show_default=True,
              help="Index of the training example to render.")
@click.option("--rows", type=click.IntRange(min=4), default=24, show_default=True,
              help="Most steps shown in the rendered example.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of tables.")
def show_cmd(task_id: str, kwargs: tuple[str, ...], example: int, rows: int, as_json: bool) -> None:
    """Show a task: merged kwargs, shapes, achievable ceiling and a rendered example."""
    task = _make(task_id, kwargs)
    if example >= len(task.train):
        raise BadInput(f"--example {example} is out of range; the training set has {len(task.train)} examples")
    summary = _summary(task)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    lay, info, ceil = task.layout, task.info, task.train.ceiling
    out.print(f"[bold]{task.spec.id}[/]  {task.spec.description}")
    params = task.params
    kw = Table(title="kwargs (merged)", title_justify="left")
    for col in ("kwarg", "value", "default", "meaning"):
        kw.add_column(col, overflow="fold")
    for name, value in task.kwargs.items():
        p = params.get(name)
        default = "" if p is None else repr(p.default)
        changed = p is not None and value != p.default
        kw.add_row(name, f"[bold]{value!r}[/]" if changed else repr(value), default, "" if p is None else p.help)
    out.print(kw)

    shapes = Table(title="data", title_justify="left")
    for col in ("split", "examples", "x", "y", "noised x / y", "fingerprint"):
        shapes.add_column(col)
    for split, s in summary["splits"].items():
        shapes.add_row(split, str(s["n"]), f"{s['x']['dtype']} {tuple(s['x']['shape'])}",
                       f"{s['y']['dtype']} {tuple(s['y']['shape'])}", f"{s['x_noised']} / {s['y_noised']}",
                       s["fingerprint"][:16] + "…")
    out.print(shapes)
    out.print(f"model steps L = {lay.length}; scored steps: {_steps_text(lay.mask)}")
    for stream in lay.streams():
        out.print(f"  input {stream}")

    ref = Table(title="reference levels (training set)", title_justify="left")
    ref.add_column("measure")
    ref.add_column("value", justify="right")
    if lay.y_type == "cat":
        ref.add_row("chance accuracy (majority class)", f"{info.chance:.4f}")
        ref.add_row("achievable ceiling: accuracy", f"{ceil.accuracy:.4f}")
    else:
        ref.add_row("chance R² (predict the mean)", f"{info.chance:.4f}")
        ref.add_row("achievable ceiling: MSE floor", f"{ceil.mse_floor:.4g}")
        ref.add_row("achievable ceiling: R²", f"{ceil.r2:.4f}")
    ref.add_row("scored targets", f"{ceil.n_scored:,}")
    ref.add_row("scored targets in contradictory contexts", f"{ceil.n_ambiguous:,}")
    ref.add_row("max bits the targets can carry", f"{info.max_bits:,.0f}")
    ref.add_row("bits stored at the ceiling", f"{ceil.bits:,.0f}")
    out.print(ref)
    if task.kwargs.get("source") == "teacher":
        out.print("[dim]source=teacher: bits are not memorized information (targets are learnable).[/]")
    out.print(_render_example(task, example, rows))


# ----- generate ---------------------------------------------------------------------------------
@main.command("generate")
@click.argument("task_id", metavar="ID")
@KWARG_OPTION
@click.option("-o", "--out", "path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .npz file (train and test splits).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def generate_cmd(task_id: str, kwargs: tuple[str, ...], path: Path, force: bool, as_json: bool) -> None:
    """Generate a task's train and test data and write them to one .npz file.

    Read it back with memtasks.load(path) or memtasks.TaskData.load(path, split="train").
    """
    if path.suffix != ".npz":
        raise BadInput(f"output file {path} must end in .npz")
    if path.exists() and not force:
        raise BadInput(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise BadInput(f"cannot write {path}: directory {path.parent} is not writable")
    task = _make(task_id, kwargs)
    with err.status(f"generating {task.spec.id}…"):
        task.save(path)
    result = {"path": str(path), "bytes": path.stat().st_size, "spec": task.spec.to_dict(),
              "splits": {d.split: {"n": len(d), "fingerprint": d.fingerprint} for d in (task.train, task.test)}}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"{task.spec.id} -> {path} ({format_bytes(result['bytes'])})", title_justify="left")
    for col in ("split", "examples", "x", "y"):
        table.add_column(col)
    for d in (task.train, task.test):
        table.add_row(d.split, str(len(d)), f"{d.x.dtype} {d.x.shape}", f"{d.y.dtype} {d.y.shape}")
    out.print(table)
    for d in (task.train, task.test):
        out.print(f"{d.split} fingerprint: {d.fingerprint}", soft_wrap=True)


# ----- cells ------------------------------------------------------------------------------------
@main.command("cells")
@click.option("--json", "as_json", is_flag=True, help="Print the cell registry as JSON.")
def cells_cmd(as_json: bool) -> None:
    """List the registered cells (built-in, registered and from entry points)."""
    from memtasks.cell_registry import cells

    found = cells()
    if as_json:
        click.echo(json.dumps([{"name": c.name, "source": c.source, "description": c.description}
                               for c in found.values()], indent=2))
        return
    table = Table(title=f"cells ({len(found)})", title_justify="left")
    for col in ("name", "source", "description"):
        table.add_column(col, overflow="fold")
    for c in found.values():
        table.add_row(c.name, c.source, c.description)
    out.print(table)
    out.print("[dim]Any 'package.module:factory' works too; see docs/cells.md.[/]")


# ----- run --------------------------------------------------------------------------------------
def _parse_cell_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"cell kwarg {pair!r} is not KEY=VALUE, e.g. -c num_layers=2")
        try:
            kwargs[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            kwargs[key.strip()] = text
    return kwargs


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot write results to {path}: {exc.strerror or exc}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write results to {path}: not a writable directory")
    return path


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec)


def _run_table(result: Any, path: Path) -> Table:
    task, cell, best = result.task, result.cell, result.best
    cat = task["layout"]["y_type"] == "cat"
    ceil = task["ceiling"]
    table = Table(title=f"{task['id']} · {cell['name']} · hidden {cell['hidden_size']}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("status", f"{result.status} ({result.stop_reason})")
    table.add_row("parameters: total / recurrent core", f"{cell['params_total']:,} / {cell['params_core']:,}")
    table.add_row("epochs (best epoch)", f"{result.epochs} ({best['epoch'] if best else '–'})")
    metric = "accuracy" if cat else "R²"
    table.add_row(f"achievable ceiling ({metric})", _fmt(ceil["accuracy"] if cat else ceil["r2"]))
    tr = best["train"] if best else {}
    te = (best or {}).get("test") or {}
    table.add_row(f"fitting ceiling: best train {metric}", _fmt(tr.get("accuracy" if cat else "r2")))
    if not cat:
        table.add_row("best train MSE (floor)", f"{_fmt(tr.get('mse'), '.4g')} ({ceil['mse_floor']:.4g})")
    table.add_row("fraction of the achievable ceiling", _fmt(tr.get("fraction_of_ceiling")))
    chance = f" (chance {task['chance']:.4f})" if cat else " (chance 0)"
    table.add_row(f"held-out test {metric}", _fmt(te.get("accuracy" if cat else "r2")) + chance)
    table.add_row("bits stored (at the ceiling)", f"{_fmt(tr.get('bits'), ',.1f')} ({ceil['bits']:,.1f})")
    table.add_row("bits per parameter", _fmt(best["bits_per_param"] if best else None))
    reach = result.epochs_to_ceiling
    table.add_row("epochs to 50 / 90 / 100 % of ceiling",
                  " / ".join("–" if reach[k] is None else str(reach[k]) for k in ("50%", "90%", "100%")))
    table.add_row("wall time (training)", f"{result.wall_time_s:.1f} s ({result.train_time_s:.1f} s)")
    return table


_DEFAULTS = Protocol  # dataclass field defaults are class attributes; an instance would import torch


@main.command("run")
@click.argument("task_id", metavar="ID")
@KWARG_OPTION
@click.option("--cell", default="lstm", show_default=True, metavar="NAME|MODULE:FACTORY",
              help="Cell to train: a registered name (see `memtasks cells`) or 'package.module:factory'.")
@click.option("-c", "--cell-kwarg", "cell_kwargs", multiple=True, metavar="KEY=VALUE",
              help="Extra keyword argument for the cell factory (repeatable; JSON values).")
@click.option("--hidden", type=int, default=None, help="Hidden size (default 64 unless --params is given).")
@click.option("--params", "n_params", type=int, default=None, metavar="N",
              help="Parameter budget: pick the hidden size whose total parameter count is closest to N.")
@click.option("--embed-dim", type=int, default=16, show_default=True, help="Width of the shared input encoder.")
@click.option("--lr", type=float, default=_DEFAULTS.lr, show_default=True, help="Adam learning rate.")
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
@click.option("--max-epochs", type=int, default=_DEFAULTS.max_epochs, show_default=True, help="Epoch budget.")
@click.option("--patience", type=int, default=_DEFAULTS.patience, show_default=True,
              help="Stop when the training metric has not improved for this many epochs.")
@click.option("--grad-clip", type=float, default=_DEFAULTS.grad_clip, show_default=True,
              help="Gradient-norm clip (0: off).")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True,
              help="Training seed (initialisation, batch order); the data's seed is -k seed=N.")
@click.option("--device", default=_DEFAULTS.device, show_default=True, help="cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Directory for the result JSON (created if missing).")
@click.option("--save-model", is_flag=True, help="Also write the best epoch's weights as .safetensors.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal and --json is not given).")
@click.option("--json", "as_json", is_flag=True, help="Print the RunResult JSON instead of the summary table.")
def run_cmd(task_id: str, kwargs: tuple[str, ...], cell: str, cell_kwargs: tuple[str, ...], hidden: int | None,
            n_params: int | None, embed_dim: int, lr: float, batch_size: int, max_epochs: int, patience: int,
            grad_clip: float, seed: int, device: str, threads: int | None, out_dir: Path, save_model: bool,
            progress: bool | None, as_json: bool) -> None:
    """Train a cell on a task's training set and report how far it fits it.

    Stops at the achievable ceiling, on a plateau (--patience) or at --max-epochs; writes one
    RunResult JSON to --out and prints a summary (fitting ceiling, bits stored, bits per parameter).
    """
    from datetime import datetime, timezone

    import torch

    from memtasks.cell_registry import cell_spec
    from memtasks.trainer import fit, resolve_hidden
    from memtasks.result import run_name

    if threads is not None:
        if threads < 1:
            raise BadInput(f"--threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)
    if embed_dim < 1:
        raise BadInput(f"--embed-dim must be a positive integer, got {embed_dim}")
    protocol = Protocol(lr=lr, batch_size=batch_size, max_epochs=max_epochs, patience=patience,
                        grad_clip=grad_clip, seed=seed, device=device)
    spec = cell_spec(cell)
    ckw = _parse_cell_kwargs(cell_kwargs)
    task = _make(task_id, kwargs)
    hidden_size = resolve_hidden(task, spec, hidden, n_params, embed_dim, ckw)
    _writable_dir(out_dir)
    stem = run_name(task.spec.id, spec.name, hidden_size, seed,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = out_dir / f"{stem}.json"
    n = 1
    while path.exists() or path.with_suffix(".safetensors").exists():
        path = out_dir / f"{stem}-{n}.json"
        n += 1
    show = sys.stderr.isatty() and not as_json if progress is None else progress
    with err.status(f"generating {task.spec.id}…") if show else _nullcontext():
        task.train.ceiling, task.test  # noqa: B018 - generate before the progress bar starts
    result = fit(task, spec, hidden=None if n_params is not None else hidden_size, params=n_params,
                 embed_dim=embed_dim, cell_kwargs=ckw, protocol=protocol, progress=show,
                 model_path=path.with_suffix(".safetensors") if save_model else None)
    result.save(path)
    if as_json:
        click.echo(result.to_json())
    else:
        out.print(_run_table(result, path))
        out.print(f"result: {path}", soft_wrap=True)
        if result.model_file:
            out.print(f"model weights: {path.parent / result.model_file}", soft_wrap=True)
        if result.stop_reason == "budget" and result.best and result.best["epoch"] > result.epochs - 5:
            out.print(f"[dim]Stopped at the budget ({result.epochs} epochs) while still improving: raise "
                      "--max-epochs to find this cell's full fitting ceiling.[/]")
        if task.kwargs.get("source") != "random":
            out.print("[dim]source=teacher: bits are not memorized information (targets are learnable).[/]")
    if result.status == "interrupted":
        err.print(f"Interrupted: the partial result is saved in {path}", soft_wrap=True)
        sys.exit(130)


class _nullcontext:  # contextlib.nullcontext, typed for our use
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


# ----- sweep ------------------------------------------------------------------------------------
def _csv(kind: type) -> Any:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Any] | None:
        if value is None:
            return None
        try:
            return [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise BadInput(f"--{param.name.replace('_', '-')} {value!r}: give comma-separated "
                           f"{kind.__name__}s, e.g. 100,300,1000") from None
    return parse


@main.command("sweep")
@click.argument("config_path", metavar="[CONFIG.toml]", required=False, type=click.Path(path_type=Path))
@click.option("--name", help="Sweep name: results go to OUT/NAME/ (overrides the config's).")
@click.option("--task", "tasks", multiple=True, help="Task id (repeatable), or 'all' for the 16 settings.")
@click.option("--cell", "cells", multiple=True, help="Cell (repeatable).")
@click.option("--n-examples", callback=_csv(int), help="Training-set sizes, e.g. 100,300,1000.")
@click.option("--seq-len", callback=_csv(int), help="Sequence lengths, e.g. 10,20.")
@click.option("--params", "params", callback=_csv(int), help="Parameter budgets, e.g. 1000,4000.")
@click.option("--hidden", "hidden", callback=_csv(int), help="Hidden sizes (instead of --params).")
@click.option("--seeds", callback=_csv(int), help="Seeds (data and training), e.g. 0,1,2.")
@click.option("--lr", "lrs", callback=_csv(float), help="Learning rates, e.g. 2e-3,5e-3.")
@KWARG_OPTION
@click.option("--max-epochs", type=int, help="Epoch budget of every run.")
@click.option("--patience", type=int, help="Plateau patience of every run.")
@click.option("--batch-size", type=int, help="Batch size of every run.")
@click.option("--out", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Root folder of sweeps.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=int, help="Parallel runs (default: the number of CPU cores).")
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads per run.")
@click.option("--address", help="Ray cluster address (host:port, ray://host:port or auto); default: local Ray.")
@click.option("--device", default="cpu", show_default=True, help="Device of every run: cpu, cuda, cuda:N or mps.")
@click.option("--progress/--no-progress", default=None, help="Show the progress display (default: on a terminal).")
@click.option("--dry-run", is_flag=True, help="Check the config and show the plan without running anything.")
def sweep_cmd(config_path: Path | None, name: str | None, tasks: tuple[str, ...], cells: tuple[str, ...],
              n_examples: list[int] | None, seq_len: list[int] | None, params: list[int] | None,
              hidden: list[int] | None, seeds: list[int] | None, lrs: list[float] | None, kwargs: tuple[str, ...],
              max_epochs: int | None, patience: int | None, batch_size: int | None, root: Path, backend: str,
              workers: int | None, threads: int, address: str | None, device: str, progress: bool | None,
              dry_run: bool) -> None:
    """Run a grid of fits: tasks × cells × sizes × lengths × budgets × seeds × learning rates.

    One RunResult per grid point lands in OUT/NAME/. Finished points are skipped, so re-running a killed
    sweep resumes it; a failed run is reported and never stops the sweep. See docs/sweeps.md.
    """
    from memtasks.sweep import SweepConfig, SweepFolder, run_sweep

    data: dict[str, Any] = {}
    if config_path is not None:
        data = SweepConfig.load(config_path).to_dict()
    flags = {"name": name, "tasks": list(tasks) or None, "cells": list(cells) or None, "n_examples": n_examples,
             "seq_len": seq_len, "seeds": seeds, "lr": lrs}
    data.update({k: v for k, v in flags.items() if v is not None})
    if params is not None or hidden is not None:
        data.pop("params", None)
        data.pop("hidden", None)
        data.update({k: v for k, v in (("params", params), ("hidden", hidden)) if v is not None})
    if kwargs:
        data["task_kwargs"] = {**data.get("task_kwargs", {}), **_parse_cell_kwargs(kwargs)}
    overrides = {"max_epochs": max_epochs, "patience": patience, "batch_size": batch_size}
    if any(v is not None for v in overrides.values()):
        data["protocol"] = {**data.get("protocol", {}), **{k: v for k, v in overrides.items() if v is not None}}
    config = SweepConfig.from_dict(data, str(config_path) if config_path else "flags")
    if dry_run:
        points = config.validate()
        Protocol(device=device)
        folder = SweepFolder(root, config)
        folder.check()
        plan = folder.plan(points) if folder.path.is_dir() else None
        done = plan.done if plan else 0
        out.print(f"sweep {config.name}: {len(points)} points ({done} finished) -> {folder.path}", soft_wrap=True)
        for p in points[:5]:
            out.print(f"  {p.stem}", soft_wrap=True)
        if len(points) > 5:
            out.print(f"  … and {len(points) - 5} more")
        return
    show = sys.stderr.isatty() if progress is None else progress
    summary = run_sweep(config, root, backend=backend, workers=workers, threads=threads, device=device,
                        address=address, console=err, progress=show)
    out.print(f"sweep {config.name}: {summary.ran} ran, {summary.skipped} already finished, "
              f"{len(summary.failed)} failed, {summary.total} points in {summary.wall_time_s:.0f} s -> {summary.path}",
              soft_wrap=True)
    if summary.failed:
        raise Failure(f"{len(summary.failed)} run(s) failed (listed above); run the sweep again to retry them")


# ----- report -----------------------------------------------------------------------------------
@main.command("report")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write summary.csv, report.md and the plots (default: PATH/report).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Fraction of the achievable ceiling that counts as fitted (for the capacity frontier).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the aggregated data as JSON.")
@click.option("--jsonl", "jsonl", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results compactly to this JSON Lines file (histories dropped).")
@click.option("--readme", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write report.md into this Markdown file, between '<!-- memtasks-report:start -->' and "
                   "'<!-- memtasks-report:end -->' markers (appended if absent).")
def report_cmd(path: Path, out_dir: Path | None, threshold: float, no_plots: bool, as_json: bool,
               jsonl: Path | None, readme: Path | None) -> None:
    """Aggregate a sweep's results over seeds: tables, CSV, plots and the capacity frontier.

    PATH is a sweep folder (runs/NAME) or a JSON Lines file of results.
    """
    from memtasks.report import (aggregate, frontier, load_runs, markdown_report, report_data, rich_tables,
                                 write_csv, write_plots)

    runs, problems = load_runs(path)
    for line in problems:
        err.print(f"[yellow]Warning:[/] skipped {line}", soft_wrap=True)
    groups = aggregate(runs)
    rows = frontier(groups, threshold)
    target = out_dir or ((path if path.is_dir() else path.parent) / "report")
    _writable_dir(target)
    written = [write_csv(groups, target / "summary.csv")]
    md = target / "report.md"
    md.write_text(markdown_report(groups, rows))
    written.append(md)
    if not no_plots:
        written += write_plots(groups, rows, target)
    if jsonl is not None:
        from memtasks.sweep import export_jsonl

        export_jsonl(runs, jsonl)
        written.append(jsonl)
    if readme is not None:
        _replace_marked(readme, md.read_text())
        written.append(readme)
    if as_json:
        click.echo(json.dumps(report_data(groups, rows), indent=1))
        return
    for table in rich_tables(groups, rows):
        out.print(table)
    inside = [p.name for p in written if p.parent == target]
    elsewhere = [str(p) for p in written if p.parent != target]
    out.print(f"{len(runs)} runs in {len(groups)} groups; wrote {', '.join(inside)} to {target}"
              + "".join(f"; wrote {p}" for p in elsewhere), soft_wrap=True)


REPORT_START, REPORT_END = "<!-- memtasks-report:start -->", "<!-- memtasks-report:end -->"


def _replace_marked(path: Path, body: str) -> None:
    """Put ``body`` between the report markers of ``path`` (keeping everything else byte for byte)."""
    text = path.read_text() if path.exists() else ""
    section = f"{REPORT_START}\n{body.rstrip()}\n{REPORT_END}"
    start, end = text.find(REPORT_START), text.find(REPORT_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(REPORT_END):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
    path.write_text(text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
