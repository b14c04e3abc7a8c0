"""The built-in cells' recurrences for K models at once: stacked weights, batched matmuls.

Each kernel maps inputs ``x`` (K, B, L, I) and a dict of stacked parameters (the single cell's parameter
names, each with a leading model axis K) to outputs (K, B, L, N), from a zero state; ``keep`` (a slice of
the steps) returns only those steps' outputs, so steps that are never scored are not stacked. Model k reads only
its own slice of every weight, so K models computed together give what K separate cells give; the
per-step work is one ``baddbmm`` over the model axis instead of K small matmuls. The custom cells of
:mod:`memtasks.models.cells` run these same kernels with K = 1; the fused torch cells (rnn, irnn, lstm,
gru) have their own kernels here, checked against torch's modules in the tests.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Params = dict[str, torch.Tensor]
Kernel = Callable[..., torch.Tensor]
#: Every step's output.
ALL = slice(None)


def project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight^T + bias`` per model: (K, ..., I), (K, G, I), (K, G) -> (K, ..., G)."""
    k, i = x.shape[0], x.shape[-1]
    flat = x.reshape(k, -1, i)
    out = torch.bmm(flat, weight.transpose(1, 2)) if bias is None else \
        torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.reshape(*x.shape[:-1], weight.shape[1])


def _steps(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The input half of every step, L x (K, B, G): all steps in one matmul, then unbound over time."""
    return project(x, weight, bias).unbind(dim=2)


def _begin(x: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor
           ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    """The input half of every step, the zero state h_0 (K, B, N) and the recurrent weights transposed."""
    return _steps(x, w_ih, bias), x.new_zeros(x.shape[0], x.shape[1], w_hh.shape[-1]), w_hh.transpose(1, 2)


def _stack(outputs: list[torch.Tensor], x: torch.Tensor, hidden: int, keep: slice) -> torch.Tensor:
    """(K, B, L', N) from the per-step outputs at the steps ``keep``; (K, B, 0, N) for an empty sequence."""
    kept = outputs[keep]
    return torch.stack(kept, dim=2) if kept else x.new_zeros(*x.shape[:2], 0, hidden)


def _elman(act: Callable[[torch.Tensor], torch.Tensor]) -> Kernel:
    def kernel(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
        xs, h, w = _begin(x, p["layer.weight_ih_l0"], p["layer.bias_ih_l0"] + p["layer.bias_hh_l0"],
                          p["layer.weight_hh_l0"])
        outputs = []
        for xt in xs:
            h = act(torch.baddbmm(xt, h, w))
            outputs.append(h)
        return _stack(outputs, x, h.shape[-1], keep)

    return kernel


def lstm(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
    """torch's LSTM: gates [i; f; g; o], c_t = f ⊙ c + i ⊙ g, h_t = o ⊙ tanh(c_t)."""
    xs, h, w = _begin(x, p["layer.weight_ih_l0"], p["layer.bias_ih_l0"] + p["layer.bias_hh_l0"],
                      p["layer.weight_hh_l0"])
    c = torch.zeros_like(h)
    outputs = []
    n = h.shape[-1]
    for xt in xs:
        gates = torch.baddbmm(xt, h, w)
        # one sigmoid over all four blocks (the g block's is unused) beats three calls on strided slices
        i, f, _, o = torch.sigmoid(gates).chunk(4, dim=-1)
        c = f * c + i * torch.tanh(gates[..., 2 * n:3 * n])
        h = o * torch.tanh(c)
        outputs.append(h)
    return _stack(outputs, x, n, keep)


def gru(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
    """torch's GRU: r, z = σ(·), n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h_t = (1 - z) ⊙ n + z ⊙ h."""
    xs, h, w = _begin(x, p["layer.weight_ih_l0"], p["layer.bias_ih_l0"], p["layer.weight_hh_l0"])
    b_hh = p["layer.bias_hh_l0"].unsqueeze(1)
    outputs = []
    for xt in xs:
        hh = torch.baddbmm(b_hh, h, w)
        n = h.shape[-1]
        r, z = torch.sigmoid(xt[..., :2 * n] + hh[..., :2 * n]).chunk(2, dim=-1)
        h = (1 - z) * torch.tanh(xt[..., 2 * n:] + r * hh[..., 2 * n:]) + z * h
        outputs.append(h)
    return _stack(outputs, x, h.shape[-1], keep)


def ugrnn(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
    """UGRNN: [c; g] = W [x_t, h_{t-1}] + b, g ← σ(g), h_t = g ⊙ h + (1 - g) ⊙ tanh(c)."""
    xs, h, w = _begin(x, p["weight_ih"], p["bias"], p["weight_hh"])
    outputs = []
    for xt in xs:
        c_pre, g_pre = torch.baddbmm(xt, h, w).chunk(2, dim=-1)
        g = torch.sigmoid(g_pre)
        h = g * h + (1 - g) * torch.tanh(c_pre)
        outputs.append(h)
    return _stack(outputs, x, h.shape[-1], keep)


def intersection(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
    """+RNN: y_t = g_y ⊙ s_t + (1 - g_y) ⊙ ReLU(·), h_t = g_h ⊙ h + (1 - g_h) ⊙ tanh(·); outputs y_t."""
    xs, h, w = _begin(x, p["weight_ih"], p["bias"], p["weight_hh"])
    skip_w = p.get("skip")
    skips = (x if skip_w is None else project(x, skip_w, None)).unbind(dim=2)
    outputs = []
    for xt, st in zip(xs, skips, strict=True):
        pre = torch.baddbmm(xt, h, w)
        y_pre, h_pre, _, _ = pre.chunk(4, dim=-1)
        g_y, g_h = torch.sigmoid(pre[..., 2 * h.shape[-1]:]).chunk(2, dim=-1)
        outputs.append(g_y * st + (1 - g_y) * torch.relu(y_pre))
        h = g_h * h + (1 - g_h) * torch.tanh(h_pre)
    return _stack(outputs, x, h.shape[-1], keep)


def nlstm(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
    """Nested LSTM, depth 2 (see :class:`memtasks.models.cells.NestedLSTM` for the equations)."""
    xs, h, w = _begin(x, p["weight_ih"], p["bias"], p["weight_hh"])
    inner_w_ih, inner_w_hh = p["inner_weight_ih"].transpose(1, 2), p["inner_weight_hh"].transpose(1, 2)
    inner_bias = p["inner_bias"].unsqueeze(1)
    c = torch.zeros_like(h)  # outer memory = the inner LSTM's hidden state
    c_inner = torch.zeros_like(h)
    outputs = []
    for xt in xs:
        n = h.shape[-1]
        outer = torch.baddbmm(xt, h, w)
        i, f, _, o = torch.sigmoid(outer).chunk(4, dim=-1)
        inner_x = i * outer[..., 2 * n:3 * n]  # σ_c = identity at the outer level
        inner_h = f * c
        inner_pre = torch.baddbmm(torch.baddbmm(inner_bias, inner_x, inner_w_ih), inner_h, inner_w_hh)
        ii, fi, _, oi = torch.sigmoid(inner_pre).chunk(4, dim=-1)
        c_inner = fi * c_inner + ii * torch.tanh(inner_pre[..., 2 * n:3 * n])
        c = oi * torch.tanh(c_inner)
        h = o * torch.tanh(c)
        outputs.append(h)
    return _stack(outputs, x, h.shape[-1], keep)


def mlp(p: Params, x: torch.Tensor, keep: slice = ALL) -> torch.Tensor:
    """Causal MLP: h_t = ReLU(b + Σ_{s≤t} W_s x_s), position-specific W_s (N, I)."""
    per_step = torch.einsum("kbti,ktni->kbtn", x, p["weight"])
    return torch.relu(per_step.cumsum(dim=2)[:, :, keep] + p["bias"][:, None, None, :])


#: Built-in cell name -> its kernel.
KERNELS: dict[str, Kernel] = {
    "rnn": _elman(torch.tanh), "irnn": _elman(torch.relu), "lstm": lstm, "gru": gru, "ugrnn": ugrnn,
    "intersection": intersection, "nlstm": nlstm, "mlp": mlp,
}
