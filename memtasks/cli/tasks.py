"""The task commands: ``list`` the registry, ``show`` one task, ``generate`` its data into an .npz file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.table import Table

import memtasks
from memtasks.cli.common import KWARG_OPTION, BadInput, err, make_task, out, print_teacher_note
from memtasks.errors import MemtasksError
from memtasks.tasks.registration import TaskSpec
from memtasks.tasks.task import Task, format_bytes


# ----- list -------------------------------------------------------------------------------------
@click.command("list")
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


@click.command("show")
@click.argument("task_id", metavar="ID")
@KWARG_OPTION
@click.option("--example", "example", type=click.IntRange(min=0), default=0, show_default=True,
              help="Index of the training example to render.")
@click.option("--rows", type=click.IntRange(min=4), default=24, show_default=True,
              help="Most steps shown in the rendered example.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of tables.")
def show_cmd(task_id: str, kwargs: tuple[str, ...], example: int, rows: int, as_json: bool) -> None:
    """Show a task: merged kwargs, shapes, achievable ceiling and a rendered example."""
    task = make_task(task_id, kwargs)
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
        print_teacher_note()
    out.print(_render_example(task, example, rows))


# ----- generate ---------------------------------------------------------------------------------
@click.command("generate")
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
    task = make_task(task_id, kwargs)
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
