"""The ``run`` command: train one cell on one task, save its RunResult and print a summary table."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from memtasks.cli.common import (
    KWARG_OPTION,
    BadInput,
    err,
    make_task,
    out,
    parse_json_pairs,
    print_teacher_note,
    writable_dir,
)
from memtasks.fitting.protocol import Protocol
from memtasks.fitting.result import run_name


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
    if task.get("n_test") == 0:
        held_out = "n/a (n_test=0)"
    else:
        chance = f" (chance {task['chance']:.4f})" if cat else " (chance 0)"
        held_out = _fmt(te.get("accuracy" if cat else "r2")) + chance
    table.add_row(f"held-out test {metric}", held_out)
    table.add_row("bits stored (at the ceiling)", f"{_fmt(tr.get('bits'), ',.1f')} ({ceil['bits']:,.1f})")
    table.add_row("bits per parameter", _fmt(best["bits_per_param"] if best else None))
    reach = result.epochs_to_ceiling
    table.add_row("epochs to 50 / 90 / 100 % of ceiling",
                  " / ".join("–" if reach[k] is None else str(reach[k]) for k in ("50%", "90%", "100%")))
    table.add_row("wall time (training)", f"{result.wall_time_s:.1f} s ({result.train_time_s:.1f} s)")
    return table


_DEFAULTS = Protocol  # dataclass field defaults are class attributes; an instance would import torch


@click.command("run")
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
    # deferred: torch, Lightning and the cell registry take seconds to import (keeps start-up fast)
    import torch

    from memtasks.fitting.trainer import fit, resolve_hidden
    from memtasks.models.registry import cell_spec

    if threads is not None:
        if threads < 1:
            raise BadInput(f"--threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)
    if embed_dim < 1:
        raise BadInput(f"--embed-dim must be a positive integer, got {embed_dim}")
    protocol = Protocol(lr=lr, batch_size=batch_size, max_epochs=max_epochs, patience=patience,
                        grad_clip=grad_clip, seed=seed, device=device)
    spec = cell_spec(cell)
    ckw = parse_json_pairs(cell_kwargs)
    task = make_task(task_id, kwargs)
    hidden_size = resolve_hidden(task, spec, hidden, n_params, embed_dim, ckw)
    writable_dir(out_dir)
    stem = run_name(task.spec.id, spec.name, hidden_size, seed,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = out_dir / f"{stem}.json"
    n = 1
    while path.exists() or path.with_suffix(".safetensors").exists():
        path = out_dir / f"{stem}-{n}.json"
        n += 1
    show = sys.stderr.isatty() and not as_json if progress is None else progress
    with err.status(f"generating {task.spec.id}…") if show else nullcontext():
        task.train.ceiling, task.test  # noqa: B018 - generate before the progress bar starts
    result = fit(task, spec, hidden=None if n_params is not None else hidden_size, params=n_params,
                 embed_dim=embed_dim, cell_kwargs=ckw, protocol=protocol, progress=show,
                 model_path=path.with_suffix(".safetensors") if save_model else None, result_path=path)
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
            print_teacher_note()
    if result.status == "interrupted":
        err.print(f"Interrupted: the partial result is saved in {path}", soft_wrap=True)
        sys.exit(130)
