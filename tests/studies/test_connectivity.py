"""Connectivity (Distill's ‖∂ output / ∂ input‖ per pair of steps): checked against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import memtasks
from memtasks.models.registry import cell_spec
from memtasks.models.sequence_model import SequenceModel
from memtasks.studies.connectivity import (
    ConnectivityError,
    by_distance,
    connectivity,
    finite_difference,
    model_from_result,
)
from tests.helpers import run


def _tiny(task_id: str) -> memtasks.Task:
    kw = {"seq_len": 5, "n_examples": 6, "n_test": 2}
    if task_id.startswith("Seq2Seq"):
        kw["out_len"] = 3
    return memtasks.make(task_id, **kw)


@pytest.mark.parametrize("task_id", ["NextStep-CatCat-v0", "Seq2Vec-RealReal-v0", "Seq2Seq-CatReal-v0"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "mlp"])
def test_connectivity_matches_finite_differences(task_id, cell):
    torch.manual_seed(0)
    task = _tiny(task_id)
    model = SequenceModel(task.layout, cell_spec(cell), 5, embed_dim=3)
    conn = connectivity(model, task.train)
    assert conn.shape == (6, int(task.layout.mask.sum()), task.layout.length)
    for example in (0, 3):
        fd = finite_difference(model, task.train, example)
        np.testing.assert_allclose(conn[example], fd, rtol=1e-5, atol=1e-7)
    assert conn.max() > 0


def test_a_recurrent_output_does_not_depend_on_later_inputs():
    torch.manual_seed(1)
    task = _tiny("NextStep-CatCat-v0")
    conn = connectivity(SequenceModel(task.layout, cell_spec("gru"), 4, embed_dim=3), task.train)
    scored = task.layout.mask.nonzero()[0]
    for j, s in enumerate(scored):
        assert np.all(conn[:, j, s + 1:] == 0) and np.all(conn[:, j, : s + 1] > 0)
    curve = by_distance(conn, scored)
    assert list(curve) == list(range(task.layout.length))
    assert curve[0] > curve[max(curve)]  # an untrained GRU forgets: nearer inputs weigh more


def test_a_saved_run_is_rebuilt_for_connectivity(tmp_path):
    result = run("run", "NextStep-CatCat-v0", "--cell", "gru", "--hidden", "4", "--embed-dim", "3", "-k", "seq_len=5",
                 "-k", "n_examples=8", "-k", "n_test=2", "--lr", "0.01", "--max-steps", "20", "--save-model",
                 "--out", str(tmp_path), "--no-progress")
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.json")
    model, task = model_from_result(path)
    assert connectivity(model, task.train, [0, 1]).shape == (2, 5, 5)
    path.with_suffix(".safetensors").unlink()
    with pytest.raises(ConnectivityError, match="no weights beside it"):
        model_from_result(path)
