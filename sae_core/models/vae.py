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
μ is signed and almost never 0, so "μⱼ ≠ 0" would count every dimension. What L0, dead units and
density count instead are the latent dimensions in use (Burda et al. 2016): dimension j is active when
the variance of μⱼ over the evaluated inputs exceeds ACTIVE_VARIANCE; it is then active on every sample,
so L0 = the number of dimensions in use and the dead fraction = the share of dimensions that carry no
information.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sae_core.fields import Setting
from sae_core.models.base import AEOutput, Autoencoder, ModelSettings, reconstruction_loss
from sae_core.models.spec import Control, VariantSpec, View

PRIOR_SAMPLES = 16
GRID_SIDE = 10
SAMPLE_SEED = 0
"""Seed of the prior samples in the snapshot, so the same z's are decoded at every snapshot."""
ACTIVE_VARIANCE = 0.01
"""Variance of μⱼ over the data above which a latent dimension counts as used (Burda et al. 2016)."""


class VariationalAutoencoder(Autoencoder):
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

    def draw_noise(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """ε ~ N(0, I) [batch, latent] for the reparameterisation."""
        dtype, device = self.decoder.weight.dtype, x.device
        if generator is not None and generator.device != device:
            return torch.randn(x.shape[0], self.latent, generator=generator, dtype=dtype).to(device)
        return torch.randn(x.shape[0], self.latent, generator=generator, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> AEOutput:
        """In training mode z = μ + σ·ε with ε = `noise` (`draw_noise`; from the global RNG when not
        given); in eval mode z = μ."""
        mu, logvar = self.posterior(x)
        if self.training:
            eps = self.draw_noise(x, None) if noise is None else noise
            z = reparameterize(mu, logvar, eps)
        else:
            z = mu
        return AEOutput(recon=self.decode(z), hidden=mu, mu=mu, logvar=logvar)

    def extra_terms(self, x: torch.Tensor, out: AEOutput, cfg: ModelSettings) -> dict[str, torch.Tensor]:
        """ "kl_prior": mean over the batch of KL(N(μ, σ²) ‖ N(0, I)) = −½·Σⱼ (1 + log σⱼ² − μⱼ² − σⱼ²)."""
        return {"kl_prior": kl_prior(out.mu, out.logvar)}

    def reconstruction_term(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z), mean over the batch: Bernoulli for the sigmoid output, ½·Σ(x̂ − x)² for linear."""
        if self.output != "sigmoid":
            return reconstruction_loss(recon, x)
        return F.binary_cross_entropy(recon, x, reduction="none").sum(dim=1).mean()

    def sparsity_codes(self, out: AEOutput) -> None:
        """No sparsity penalty for the VAE (None tells losses.loss_terms to skip it)."""
        return None

    active_by_row = False  # the variance over the rows: metrics.evaluate keeps μ of every row (latent wide)

    def active(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: μ [N, latent] -> [N, latent] bool: dimension j is in use, Var over the rows of μⱼ >
        ACTIVE_VARIANCE (Burda et al. 2016), the same for every row (fewer than 2 rows: none in use)."""
        if codes.shape[0] < 2:
            return torch.zeros_like(codes, dtype=torch.bool)
        return (codes.var(dim=0) > ACTIVE_VARIANCE).expand_as(codes)

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the first encoder layer's weights."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the last decoder layer's weights."""
        return self.decoder.weight

    @torch.no_grad()
    def snapshot_extras(self, show: torch.Tensor, probe: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "prior_samples": [16, n_inputs] decoded from fixed z ~ N(0, I); when latent == 2 also
        "latent_grid": [100, n_inputs] decoded from a 10×10 grid (see `latent_grid`), whose axis values
        are "latent_axis": [10]. From the probe set: "kl_per_dim": [latent] mean KL(q(zⱼ|x) ‖ N(0, 1)) of
        each latent dimension, and "posterior_var": [latent] mean posterior variance σⱼ² (1 = the prior's:
        the dimension carries no information)."""
        device = self.decoder.weight.device
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        z = torch.randn(PRIOR_SAMPLES, self.latent, generator=generator).to(device, self.decoder.weight.dtype)
        mu, logvar = self.posterior(probe)
        extras = {
            "prior_samples": self.decode(z),
            "kl_per_dim": kl_per_dimension(mu, logvar).mean(dim=0),
            "posterior_var": logvar.exp().mean(dim=0),
        }
        if self.latent == 2:
            axis = grid_axis().to(device, self.decoder.weight.dtype)
            extras["latent_grid"] = self.decode(latent_grid(axis))
            extras["latent_axis"] = axis
        return extras


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) (given, or drawn from torch's global RNG): a draw from N(μ, σ²),
    differentiable in μ and σ."""
    return mu + torch.exp(0.5 * logvar) * (torch.randn_like(mu) if eps is None else eps)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μⱼ, σⱼ²) ‖ N(0, 1)) = −½(1 + log σⱼ² − μⱼ² − σⱼ²) per sample and dimension: [batch, latent]."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def kl_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(N(μ, diag σ²) ‖ N(0, I)). mu, logvar: [batch, latent] -> scalar."""
    return kl_per_dimension(mu, logvar).sum(dim=1).mean()


def grid_axis(side: int = GRID_SIDE) -> torch.Tensor:
    """[side] values Φ⁻¹(q) at quantiles q evenly spaced in (0, 1): equal prior mass between grid lines."""
    q = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    return (torch.special.ndtri(q)).float()


def latent_grid(axis: torch.Tensor) -> torch.Tensor:
    """[side², 2] grid points, row-major as an image: row r has z₂ = axis[side − 1 − r] (up is larger z₂),
    column c has z₁ = axis[c]."""
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> VariationalAutoencoder:
    return VariationalAutoencoder(n_inputs, cfg.hidden, cfg.latent, cfg.output)


BERNOULLI = r"-\frac{1}{m}\sum_{i=1}^{m}\log p\bigl(x^{(i)} \mid z^{(i)}\bigr)"
"""The reconstruction term with a sigmoid output: Bernoulli negative log-likelihood."""

SPEC = VariantSpec(
    name="vae",
    title="Variational (VAE)",
    note="A Gaussian code z ~ q(z|x) pulled towards the prior N(0, I); it can generate new inputs.",
    build=build,
    order=4,
    settings=(
        Setting(
            "latent",
            "int",
            2,
            "Variational variant: size of the latent code.",
            minimum=1,
            maximum=1_024,
            size_limit=True,
        ),
    ),
    controls=(Control("latent", "Latent dimensions", minimum=1, step=1),),
    hidden_label="Hidden layer width (encoder and decoder)",
    adam_lr=0.01,
    fixed_penalty="none",
    penalty_reason="The prior KL regularises the VAE's code, so the sparsity penalty, ρ and β are not used.",
    views=(
        View("vae_kl_chart", "vae:kl_per_dimension_figure", column=0),
        View("prior_samples_chart", "vae:prior_samples_figure", column=1),
        View("latent_scatter_chart", "vae:latent_scatter_figure", column=0),
        View("latent_grid_chart", "vae:latent_grid_figure", column=1),
    ),
    views_caption=(
        "The loss curves show the two terms of the negative ELBO: *reconstruction* (−log p(x|z)) and "
        "*kl prior* (KL(q(z|x) ‖ N(0, I))). The code is the posterior mean μ, not a unit activation, so the "
        "ρ̂, density and KL-to-ρ views are replaced by the KL and variance of each latent dimension."
    ),
    metrics="vae:vae_metrics",
    standard_views=frozenset(),
    code_units=lambda cfg, width: f"{width} latent means μ (the centre of q(z|x); no sample is drawn)",
    reconstruction_tex=lambda cfg: BERNOULLI if cfg.output == "sigmoid" else None,
    extra_tex=lambda cfg: [r"\mathrm{KL}\bigl(q(z \mid x) \,\big\|\, \mathcal{N}(0, I)\bigr)"],
    decays_every_layer=True,
)
