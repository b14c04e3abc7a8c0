"""A trained model back from what a run recorded: the model its result describes, with saved weights loaded.

Used wherever a saved model is measured again — the leaderboard's verifier, the connectivity analysis,
``fit_model`` — so all of them build it the same way. Weights come as a state dict (read from safetensors by the
caller: nothing here unpickles anything) and must fit the model exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from memtasks.data.layout import Layout
from memtasks.models.registry import CellError, CellSpec, cell_spec
from memtasks.models.sequence_model import SequenceModel


def load_saved(result: Mapping[str, Any], state: Mapping[str, torch.Tensor], *, layout: Layout | None = None,
               cell: CellSpec | None = None) -> SequenceModel:
    """The :class:`SequenceModel` that ``result`` (a RunResult's dict) describes — its task's layout, its cell,
    hidden size, encoder width and cell kwargs — with ``state`` loaded strictly, in evaluation mode.

    ``layout`` and ``cell`` replace the result's own when the caller has them already (a regenerated task, a cell
    it resolved). A state that does not fit the model raises :class:`CellError` with the first reason."""
    c = result["cell"]
    layout = layout or Layout.from_dict(result["task"]["layout"])
    model = SequenceModel(layout, cell or cell_spec(c["name"]), c["hidden_size"], embed_dim=c["embed_dim"],
                          cell_kwargs=c["kwargs"], check=False)
    try:
        model.load_state_dict(dict(state), strict=True)
    except (RuntimeError, ValueError) as exc:
        raise CellError(f"the weights do not fit the model: {str(exc).splitlines()[0]}") from None
    return model.eval()
