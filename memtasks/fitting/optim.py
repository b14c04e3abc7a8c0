"""Adam for K models whose parameters are stacked on a leading model axis.

Adam is element-wise, so one update over stacked tensors is K independent updates — as long as everything
that is *not* element-wise stays per model: the learning rate (each model has its own, and its own decays)
and the gradient-norm clip (each model's norm over its own parameters). The arithmetic follows
``torch.optim.Adam`` and ``torch.nn.utils.clip_grad_norm_`` step for step, so a model trained in a stack
matches the same model trained alone with torch's optimizer to float rounding (the tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class StackedAdam:
    """Adam with a per-model learning rate and gradient clip over ``params`` (each (K, ...) when ``stacked``).

    With ``stacked=False`` the parameters are one ordinary model's (K = 1).
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], lrs: Sequence[float], *, stacked: bool = True,
                 grad_clip: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.stacked = stacked
        device = self.params[0].device
        self.lr = torch.tensor(list(lrs), dtype=torch.float64, device=device)
        if not stacked and len(self.lr) != 1:
            raise ValueError("unstacked parameters belong to one model: give one learning rate")
        self.grad_clip, self.betas, self.eps = grad_clip, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    def _per_model(self, t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """A (K,) tensor shaped to broadcast over ``p``'s model axis (or a scalar for one model)."""
        return t.view(-1, *([1] * (p.dim() - 1))) if self.stacked else t[0]

    def grad_norms(self) -> torch.Tensor:
        """Each model's gradient 2-norm over all its parameters, (K,)."""
        sq = None
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad.float()
            term = g.pow(2).flatten(1).sum(1) if self.stacked else g.pow(2).sum().reshape(1)
            sq = term if sq is None else sq + term
        return torch.zeros(len(self.lr), device=self.lr.device) if sq is None else sq.sqrt()

    @torch.no_grad()
    def step(self) -> None:
        """Clip each model's gradient to ``grad_clip`` (if > 0), then one Adam update of every model."""
        if self.grad_clip > 0:
            coef = (self.grad_clip / (self.grad_norms() + 1e-6)).clamp(max=1.0)
            for p in self.params:
                if p.grad is not None:
                    p.grad.mul_(self._per_model(coef, p).to(p.grad.dtype))
        self.steps += 1
        beta1, beta2 = self.betas
        bias1, bias2_sqrt = 1 - beta1 ** self.steps, (1 - beta2 ** self.steps) ** 0.5
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            step_size = self._per_model(self.lr / bias1, p).to(p.dtype)
            p.sub_(step_size * m / denom)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the models ``index`` (the parameters themselves are compacted by their model)."""
        if not self.stacked:
            return
        self.lr = self.lr[index]
        self.exp_avg = [m[index].contiguous() for m in self.exp_avg]
        self.exp_avg_sq = [v[index].contiguous() for v in self.exp_avg_sq]
