"""Top-k (k-sparse) codes: each sample keeps its k largest units and the rest are zeroed. No term in the
objective: the code is sparse by construction (Makhzani & Frey, 2013)."""

from __future__ import annotations

from torch import nn

from sae_core.fields import Setting
from sae_core.penalties.code import CodeLayer
from sae_core.penalties.spec import ModelSettings, PenaltySpec


def code_layer(cfg: ModelSettings, units: int, trailing: int = 0) -> nn.Module:
    return CodeLayer(cfg.hidden_activation, cfg.k)


def check_k(cfg: ModelSettings) -> None:
    """k counts units: at least 1, and at most the hidden size where it is used."""
    if cfg.k < 1 or (cfg.uses_topk and cfg.k > cfg.hidden):
        raise ValueError(f"k must be in [1, hidden={cfg.hidden}], got {cfg.k!r}")


def code_tex(cfg: ModelSettings) -> list[str]:
    k = cfg.k
    return [
        rf"h &= \mathrm{{top}}_{{{k}}}(W_1 x + b_1)",
        rf"&\quad \text{{keep the {k} largest, zero the rest}}",
    ]


SPEC = PenaltySpec(
    name="topk",
    title="Top-k",
    short="top-k",
    order=2,
    activation="linear",
    term=None,
    hidden_reason="ρ and β are not used by top-k: sparsity comes from keeping k units, not from a penalty.",
    code_tex=code_tex,
    describe=lambda cfg: [f"top-{cfg.k}"],
    dead_units_cause=lambda cfg, lr: (
        f"only k = {cfg.k} units are kept per input, so the others never win; try a larger k"
    ),
    demo=({"penalty": "topk", "k": 4}, {"lr": 0.05, "batch_size": 256}),
    demo_title="top-k on linear units",
    settings_note=lambda cfg: f"k = {cfg.k}",
    code_layer=code_layer,
    plain_code=False,
    settings=(
        Setting(
            "k",
            "int",
            5,
            "Active units kept per sample by the top-k penalty.",
            label="k (active units per sample)",
            rule=check_k,
            maximum=16_384,
            size_limit=True,
        ),
    ),
    summary=(
        "**Top-k**: each input keeps its k largest units and the rest are set to zero, so every code has "
        "exactly k active units. There is no penalty term to weigh: β and ρ do nothing."
    ),
    instead_of_kl=(
        "Its sparsity is top-k: each input keeps its k largest units and the rest are zeroed, with no "
        "penalty term at all."
    ),
)
