"""Code layers: what turns a model's pre-activations z into its code h, as the penalty asks for it.

Every variant applies one of these to its code (the hidden layer, the last encoder layer, the feature
maps), so a penalty that needs its own nonlinearity (top-k keeps the k largest units, JumpReLU learns a
threshold per unit) brings it without the models knowing its name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "linear": lambda t: t,
}

ACTIVE_THRESHOLD = {"sigmoid": 0.1, "relu": 0.0, "linear": 0.0}
"""A unit counts as active on a sample when |code| exceeds this (`models.base.is_active`). ReLU and linear
codes (top-k among them) are exactly 0 when off, so active means non-zero, negative values included:
top-k keeps the k largest linear values, some of which can be negative. Sigmoid units are never exactly
0, so they need a level: 0.1, a fixed value that does not follow ρ. It sits well above the ρ ≤ 0.05 an
"off" unit is pulled to, but with ρ ≥ 0.1 (UFLDL's MNIST recipe has ρ = 0.1) a unit at its target mean
is near it, and L0 no longer separates "on" from "at target"; the page's L0 help says so."""


def keep_topk(h: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the k largest entries of each row (Makhzani & Frey, k-sparse autoencoders).

    h: [batch, hidden] -> [batch, hidden] with exactly k entries per row left as they were.
    Gradients flow only through the kept entries.
    """
    if k >= h.shape[1]:
        return h
    idx = h.topk(k, dim=1).indices
    return torch.zeros_like(h).scatter(1, idx, h.gather(1, idx))


class CodeLayer(nn.Module):
    """h = f(z), then, with k set, only the k largest entries of each sample kept (over all of its units
    and positions: a conv model's maps are flattened per sample first). No parameters."""

    def __init__(self, activation: str, k: int | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.activation, self.k = activation, k
        self._act = ACTIVATIONS[activation]

    @property
    def active_threshold(self) -> float:
        return ACTIVE_THRESHOLD[self.activation]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: [batch, ...] -> h: the same shape."""
        h = self._act(z)
        if self.k is None:
            return h
        return keep_topk(h.flatten(1), self.k).view_as(h)
