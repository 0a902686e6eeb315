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


def auto_activation(cfg: ModelSettings) -> str:
    """The code's activation under `activation = auto`: sigmoid units where the output is a sigmoid (data in
    [0, 1]: pixels, bars), linear units where it is linear (signed data: superposition).

    Why not linear everywhere (Makhzani & Frey's codes): every input keeps exactly k units, also an input
    made of fewer parts than k. On the bars (two bars an image on average, k = 5), linear units let the
    spare kept units take large values, so the decoder turns them into corrections (a bar minus its
    neighbours) and a few units fire on most inputs: 0-9 of the 16 bars were found with k from 2 to 8
    and Adam rates from 0.01 to 0.1 (ReLU units: 2-10). A sigmoid unit kept without a part to draw sits
    near 0 and adds next to nothing: 15 of 16 at the preset's own rate 0.1 and k = 5, no unit dead
    (tests/test_lecture_defaults.py; in the run looked at, the bar left is drawn by a unit that is on
    unless its bar is there, so its tile shows the bar dark)."""
    return "sigmoid" if cfg.output == "sigmoid" else "linear"


CODE_TEX = {"sigmoid": r"\sigma(W_1 x + b_1)", "relu": r"\mathrm{ReLU}(W_1 x + b_1)", "linear": "W_1 x + b_1"}
"""The kept values' activation as LaTeX (top-k of the activations: each is monotonic, so the same k win)."""


def code_tex(cfg: ModelSettings) -> list[str]:
    k = cfg.k
    inner = CODE_TEX.get(cfg.hidden_activation, CODE_TEX["linear"])
    return [
        rf"h &= \mathrm{{top}}_{{{k}}}\bigl({inner}\bigr)",
        rf"&\quad \text{{keep the {k} largest, zero the rest}}",
    ]


SPEC = PenaltySpec(
    name="topk",
    title="Top-k",
    short="top-k",
    order=2,
    activation="linear",
    activation_for=auto_activation,
    term=None,
    hidden_reason="ρ and β are not used by top-k: sparsity comes from keeping k units, not from a penalty.",
    code_tex=code_tex,
    describe=lambda cfg: [f"top-{cfg.k}"],
    dead_units_cause=lambda cfg, lr: (
        f"only k = {cfg.k} units are kept per input, so the others never win; try a larger k"
    ),
    # Theory's comparison keeps Makhzani & Frey's linear units: the mixtures they draw on the bars are its
    # point (the Train page's top-k on the bars has sigmoid units: auto_activation).
    demo=({"penalty": "topk", "k": 4, "activation": "linear"}, {"lr": 0.05, "batch_size": 256}),
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
        "**Top-k**: each input keeps its k largest units and the rest are set to zero, so no code has more "
        "than k non-zero units. There is no penalty term to weigh: β and ρ do nothing. On images the units "
        "are sigmoids, so a unit kept on an input with fewer than k parts sits near 0 and draws next to "
        "nothing, and L0 (units above 0.1) counts the parts rather than k; on signed data (a linear output) "
        "the units are linear and L0 is k."
    ),
    instead_of_kl=(
        "Its sparsity is top-k: each input keeps its k largest units and the rest are zeroed, with no "
        "penalty term at all."
    ),
)
