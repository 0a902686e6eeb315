"""k-sparse autoencoder (Makhzani & Frey 2013): linear codes, of which only the k largest per sample survive.

h = topk(Wx + b), x̂ = g(W_d h + b_d). Sparsity is enforced by construction, so there is no penalty
term, whatever cfg.penalty says. With tied weights W_d = Wᵀ (the decoder keeps its own bias b_d).

Two rules of the paper (Makhzani & Frey, "k-Sparse Autoencoders", ICLR 2014):
- Scheduling of k (its section 3.3): with a small k, the first steps hand each unit a few inputs
  greedily and units that win none never learn (dead units). Training starts with a large k and lowers
  it linearly to the target over the first part of training: k_start -> k over the first k_anneal of
  the run's steps (the paper: from 100 to the target over the first half of the epochs). A run until
  paused has no length to take a fraction of, so it trains with k from the start.
- The αk rule at encoding time (its section 3.2): outside training, keep the α·k largest units
  (α ≥ 1; the paper picks α on held-out data and uses α = 3 in its experiments). The default α = 1
  encodes as training does. Everything in eval mode sees the α·k codes: `sae encode`, the snapshot's
  codes, metrics and reconstructions (the paper uses them as features; the decoder was trained on k).
"""

from __future__ import annotations

import torch
from torch import nn

from sae_core.fields import Setting
from sae_core.models.base import AEOutput, Autoencoder, ModelSettings, ufldl_range
from sae_core.models.spec import Control, VariantSpec, View
from sae_core.penalties.code import keep_topk


class KSparseAutoencoder(Autoencoder):
    """Parameters: encoder.weight [hidden, n_inputs], encoder.bias [hidden], decoder_bias [n_inputs],
    and decoder.weight [n_inputs, hidden] unless tied."""

    activation = "linear"

    def __init__(
        self,
        n_inputs: int,
        hidden: int,
        k: int,
        tied: bool = False,
        output: str = "sigmoid",
        k_start: int = 0,
        k_anneal: float = 0.5,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_inputs, hidden)
        self.decoder = None if tied else nn.Linear(hidden, n_inputs, bias=False)
        self.decoder_bias = nn.Parameter(torch.zeros(n_inputs))
        self.k, self.tied, self.output = k, tied, output
        self.k_target, self.k_start, self.k_anneal, self.alpha = k, k_start, k_anneal, alpha
        with torch.no_grad():  # same scale as the sparse autoencoder's UFLDL initialisation
            r = ufldl_range(n_inputs, hidden)
            for layer in (self.encoder, self.decoder):
                if layer is not None:
                    layer.weight.uniform_(-r, r)
            self.encoder.bias.zero_()

    @property
    def encode_k(self) -> int:
        """Units kept per sample now: k in training, round(α·k) (at most hidden) outside it."""
        if self.training:
            return self.k
        return min(self.encoder.out_features, round(self.alpha * self.k))

    def set_step_(self, step: int, total_steps: int) -> bool:
        """Set the training k of step `step` of `total_steps` from the schedule; True if it changed."""
        k = scheduled_k(step, total_steps, self.k_target, self.k_start, self.k_anneal)
        changed, self.k = k != self.k, k
        return changed

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, n_inputs] -> h: [batch, hidden], encode_k non-zeros per row (barring exact zeros)."""
        return keep_topk(self.encoder(x), self.encode_k)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [batch, hidden] -> x̂: [batch, n_inputs]."""
        out = h @ self.dictionary().T + self.decoder_bias
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def sparsity_codes(self, out: AEOutput) -> None:
        """No penalty: top-k already keeps the code sparse (None tells losses.loss_terms to skip it)."""
        return None

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the encoder weights."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the decoder weights (Wᵀ when tied)."""
        return self.encoder.weight.T if self.tied else self.decoder.weight

    @torch.no_grad()
    def snapshot_extras(self, show: torch.Tensor, probe: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "k_train": the k training uses now (the schedule's); "k_encode": the units the codes in the
        snapshot keep (round(α·k_train), at most hidden), both 0-d."""
        return {"k_train": torch.tensor(self.k), "k_encode": torch.tensor(self.encode_k)}


def scheduled_k(step: int, total_steps: int, k: int, k_start: int, anneal: float) -> int:
    """The training k at step `step` (steps done so far, 0 for the first) of a run of `total_steps`:
    k_start at step 0, linear down to k at step anneal·total_steps, k from there on. k when there is no
    schedule (k_start <= k) or no run length (total_steps 0: a run until paused)."""
    if k_start <= k or total_steps == 0:
        return k
    end = anneal * total_steps
    if step >= end:
        return k
    return round(k_start + (k - k_start) * step / end)


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> KSparseAutoencoder:
    return KSparseAutoencoder(
        n_inputs, cfg.hidden, cfg.k, cfg.tied, cfg.output, cfg.k_start, cfg.k_anneal, cfg.alpha
    )


def check(cfg: ModelSettings) -> None:
    if cfg.k_start != 0 and not cfg.k <= cfg.k_start <= cfg.hidden:
        raise ValueError(
            f"k_start must be 0 (no schedule) or in [k={cfg.k}, hidden={cfg.hidden}], got {cfg.k_start!r}"
        )


SPEC = VariantSpec(
    name="ksparse",
    title="k-sparse (top-k)",
    note="Linear codes of which only the k largest per input survive (Makhzani & Frey 2013).",
    build=build,
    order=6,
    settings=(
        Setting("tied", "bool", False, "k-sparse variant: decoder uses the transposed encoder weights."),
        Setting(
            "k_start",
            "int",
            0,
            "k-sparse variant: k at the first step, falling linearly to k over k_anneal of the run "
            "(0: none).",
            minimum=0,
            maximum=16_384,
            size_limit=True,
        ),
        Setting(
            "k_anneal",
            "float",
            0.5,
            "k-sparse variant: share of the run over which k falls from k_start to k "
            "(the paper: the first half).",
            minimum=0.0,
            above_minimum=True,
            maximum=1.0,
        ),
        Setting(
            "alpha",
            "float",
            1.0,
            "k-sparse variant: outside training, encode with the α·k largest units "
            "(Makhzani & Frey's αk, α ≥ 1).",
            minimum=1.0,
        ),
    ),
    controls=(
        Control("k", "k (active units per sample)", minimum=1, step=1),
        Control("tied", "Tied weights (decoder = encoderᵀ)"),
        Control("k_start", "k at the start (0: no schedule)", minimum=0, step=1),
        Control(
            "k_anneal", "Share of the run over which k falls", minimum=0.05, step=0.05, number_format="%.2f"
        ),
        Control(
            "alpha", "α: encode with α·k units outside training", minimum=1.0, step=0.5, number_format="%.1f"
        ),
    ),
    check=check,
    fixed_penalty="topk",
    code_units=lambda cfg, width: (
        f"{width} linear units, of which each input keeps its {min(width, round(cfg.alpha * cfg.k))} largest"
    ),
    penalty_reason="Top-k is this model's regulariser, so the sparsity penalty, ρ and β are not used.",
    views=(View("active_per_sample_chart", "ksparse:active_per_sample_figure"),),
    metrics="ksparse:ksparse_metrics",
)
