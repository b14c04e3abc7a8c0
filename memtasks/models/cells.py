"""Built-in recurrent cells: the recurrent cores whose memorization capacity memtasks measures.

A *cell* is a ``torch.nn.Module`` built by a factory ``(input_size, hidden_size, **kw)`` whose ``forward(x)``
maps a float tensor (B, L, input_size) to (B, L, hidden_size), batch first, starting from a zero state. The
harness owns the input encoder and the readout; the cell's own parameters are the "recurrent core" whose count
is reported. A factory that also takes ``length`` is given the number of model steps.

Built-ins (N = hidden_size, I = input_size, T = length; core parameter counts):

=============  ======================================================  =====================================
name           cell                                                    core parameters
=============  ======================================================  =====================================
rnn            tanh RNN (fused ``nn.RNN``)                             N(N+I) + 2N
irnn           ReLU RNN, identity recurrent init (fused ``nn.RNN``)    N(N+I) + 2N
lstm           LSTM (fused ``nn.LSTM``)                                4N(N+I) + 8N
gru            GRU (fused ``nn.GRU``)                                  3N(N+I) + 6N
ugrnn          update-gate RNN (Collins et al. 2017)                   2N(N+I+1)
intersection   +RNN, intersection RNN (Collins et al. 2017)            4N(N+I+1), + N·I when I != N
nlstm          Nested LSTM, depth 2 (Moniz & Krueger 2018)             4N(N+I+1) + 4N(2N+1)
mlp            causal one-hidden-layer MLP over the prefix             T·I·N + N
=============  ======================================================  =====================================

Custom cells run the batched kernels of :mod:`memtasks.models.kernels` with one model: they project the inputs
of all steps with one matmul before the time loop and loop over time only for the recurrent part. Their weight
matrices are initialised U(-1/sqrt(N), 1/sqrt(N)) as torch's fused RNNs do, their biases zero except the gate
biases noted per cell, which start at +1 as in the reference implementations (it makes the cells remember by
default early in training).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from memtasks.models import kernels

__all__ = [
    "BUILTIN_CELLS",
    "CausalMLP",
    "FusedRNN",
    "IntersectionRNN",
    "NestedLSTM",
    "UGRNN",
    "core_param_formula",
    "gru",
    "intersection",
    "irnn",
    "lstm",
    "mlp",
    "nlstm",
    "rnn",
    "ugrnn",
]

#: Initial bias of the "keep the state" gates of the custom cells (the reference implementations' forget_bias).
GATE_BIAS = 1.0


def _check_input(x: torch.Tensor, input_size: int) -> None:
    """Fail early with the contract in the message instead of deep inside a matmul."""
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ValueError(f"expected input of shape (batch, length, {input_size}), got {tuple(x.shape)}")


def _init_uniform(hidden_size: int, *weights: torch.Tensor) -> None:
    bound = 1.0 / math.sqrt(hidden_size)
    for w in weights:
        nn.init.uniform_(w, -bound, bound)


class FusedRNN(nn.Module):
    """A torch fused recurrent layer (``nn.RNN``/``nn.LSTM``/``nn.GRU``) that returns only the outputs."""

    def __init__(self, layer: nn.RNNBase) -> None:
        super().__init__()
        if not layer.batch_first or layer.num_layers != 1 or layer.bidirectional:
            raise ValueError("FusedRNN wraps a single-layer, unidirectional, batch_first recurrent layer")
        self.layer = layer
        self.input_size = layer.input_size
        self.hidden_size = layer.hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, I) -> (B, L, N); torch starts every sequence from a zero state when none is given."""
        _check_input(x, self.input_size)
        out, _ = self.layer(x)
        return out


def rnn(input_size: int, hidden_size: int) -> FusedRNN:
    """Elman RNN, ``nn.RNN(nonlinearity="tanh")``: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Core parameters: N(N+I) + 2N (torch keeps two bias vectors). Torch's default init U(-1/sqrt(N), 1/sqrt(N)).
    """
    return FusedRNN(nn.RNN(input_size, hidden_size, nonlinearity="tanh", batch_first=True))


def irnn(input_size: int, hidden_size: int) -> FusedRNN:
    """IRNN (Le, Jaitly & Hinton 2015): h_t = ReLU(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), W_hh = identity at init.

    Biases start at zero; W_ih keeps torch's default U(-1/sqrt(N), 1/sqrt(N)). Core parameters: N(N+I) + 2N.
    """
    cell = FusedRNN(nn.RNN(input_size, hidden_size, nonlinearity="relu", batch_first=True))
    with torch.no_grad():
        nn.init.eye_(cell.layer.weight_hh_l0)
        cell.layer.bias_ih_l0.zero_()
        cell.layer.bias_hh_l0.zero_()
    return cell


def lstm(input_size: int, hidden_size: int) -> FusedRNN:
    """LSTM, ``nn.LSTM`` with torch's default init.

    i, f, o = σ(W_i* x_t + W_h* h_{t-1} + b_i* + b_h*); g = tanh(...); c_t = f ⊙ c_{t-1} + i ⊙ g;
    h_t = o ⊙ tanh(c_t). Core parameters: 4N(N+I) + 8N.
    """
    return FusedRNN(nn.LSTM(input_size, hidden_size, batch_first=True))


def gru(input_size: int, hidden_size: int) -> FusedRNN:
    """GRU, ``nn.GRU`` with torch's default init.

    r, z = σ(W_i* x_t + b_i* + W_h* h_{t-1} + b_h*); n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t-1} + b_hn));
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}. Core parameters: 3N(N+I) + 6N.
    """
    return FusedRNN(nn.GRU(input_size, hidden_size, batch_first=True))


class _StepCell(nn.Module):
    """Shared by the cells written step by step: ``blocks`` stacked N-wide blocks of input weights
    ``weight_ih`` (blocks·N, I), recurrent weights ``weight_hh`` (blocks·N, N) and ``bias`` (blocks·N,)."""

    def __init__(self, input_size: int, hidden_size: int, blocks: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(blocks * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(blocks * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(blocks * hidden_size))

    def _reset_blocks(self, first_gate: int) -> None:
        """Weights U(-1/sqrt(N), 1/sqrt(N)); zero biases, except +1 on the gate blocks from ``first_gate`` on."""
        n = self.hidden_size
        _init_uniform(n, self.weight_ih, self.weight_hh)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[first_gate * n:].fill_(GATE_BIAS)

    def _run(self, kernel: kernels.Kernel, x: torch.Tensor) -> torch.Tensor:
        """(B, L, I) -> (B, L, N): this cell's recurrence, the batched kernel with one model."""
        _check_input(x, self.input_size)
        params = {name: p.unsqueeze(0) for name, p in self.named_parameters()}
        return kernel(params, x.unsqueeze(0)).squeeze(0)


class UGRNN(_StepCell):
    """Update-gate RNN (Collins, Sohl-Dickstein & Sussillo, ICLR 2017).

    c_t = tanh(W_cx x_t + W_ch h_{t-1} + b_c)
    g_t = σ(W_gx x_t + W_gh h_{t-1} + b_g)
    h_t = g_t ⊙ h_{t-1} + (1 - g_t) ⊙ c_t

    Parameters: ``weight_ih`` (2N, I) and ``weight_hh`` (2N, N) stack the [c; g] blocks, ``bias`` (2N,).
    Core parameters: 2N(N+I+1). b_g starts at +1 (the reference TensorFlow cell's forget_bias).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights U(-1/sqrt(N), 1/sqrt(N)); b_c = 0, b_g = +1."""
        self._reset_blocks(first_gate=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, I) -> (B, L, N), from h_0 = 0."""
        return self._run(kernels.ugrnn, x)


class IntersectionRNN(_StepCell):
    """+RNN, the intersection RNN (Collins, Sohl-Dickstein & Sussillo, ICLR 2017).

    y_in = ReLU(W_yx x_t + W_yh h_{t-1} + b_y)          (depth candidate)
    h_in = tanh(W_hx x_t + W_hh h_{t-1} + b_h)          (recurrent candidate)
    g_y  = σ(W_gyx x_t + W_gyh h_{t-1} + b_gy)
    g_h  = σ(W_ghx x_t + W_ghh h_{t-1} + b_gh)
    y_t  = g_y ⊙ s_t + (1 - g_y) ⊙ y_in                 (the cell's output)
    h_t  = g_h ⊙ h_{t-1} + (1 - g_h) ⊙ h_in             (the recurrent state)

    The skip term s_t is x_t when I == N. Otherwise y_t must still be N wide, so s_t = P x_t with a bias-free
    projection ``skip`` P (N, I); that adds N·I parameters. Only the skip path is projected: the gates and
    candidates read x_t directly.

    Parameters: ``weight_ih`` (4N, I) and ``weight_hh`` (4N, N) stack the [y; h; g_y; g_h] blocks, ``bias`` (4N,),
    ``skip`` (N, I) or None. Core parameters: 4N(N+I+1), + N·I when I != N. b_gy and b_gh start at +1 (the
    reference TensorFlow cell's forget_bias); P is U(-1/sqrt(I), 1/sqrt(I)) like ``nn.Linear``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, 4)
        self.skip: nn.Parameter | None
        if input_size != hidden_size:
            self.skip = nn.Parameter(torch.empty(hidden_size, input_size))
        else:
            self.register_parameter("skip", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights U(-1/sqrt(N), 1/sqrt(N)); b_y = b_h = 0, b_gy = b_gh = +1; P U(-1/sqrt(I), 1/sqrt(I))."""
        self._reset_blocks(first_gate=2)
        if self.skip is not None:
            _init_uniform(self.input_size, self.skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, I) -> (B, L, N): the outputs y_t, from h_0 = 0."""
        return self._run(kernels.intersection, x)


class NestedLSTM(_StepCell):
    """Nested LSTM of depth 2 (Moniz & Krueger 2018, arXiv:1801.10308).

    Outer gates, from [x_t, h_{t-1}]:
        i_t, f_t, o_t = σ(W_*x x_t + W_*h h_{t-1} + b_*);  g_t = W_cx x_t + W_ch h_{t-1} + b_c
    Inner LSTM, input x̃_t = i_t ⊙ g_t and previous hidden state h̃_{t-1} = f_t ⊙ c_{t-1}, own cell state c̃:
        ĩ_t, f̃_t, õ_t = σ(U_*x x̃_t + U_*h h̃_{t-1} + d_*);  g̃_t = tanh(U_cx x̃_t + U_ch h̃_{t-1} + d_c)
        c̃_t = f̃_t ⊙ c̃_{t-1} + ĩ_t ⊙ g̃_t;  h̃_t = õ_t ⊙ tanh(c̃_t)
    Outer memory and output:
        c_t = h̃_t;  h_t = o_t ⊙ tanh(c_t)

    The outer cell input g_t is not squashed (σ_c = identity at the outer level only) while the inner one uses tanh,
    the paper's choice, as in the public TensorFlow implementation hannw/nlstm; the state (h, c, c̃) starts at zero.

    Parameters: outer ``weight_ih`` (4N, I), ``weight_hh`` (4N, N), ``bias`` (4N,); inner ``inner_weight_ih``
    (4N, N) on x̃, ``inner_weight_hh`` (4N, N) on h̃, ``inner_bias`` (4N,); blocks in the order [i; f; g; o].
    Core parameters: 4N(N+I+1) + 4N(2N+1). Both forget biases start at +1 (the reference forget_bias).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, 4)
        self.inner_weight_ih = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.inner_weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.inner_bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights U(-1/sqrt(N), 1/sqrt(N)); biases zero except both forget-gate biases, +1."""
        n = self.hidden_size
        _init_uniform(n, self.weight_ih, self.weight_hh, self.inner_weight_ih, self.inner_weight_hh)
        with torch.no_grad():
            for bias in (self.bias, self.inner_bias):
                bias.zero_()
                bias[n:2 * n].fill_(GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, I) -> (B, L, N): the outer hidden states h_t, from a zero state."""
        return self._run(kernels.nlstm, x)


def ugrnn(input_size: int, hidden_size: int) -> UGRNN:
    """UGRNN: h_t = g ⊙ h_{t-1} + (1-g) ⊙ tanh(W_c [x_t, h_{t-1}] + b_c), g = σ(W_g [x_t, h_{t-1}] + b_g).

    Core parameters: 2N(N+I+1). See :class:`UGRNN`.
    """
    return UGRNN(input_size, hidden_size)


def intersection(input_size: int, hidden_size: int) -> IntersectionRNN:
    """+RNN: output y_t = g_y ⊙ (P)x_t + (1-g_y) ⊙ ReLU(·), state h_t = g_h ⊙ h_{t-1} + (1-g_h) ⊙ tanh(·).

    Core parameters: 4N(N+I+1), + N·I for the skip projection P when I != N. See :class:`IntersectionRNN`.
    """
    return IntersectionRNN(input_size, hidden_size)


def nlstm(input_size: int, hidden_size: int) -> NestedLSTM:
    """Nested LSTM, depth 2: an LSTM whose memory c_t is the output of an inner LSTM fed (i ⊙ g, f ⊙ c_{t-1}).

    Core parameters: 4N(N+I+1) + 4N(2N+1). See :class:`NestedLSTM`.
    """
    return NestedLSTM(input_size, hidden_size)


class CausalMLP(nn.Module):
    """Feed-forward reference: one hidden layer over the zero-padded, flattened prefix of the sequence.

    h_t = ReLU(b + Σ_{s≤t} W_s x_s), with position-specific weights W_s (N, I) for s = 1..T.

    Output t sees only inputs 1..t, so in next-step prediction (where input t+1 carries target t) it cannot read
    its own answer. Computed without a loop over time: a per-step einsum, then a cumulative sum over steps.
    Parameters: ``weight`` (T, N, I), ``bias`` (N,). Core parameters: T·I·N + N. Init: U(-1/sqrt(T·I), 1/sqrt(T·I)),
    ``nn.Linear``'s default for a layer reading the whole flattened sequence.
    """

    def __init__(self, input_size: int, hidden_size: int, length: int) -> None:
        super().__init__()
        if length < 1:
            raise ValueError(f"mlp length must be >= 1, got {length}")
        self.input_size, self.hidden_size, self.length = input_size, hidden_size, length
        self.weight = nn.Parameter(torch.empty(length, hidden_size, input_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(T·I), 1/sqrt(T·I)) for weight and bias (fan-in of the flattened sequence)."""
        bound = 1.0 / math.sqrt(self.length * self.input_size)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, I) -> (B, T, N); T must be the length the mlp was built for."""
        _check_input(x, self.input_size)
        if x.shape[1] != self.length:
            raise ValueError(f"the mlp was built for length={self.length} steps but got a sequence of "
                             f"{x.shape[1]} steps; build it with the model's sequence length")
        return kernels.mlp({"weight": self.weight.unsqueeze(0), "bias": self.bias.unsqueeze(0)},
                           x.unsqueeze(0)).squeeze(0)


def mlp(input_size: int, hidden_size: int, *, length: int) -> CausalMLP:
    """Causal MLP: h_t = ReLU(b + Σ_{s≤t} W_s x_s), one weight matrix W_s (N, I) per position s = 1..length.

    Core parameters: length·I·N + N. See :class:`CausalMLP`.
    """
    return CausalMLP(input_size, hidden_size, length)


#: name -> (factory, one-line description), in the order the benchmark reports them.
BUILTIN_CELLS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "rnn": (rnn, "tanh RNN (fused nn.RNN)"),
    "irnn": (irnn, "ReLU RNN with identity recurrent init, Le et al. 2015 (fused nn.RNN)"),
    "lstm": (lstm, "LSTM (fused nn.LSTM)"),
    "gru": (gru, "GRU (fused nn.GRU)"),
    "ugrnn": (ugrnn, "update-gate RNN, Collins et al. 2017"),
    "intersection": (intersection, "+RNN (intersection RNN), Collins et al. 2017"),
    "nlstm": (nlstm, "Nested LSTM of depth 2, Moniz & Krueger 2018"),
    "mlp": (mlp, "causal one-hidden-layer MLP over the sequence prefix (feed-forward reference)"),
}


def core_param_formula(name: str, input_size: int, hidden_size: int, length: int | None = None) -> int:
    """The closed-form core parameter count of built-in cell ``name`` (``length`` is needed for ``mlp``)."""
    n, i = hidden_size, input_size
    if name in ("rnn", "irnn"):
        return n * (n + i) + 2 * n
    if name == "lstm":
        return 4 * n * (n + i) + 8 * n
    if name == "gru":
        return 3 * n * (n + i) + 6 * n
    if name == "ugrnn":
        return 2 * n * (n + i + 1)
    if name == "intersection":
        return 4 * n * (n + i + 1) + (n * i if i != n else 0)
    if name == "nlstm":
        return 4 * n * (n + i + 1) + 4 * n * (2 * n + 1)
    if name == "mlp":
        if length is None:
            raise ValueError("core_param_formula('mlp', ...) needs length: the mlp has one weight matrix per step")
        return length * i * n + n
    raise ValueError(f"no parameter formula for {name!r}; built-in cells: {', '.join(BUILTIN_CELLS)}")
