"""Built-in cells: the contract (shape, zero start, parameter counts, gradients) and the published equations.

The custom cells are checked against step-by-step numpy references written from the papers' equations, with
one explicit matrix per gate copied out of the module, so a wrong nonlinearity, gate or block order fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memtasks.models import cells
from memtasks.models.cells import BUILTIN_CELLS, core_param_formula

NAMES = list(BUILTIN_CELLS)

# (input_size, hidden_size, length): I < N, I == N, I > N, and a one-step sequence.
SIZES = [(3, 5, 4), (6, 6, 5), (7, 4, 3), (2, 3, 1)]

# The core parameter counts as the papers' equations give them, written out independently of cells.py.
EXPLICIT_COUNTS = {
    "rnn": lambda i, n, t: n * n + n * i + n + n,
    "irnn": lambda i, n, t: n * n + n * i + n + n,
    "lstm": lambda i, n, t: 4 * (n * n + n * i + n + n),
    "gru": lambda i, n, t: 3 * (n * n + n * i + n + n),
    "ugrnn": lambda i, n, t: 2 * n * (n + i + 1),
    "intersection": lambda i, n, t: 4 * n * (n + i + 1) + (0 if i == n else n * i),
    "nlstm": lambda i, n, t: 4 * n * (n + i + 1) + 4 * n * (2 * n + 1),
    "mlp": lambda i, n, t: t * i * n + n,
}


def build(name: str, input_size: int, hidden_size: int, length: int) -> torch.nn.Module:
    factory, _ = BUILTIN_CELLS[name]
    if name == "mlp":
        return factory(input_size, hidden_size, length=length)
    return factory(input_size, hidden_size)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_(module: torch.nn.Module, seed: int = 0, scale: float = 0.7) -> None:
    """Replace every parameter by N(0, scale²) so no block is special (zero biases hide order mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


# ---------------------------------------------------------------------------------------------------------
# The contract, for every built-in


def test_builtin_names_in_order():
    assert NAMES == ["rnn", "irnn", "lstm", "gru", "ugrnn", "intersection", "nlstm", "mlp"]
    for name, (factory, description) in BUILTIN_CELLS.items():
        assert getattr(cells, name) is factory
        assert description and "\n" not in description


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "I{}-N{}-L{}".format(*s))
def test_forward_shape(name, sizes):
    i, n, length = sizes
    cell = build(name, i, n, length)
    y = cell(torch.randn(3, length, i))
    assert isinstance(y, torch.Tensor)
    assert y.shape == (3, length, n)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "I{}-N{}-L{}".format(*s))
def test_param_count_matches_formula(name, sizes):
    i, n, length = sizes
    cell = build(name, i, n, length)
    count = n_params(cell)
    assert count == EXPLICIT_COUNTS[name](i, n, length)
    assert count == core_param_formula(name, i, n, length)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sizes", [(3, 5, 4), (6, 6, 5)], ids=["I!=N", "I==N"])
def test_gradients_reach_every_parameter(name, sizes):
    i, n, length = sizes
    torch.manual_seed(0)
    cell = build(name, i, n, length)
    y = cell(torch.randn(8, length, i))
    (y * torch.randn_like(y)).sum().backward()
    for pname, p in cell.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} got an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_parameters(name):
    def params(seed):
        torch.manual_seed(seed)
        return [p.detach().clone() for p in build(name, 3, 5, 4).parameters()]

    first, again, other = params(0), params(0), params(1)
    assert len(first) == len(again) > 0
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_width_is_a_value_error(name):
    cell = build(name, 3, 5, 4)
    with pytest.raises(ValueError, match=r"\(batch, length, 3\)"):
        cell(torch.randn(2, 4, 4))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_fused_cells_start_from_zero_state(name):
    cell = build(name, 3, 5, 4)
    x = torch.randn(2, 4, 3)
    h0 = torch.zeros(1, 2, 5)
    state = (h0, torch.zeros_like(h0)) if name == "lstm" else h0
    expected, _ = cell.layer(x, state)
    assert torch.equal(cell(x), expected)
    # a nonzero state would change the output, so the comparison above has teeth
    other = (h0 + 1, torch.zeros_like(h0)) if name == "lstm" else h0 + 1
    assert not torch.allclose(cell.layer(x, other)[0], expected)


def test_rnn_is_tanh_and_irnn_is_relu_with_identity_init():
    assert cells.rnn(3, 5).layer.nonlinearity == "tanh"
    torch.manual_seed(0)
    cell = cells.irnn(3, 5)
    assert cell.layer.nonlinearity == "relu"
    assert torch.equal(cell.layer.weight_hh_l0, torch.eye(5))
    assert torch.equal(cell.layer.bias_ih_l0, torch.zeros(5))
    assert torch.equal(cell.layer.bias_hh_l0, torch.zeros(5))
    assert cell.layer.weight_ih_l0.abs().sum() > 0  # the input weights keep a random init


def test_core_param_formula_rejects_unknown_and_needs_length_for_mlp():
    with pytest.raises(ValueError, match="no parameter formula"):
        core_param_formula("transformer", 3, 5)
    with pytest.raises(ValueError, match="needs length"):
        core_param_formula("mlp", 3, 5)


# ---------------------------------------------------------------------------------------------------------
# Custom cells against step-by-step references of the published equations (float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def blocks(t: torch.Tensor, k: int) -> list[np.ndarray]:
    """Split a stacked weight (k·N, ·) or bias (k·N,) into its k per-gate numpy blocks."""
    return [b.copy() for b in np.split(t.detach().numpy(), k, axis=0)]


def reference_ugrnn(cell: cells.UGRNN, x: np.ndarray) -> np.ndarray:
    W_cx, W_gx = blocks(cell.weight_ih, 2)
    W_ch, W_gh = blocks(cell.weight_hh, 2)
    b_c, b_g = blocks(cell.bias, 2)
    h = np.zeros((x.shape[0], cell.hidden_size))
    out = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        c = np.tanh(x_t @ W_cx.T + h @ W_ch.T + b_c)
        g = sigmoid(x_t @ W_gx.T + h @ W_gh.T + b_g)
        h = g * h + (1 - g) * c
        out.append(h)
    return np.stack(out, axis=1)


def reference_intersection(cell: cells.IntersectionRNN, x: np.ndarray) -> np.ndarray:
    W_yx, W_hx, W_gyx, W_ghx = blocks(cell.weight_ih, 4)
    W_yh, W_hh, W_gyh, W_ghh = blocks(cell.weight_hh, 4)
    b_y, b_h, b_gy, b_gh = blocks(cell.bias, 4)
    P = None if cell.skip is None else cell.skip.detach().numpy().copy()
    h = np.zeros((x.shape[0], cell.hidden_size))
    out = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        y_in = np.maximum(0.0, x_t @ W_yx.T + h @ W_yh.T + b_y)
        h_in = np.tanh(x_t @ W_hx.T + h @ W_hh.T + b_h)
        g_y = sigmoid(x_t @ W_gyx.T + h @ W_gyh.T + b_gy)
        g_h = sigmoid(x_t @ W_ghx.T + h @ W_ghh.T + b_gh)
        skip = x_t if P is None else x_t @ P.T
        out.append(g_y * skip + (1 - g_y) * y_in)
        h = g_h * h + (1 - g_h) * h_in
    return np.stack(out, axis=1)


def reference_nlstm(cell: cells.NestedLSTM, x: np.ndarray) -> np.ndarray:
    W_ix, W_fx, W_cx, W_ox = blocks(cell.weight_ih, 4)
    W_ih, W_fh, W_ch, W_oh = blocks(cell.weight_hh, 4)
    b_i, b_f, b_c, b_o = blocks(cell.bias, 4)
    U_ix, U_fx, U_cx, U_ox = blocks(cell.inner_weight_ih, 4)
    U_ih, U_fh, U_ch, U_oh = blocks(cell.inner_weight_hh, 4)
    d_i, d_f, d_c, d_o = blocks(cell.inner_bias, 4)
    zeros = np.zeros((x.shape[0], cell.hidden_size))
    h, c, c_inner = zeros, zeros, zeros
    out = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        i = sigmoid(x_t @ W_ix.T + h @ W_ih.T + b_i)
        f = sigmoid(x_t @ W_fx.T + h @ W_fh.T + b_f)
        o = sigmoid(x_t @ W_ox.T + h @ W_oh.T + b_o)
        x_tilde = i * (x_t @ W_cx.T + h @ W_ch.T + b_c)  # σ_c = identity at the outer level
        h_tilde_prev = f * c
        i_in = sigmoid(x_tilde @ U_ix.T + h_tilde_prev @ U_ih.T + d_i)
        f_in = sigmoid(x_tilde @ U_fx.T + h_tilde_prev @ U_fh.T + d_f)
        o_in = sigmoid(x_tilde @ U_ox.T + h_tilde_prev @ U_oh.T + d_o)
        g_in = np.tanh(x_tilde @ U_cx.T + h_tilde_prev @ U_ch.T + d_c)
        c_inner = f_in * c_inner + i_in * g_in
        c = o_in * np.tanh(c_inner)  # outer memory = inner hidden state
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


REFERENCES = {"ugrnn": reference_ugrnn, "intersection": reference_intersection, "nlstm": reference_nlstm}


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("sizes", [(3, 5, 6), (4, 4, 6), (6, 3, 5)], ids=["I<N", "I==N", "I>N"])
def test_custom_cell_matches_reference_equations(name, sizes):
    i, n, length = sizes
    cell = build(name, i, n, length).double()
    randomize_(cell, seed=1)
    x = torch.randn(4, length, i, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    got = cell(x).detach().numpy()
    want = REFERENCES[name](cell, x.numpy())
    assert got.shape == want.shape == (4, length, n)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # the outputs move over time, so matching all steps checks the recurrence, not just step 1
    assert np.abs(want[:, -1] - want[:, 0]).max() > 1e-3


def test_intersection_projects_the_skip_path_only_when_widths_differ():
    assert cells.intersection(4, 4).skip is None
    cell = cells.intersection(3, 5)
    assert cell.skip is not None and cell.skip.shape == (5, 3)
    assert cell.weight_ih.shape == (20, 3)  # the gates and candidates read x_t itself, not P x_t


@pytest.mark.parametrize("name", list(REFERENCES))
def test_custom_cell_gate_biases_start_at_one(name):
    cell = build(name, 3, 5, 4)
    n = 5
    bias = cell.bias.detach()
    if name == "ugrnn":
        keep = bias[n:]  # b_g
    elif name == "intersection":
        keep = bias[2 * n:]  # b_gy, b_gh
    else:
        keep = torch.cat([bias[n:2 * n], cell.inner_bias.detach()[n:2 * n]])  # outer and inner forget biases
    assert torch.equal(keep, torch.ones_like(keep))
    others = bias.clone()
    others[{"ugrnn": slice(n, None), "intersection": slice(2 * n, None), "nlstm": slice(n, 2 * n)}[name]] = 0
    assert torch.equal(others, torch.zeros_like(others))


# ---------------------------------------------------------------------------------------------------------
# mlp: causal by construction


def test_mlp_later_inputs_do_not_change_earlier_outputs():
    torch.manual_seed(0)
    length = 6
    cell = cells.mlp(3, 8, length=length)
    x = torch.randn(5, length, 3)
    y = cell(x)
    for t in range(length):
        later = x.clone()
        later[:, t + 1:] += torch.randn_like(later[:, t + 1:]) * 3
        assert torch.equal(cell(later)[:, : t + 1], y[:, : t + 1]), f"output at step {t} saw a later input"
        now = x.clone()
        now[:, t] += torch.randn_like(now[:, t]) * 3
        changed = cell(now)
        assert not torch.allclose(changed[:, t], y[:, t]), f"output at step {t} ignores input {t}"
        assert torch.equal(changed[:, :t], y[:, :t])


def test_mlp_gradient_to_later_inputs_is_exactly_zero():
    torch.manual_seed(0)
    length = 6
    cell = cells.mlp(3, 8, length=length)
    for t in range(length):
        x = torch.randn(5, length, 3, requires_grad=True)
        cell(x)[:, t].sum().backward()
        assert torch.count_nonzero(x.grad[:, t + 1:]) == 0
        assert torch.count_nonzero(x.grad[:, : t + 1]) > 0


def test_mlp_matches_flattened_prefix_definition():
    torch.manual_seed(0)
    length, i, n = 4, 3, 5
    cell = cells.mlp(i, n, length=length).double()
    randomize_(cell)
    x = torch.randn(2, length, i, dtype=torch.float64)
    W = cell.weight.detach().numpy()  # (T, N, I): W_s for s = 1..T
    b = cell.bias.detach().numpy()
    xs = x.numpy()
    for t in range(length):
        # one hidden layer over the flattened sequence with every step after t zeroed
        padded = xs.copy()
        padded[:, t + 1:] = 0.0
        flat_w = np.concatenate([W[s] for s in range(length)], axis=1)  # (N, T·I)
        want = np.maximum(0.0, padded.reshape(2, -1) @ flat_w.T + b)
        np.testing.assert_allclose(cell(x)[:, t].detach().numpy(), want, rtol=0, atol=1e-12)


def test_mlp_wrong_length_is_a_value_error():
    cell = cells.mlp(3, 5, length=6)
    with pytest.raises(ValueError, match="built for length=6 steps"):
        cell(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="length"):
        cells.mlp(3, 5, length=0)
