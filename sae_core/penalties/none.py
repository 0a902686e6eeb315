"""No sparsity penalty: a plain autoencoder, the baseline the penalties are compared with."""

from __future__ import annotations

from sae_core.penalties.spec import PenaltySpec

SPEC = PenaltySpec(
    name="none",
    title="None",
    short="none",
    order=3,
    activation="sigmoid",
    term=None,
    hidden_reason="ρ and β are not used: there is no sparsity penalty.",
    summary=(
        "**None**: only the reconstruction (and weight decay) is minimised. With as many units as inputs, "
        "nothing stops the code from copying the input; with fewer, the units share the work densely."
    ),
    instead_of_kl="It has no sparsity penalty: nothing pulls its units' ρ̂ⱼ towards a target.",
)
