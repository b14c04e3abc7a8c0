"""The batched kernels and the stacked model compute exactly what K separate cells and models compute."""

from __future__ import annotations

import pytest
import torch

import memtasks
from memtasks.models.cells import BUILTIN_CELLS
from memtasks.models.kernels import KERNELS
from memtasks.models.registry import cell_spec
from memtasks.models.sequence_model import SequenceModel
from memtasks.models.stacked import StackedModel


@pytest.mark.parametrize("name", list(BUILTIN_CELLS))
@pytest.mark.parametrize("sizes", [(5, 7), (6, 6)])  # +RNN projects its skip path only when I != N
def test_kernels_match_the_cells_outputs_and_gradients(name, sizes):
    torch.manual_seed(0)
    i, n = sizes
    cells = [cell_spec(name).build(i, n, 6).double() for _ in range(3)]  # rnn, irnn, lstm, gru: torch's fused
    x = torch.randn(3, 4, 6, i, dtype=torch.float64)
    stacked = {p: torch.stack([dict(c.named_parameters())[p] for c in cells]).detach().requires_grad_()
               for p, _ in cells[0].named_parameters()}
    out = KERNELS[name](stacked, x)
    ref = torch.stack([c(x[k]) for k, c in enumerate(cells)])
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    out.square().sum().backward()
    ref.square().sum().backward()
    for p, w in stacked.items():
        grads = torch.stack([dict(c.named_parameters())[p].grad for c in cells])
        torch.testing.assert_close(w.grad, grads, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("task_id", ["NextStep-CatCat-v0", "Seq2Seq-RealCat-v0", "Vec2Seq-CatReal-v0"])
def test_a_stack_of_models_predicts_what_each_model_predicts(task_id):
    task = memtasks.make(task_id, seq_len=5, n_examples=6, n_test=0, **({"out_len": 2} if "Seq2Seq" in task_id
                                                                          else {}))
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(SequenceModel(task.layout, cell_spec("ugrnn"), 7, embed_dim=4))
    stack = StackedModel(models)
    batch = next(iter(task.train.batches(6)))
    tokens = None if batch.tokens is None else batch.tokens.expand(3, *batch.tokens.shape)
    values = None if batch.values is None else batch.values.expand(3, *batch.values.shape)
    with torch.no_grad():
        torch.testing.assert_close(stack(tokens, values), torch.stack([m(batch) for m in models]))
        stack.keep(torch.tensor([2, 0]))
        torch.testing.assert_close(stack(None if tokens is None else tokens[:2], None if values is None else
                                         values[:2]), torch.stack([models[2](batch), models[0](batch)]))
    assert stack.state(0).keys() == dict(models[2].named_parameters()).keys()
    assert all(torch.equal(stack.state(0)[k], v) for k, v in models[2].state_dict().items())


@pytest.mark.parametrize("name", list(BUILTIN_CELLS))
def test_a_kernel_keeps_only_the_steps_asked_for(name):
    torch.manual_seed(0)
    cells = [cell_spec(name).build(5, 6, 7).double() for _ in range(2)]
    stacked = {p: torch.stack([dict(c.named_parameters())[p] for c in cells]).detach()
               for p, _ in cells[0].named_parameters()}
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    everything = KERNELS[name](stacked, x)
    torch.testing.assert_close(KERNELS[name](stacked, x, keep=slice(3, 7)), everything[:, :, 3:7])
    assert KERNELS[name](stacked, x, keep=slice(6, 7)).shape == (2, 3, 1, 6)


def test_scored_steps_out_of_one_run_are_gathered():
    task = memtasks.make("Seq2Seq-CatCat-v0", seq_len=4, out_len=3, n_examples=5, n_test=0)
    models = [SequenceModel(task.layout, cell_spec("gru"), 5, embed_dim=3) for _ in range(2)]
    stack = StackedModel(models)
    assert stack.scored_steps == slice(4, 7)  # the answer steps of a Seq2Seq layout are one run
    batch = next(iter(task.train.batches(5)))
    tokens = batch.tokens.expand(2, *batch.tokens.shape)
    with torch.no_grad():
        sliced = stack(tokens, None)
        stack.scored_steps = None  # what a layout with scattered scored steps takes: a gather
        torch.testing.assert_close(stack(tokens, None), sliced)
