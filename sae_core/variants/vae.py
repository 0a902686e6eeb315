"""Variational autoencoder (Kingma & Welling): a Gaussian encoder q(z|x) = N(μ, diag σ²) and a decoder p(x|z).

x [batch, n_inputs] -> ReLU layer [batch, hidden] -> μ, log σ² [batch, latent];
z = μ + σ·ε with ε ~ N(0, I) in training mode (the reparameterisation trick), z = μ in eval mode;
z -> ReLU layer [batch, hidden] -> x̂ [batch, n_inputs].
Loss = reconstruction + "kl_prior" = KL(q(z|x) ‖ N(0, I)), both means over the batch.
The reconstruction term is the negative log-likelihood of x under the decoder: Bernoulli for the
sigmoid output (data in [0, 1], as Kingma & Welling did for MNIST), −Σᵢ [xᵢ log x̂ᵢ + (1 − xᵢ) log(1 − x̂ᵢ)];
Gaussian of variance 1, the project's ½·Σᵢ(x̂ᵢ − xᵢ)², for the linear output. Why not always the
latter: on [0, 1] pixels a unit-variance Gaussian is so flat that the prior KL wins, q(z|x) collapses onto
N(0, I) and the decoder outputs the mean image (seen on digits 8×8: kl_prior → 0, FVE ≈ 0).
Note that the Bernoulli term does not reach 0 for grey pixels; its minimum is at x̂ = x.
`hidden` is μ, and the sparsity penalty is off: the prior KL already regularises the code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..models import AEOutput

PRIOR_SAMPLES = 16
GRID_SIDE = 10
SAMPLE_SEED = 0
"""Seed of the prior samples in the snapshot, so the same z's are decoded at every snapshot."""


class VariationalAutoencoder(nn.Module):
    """Parameters: encoder [hidden, n_inputs], mu / logvar [latent, hidden], decoder_hidden [hidden, latent],
    decoder [n_inputs, hidden] (nn.Linear weights)."""

    activation = "linear"  # the code is μ, a linear output

    def __init__(self, n_inputs: int, hidden: int, latent: int, output: str = "sigmoid") -> None:
        super().__init__()
        self.encoder = nn.Linear(n_inputs, hidden)
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder_hidden = nn.Linear(latent, hidden)
        self.decoder = nn.Linear(hidden, n_inputs)
        self.output, self.latent = output, latent

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [batch, n_inputs] -> (μ, log σ²), each [batch, latent]."""
        a = torch.relu(self.encoder(x))
        return self.mu(a), self.logvar(a)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, n_inputs] -> μ: [batch, latent] (the code shown in the views)."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: [batch, latent] -> x̂: [batch, n_inputs]."""
        out = self.decoder(torch.relu(self.decoder_hidden(z)))
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: torch.Tensor) -> AEOutput:
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar) if self.training else mu
        return AEOutput(recon=self.decode(z), hidden=mu, mu=mu, logvar=logvar)

    def extra_terms(self, x: torch.Tensor, out: AEOutput, cfg: ModelConfig) -> dict[str, torch.Tensor]:
        """ "kl_prior": mean over the batch of KL(N(μ, σ²) ‖ N(0, I)) = −½·Σⱼ (1 + log σⱼ² − μⱼ² − σⱼ²)."""
        return {"kl_prior": kl_prior(out.mu, out.logvar)}

    def reconstruction_term(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z), mean over the batch: Bernoulli for the sigmoid output, ½·Σ(x̂ − x)² for linear."""
        if self.output != "sigmoid":
            return 0.5 * (recon - x).pow(2).sum(dim=1).mean()
        return F.binary_cross_entropy(recon, x, reduction="none").sum(dim=1).mean()

    def sparsity_codes(self, out: AEOutput) -> None:
        """No sparsity penalty for the VAE (None tells losses.loss_terms to skip it)."""
        return None

    def decayed_weights(self) -> list[torch.Tensor]:
        return [m.weight for m in (self.encoder, self.mu, self.logvar, self.decoder_hidden, self.decoder)]

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the first encoder layer's weights."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the last decoder layer's weights."""
        return self.decoder.weight

    @torch.no_grad()
    def snapshot_extras(self, x_show: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "prior_samples": [16, n_inputs] decoded from fixed z ~ N(0, I); when latent == 2 also
        "latent_grid": [100, n_inputs] decoded from a 10×10 grid (see `latent_grid`), whose axis values
        are "latent_axis": [10]."""
        device = self.decoder.weight.device
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        z = torch.randn(PRIOR_SAMPLES, self.latent, generator=generator).to(device, self.decoder.weight.dtype)
        extras = {"prior_samples": self.decode(z)}
        if self.latent == 2:
            axis = grid_axis().to(device, self.decoder.weight.dtype)
            extras["latent_grid"] = self.decode(latent_grid(axis))
            extras["latent_axis"] = axis
        return extras


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ·ε, ε ~ N(0, I) from torch's global RNG: a draw from N(μ, σ²), differentiable in μ and σ."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def kl_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(N(μ, diag σ²) ‖ N(0, I)). mu, logvar: [batch, latent] -> scalar."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def grid_axis(side: int = GRID_SIDE) -> torch.Tensor:
    """[side] values Φ⁻¹(q) at quantiles q evenly spaced in (0, 1): equal prior mass between grid lines."""
    q = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    return (torch.special.ndtri(q)).float()


def latent_grid(axis: torch.Tensor) -> torch.Tensor:
    """[side², 2] grid points, row-major as an image: row r has z₂ = axis[side − 1 − r] (up is larger z₂),
    column c has z₁ = axis[c]."""
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


@torch.no_grad()
def vae_codes(model: VariationalAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Posterior means μ of x [N, n_inputs] -> [N, latent], for the scatter of codes coloured by label."""
    return model.posterior(x.to(model.encoder.weight.device, model.encoder.weight.dtype))[0]
