"""Connectivity (Madsen, "Visualizing memorization in RNNs", Distill 2019): how strongly each scored output
depends on each input step.

For an example and a scored output step s, the connectivity to input step t is the gradient norm
``‖∂ out_s / ∂ e_t‖``, where ``e_t`` is the encoded input at step t (the shared encoder's output, so categorical and
real inputs are treated alike) and ``out_s`` is the logit of the target class (categorical targets) or the
predicted vector (real targets; the norm is then the Frobenius norm of the Jacobian block). Averaged over examples
as a function of the distance s − t, it shows how far back a trained cell reaches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memtasks.data.batching import make_batch
from memtasks.data.taskdata import TaskData
from memtasks.errors import MemtasksError
from memtasks.models.sequence_model import SequenceModel


class ConnectivityError(MemtasksError, ValueError):
    """A model or result that connectivity cannot be computed for."""


def _outputs(model: SequenceModel, embedded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, S, D) outputs at the scored steps: the target class's logit (D = 1) or the predicted vector."""
    pred = model.readout(model.cell(embedded)[:, model.scored])
    if model.layout.y_type == "cat":
        return pred.gather(-1, targets[:, model.scored].unsqueeze(-1))
    return pred


def connectivity(model: SequenceModel, data: TaskData, index: Any = None) -> np.ndarray:
    """``(n, S, L)`` gradient norms ``‖∂ out_s / ∂ e_t‖`` for the examples ``index`` of ``data`` (default: all):
    S scored output steps, L input steps."""
    index = np.arange(len(data)) if index is None else np.asarray(index, dtype=np.int64)
    batch = make_batch(data, index)
    model.eval()
    embedded = model.encoder(batch.tokens, batch.values).detach().requires_grad_(True)
    out = _outputs(model, embedded, batch.targets)
    n, s_steps, dims = out.shape
    result = np.zeros((n, s_steps, embedded.shape[1]))
    for s in range(s_steps):
        squares = torch.zeros(n, embedded.shape[1], dtype=torch.float64)
        for d in range(dims):
            # Examples do not interact, so the gradient of the sum holds each example's own gradient.
            (grad,) = torch.autograd.grad(out[:, s, d].sum(), embedded, retain_graph=True)
            squares += grad.double().pow(2).sum(-1)
        result[:, s] = squares.sqrt().numpy()
    return result


def finite_difference(model: SequenceModel, data: TaskData, example: int, eps: float = 1e-3) -> np.ndarray:
    """``(S, L)`` connectivity of one example by central differences on the encoded inputs (a check of
    :func:`connectivity`; slow, for tiny models)."""
    batch = make_batch(data, np.array([example]))
    model.eval()
    with torch.no_grad():
        base = model.encoder(batch.tokens, batch.values).double()
        model_d = model.double()
        length, width = base.shape[1], base.shape[2]
        rows = []
        for t in range(length):
            for k in range(width):
                step = torch.zeros_like(base)
                step[0, t, k] = eps
                up = _outputs(model_d, base + step, batch.targets)
                down = _outputs(model_d, base - step, batch.targets)
                rows.append(((up - down) / (2 * eps))[0])  # (S, D)
        model.float()
    jac = torch.stack(rows).reshape(length, width, *rows[0].shape)  # (L, E, S, D)
    return jac.pow(2).sum(dim=(1, 3)).sqrt().T.numpy()


def by_distance(conn: np.ndarray, scored: np.ndarray) -> dict[int, float]:
    """Mean connectivity by distance ``s − t`` (in steps) from each scored output step back to each input step
    at or before it; ``scored`` holds the sequence positions of the S scored steps."""
    sums: dict[int, list[float]] = {}
    for j, s in enumerate(scored):
        for t in range(int(s) + 1):
            sums.setdefault(int(s) - t, []).append(float(conn[:, j, t].mean()))
    return {d: float(np.mean(v)) for d, v in sorted(sums.items())}


def model_from_result(path: str | Path) -> tuple[SequenceModel, Any]:
    """The trained model and its task, rebuilt from a ``memtasks run --save-model`` result file and the
    safetensors weights beside it (nothing is unpickled)."""
    path = Path(path)
    try:
        result = json.loads(path.read_text())
        weights = path.parent / (result.get("model_file") or "")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConnectivityError(f"{path}: not a readable RunResult ({exc})") from None
    if not result.get("model_file") or not weights.is_file():
        raise ConnectivityError(f"{path}: no weights beside it; run it with memtasks run --save-model")
    return model_from_weights(result, weights, str(path))


def model_from_weights(result: dict[str, Any], weights: Path, source: str = "result") -> tuple[SequenceModel, Any]:
    """The model a RunResult (as a dict) describes, with the safetensors ``weights`` loaded strictly, and its
    task (the data regenerated and checked against the result's fingerprint)."""
    from safetensors.torch import load_file

    import memtasks
    from memtasks.models.saved import load_saved

    try:
        task = memtasks.make(result["task"]["id"], **result["task"]["kwargs"])
        fingerprint = result["task"]["fingerprint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConnectivityError(f"{source}: not a readable RunResult ({exc})") from None
    if not Path(weights).is_file():
        raise ConnectivityError(f"{source}: its weights {weights} do not exist")
    if task.train.fingerprint != fingerprint:
        raise ConnectivityError(f"{source}: its task no longer regenerates the data it was trained on")
    return load_saved(result, load_file(str(weights)), layout=task.layout), task
