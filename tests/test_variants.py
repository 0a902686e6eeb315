"""The variants (deep, conv, denoising, vae, contractive, ksparse), each against an independent reference:
autograd Jacobians, Monte Carlo estimates, sample statistics, formulas written out here, central
differences, and a short training run through the real Trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sae_core.config.run import ModelConfig, RunConfig
from sae_core.data.datasets import Dataset
from sae_core.models import AEOutput, build
from sae_core.models.conv import ConvAutoencoder
from sae_core.models.denoising import DenoisingAutoencoder, corrupt
from sae_core.models.vae import grid_axis, kl_prior, latent_grid, reparameterize
from sae_core.train import gradcheck, metrics
from sae_core.train.objective import loss_terms
from sae_core.train.trainer import PROBE_SIZE, SHOW_SIZE, Trainer

VARIANTS = ("deep", "conv", "denoising", "vae", "contractive", "ksparse")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: with several test processes sharing two cores, extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(
    variant: str, n_side: int = 4, seed: int = 0, **changes
) -> tuple[torch.nn.Module, torch.Tensor, ModelConfig]:
    """A float64 model of the variant on n_side × n_side images, with non-zero biases; 5 inputs in [0, 1]."""
    base = dict(variant=variant, hidden=4, layers=(5, 3), kernels=2, kernel_size=3, latent=2, k=2, rho=0.1)
    cfg = ModelConfig(**{**base, "weight_decay": 1e-2, "contraction": 0.5, **changes})
    torch.manual_seed(seed)
    model = build(cfg, n_side * n_side, (n_side, n_side)).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(-0.5, 0.5, generator=generator)
    x = torch.rand(5, n_side * n_side, generator=generator, dtype=torch.float64)
    return model, x, cfg


# ----- contractive ------------------------------------------------------------------------------------------


def test_contractive_penalty_equals_the_squared_frobenius_norm_of_the_autograd_jacobian():
    model, x, cfg = tiny("contractive", penalty="none")
    jacobians = [
        torch.autograd.functional.jacobian(model.encode, row) for row in x
    ]  # each [hidden, n_inputs]
    expected = cfg.contraction * np.mean([float(j.pow(2).sum()) for j in jacobians])
    got = model.extra_terms(x, model(x), cfg)["contractive"].item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_contractive_variant_refuses_top_k_and_keeps_a_sigmoid_encoder():
    with pytest.raises(ValueError, match="contractive"):
        build(ModelConfig(variant="contractive", penalty="topk", k=2), 16, (4, 4))
    model = build(ModelConfig(variant="contractive", penalty="l1"), 16, (4, 4))  # auto would mean relu
    assert model.activation == "sigmoid"


# ----- variational ------------------------------------------------------------------------------------------


def test_vae_analytic_kl_matches_a_monte_carlo_estimate():
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    logvar = torch.randn(3, 2, generator=generator, dtype=torch.float64) * 0.7
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.manual_seed(1)
    z = q.sample((200_000,))  # [S, 3, 2]
    log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(dim=2).mean(dim=1)  # [S]: batch mean of log q/p
    estimate, stderr = float(log_ratio.mean()), float(log_ratio.std() / math.sqrt(len(log_ratio)))
    assert abs(kl_prior(mu, logvar).item() - estimate) < 5 * stderr
    assert stderr < 0.01  # the check is sharp enough to catch a missing ½ or σ² in place of log σ²


def test_vae_loss_has_bernoulli_reconstruction_and_prior_kl_terms():
    model, x, cfg = tiny("vae")
    model.eval()  # z = μ: deterministic
    out = model(x)
    terms = loss_terms(model, x, out, cfg)
    assert set(terms) == {"reconstruction", "kl_prior", "weight_decay", "total"}  # no sparsity term
    r = out.recon
    bernoulli = -(x * r.log() + (1 - x) * (1 - r).log()).sum(dim=1).mean()
    assert terms["reconstruction"].item() == pytest.approx(bernoulli.item(), rel=1e-12)
    written_out = -0.5 * (1 + out.logvar - out.mu**2 - out.logvar.exp()).sum(dim=1).mean()
    assert terms["kl_prior"].item() == pytest.approx(written_out.item(), rel=1e-12)
    assert torch.equal(model.encode(x), out.mu)


def test_reparameterized_samples_have_the_posterior_mean_and_variance():
    mu = torch.tensor([[0.5, -2.0]], dtype=torch.float64).expand(100_000, 2)
    logvar = torch.tensor([[0.0, -1.5]], dtype=torch.float64).expand(100_000, 2)
    torch.manual_seed(0)
    z = reparameterize(mu, logvar)
    sigma = (0.5 * logvar[0]).exp()
    assert torch.all((z.mean(dim=0) - mu[0]).abs() < 5 * sigma / math.sqrt(len(z)))
    assert torch.allclose(z.var(dim=0), sigma**2, rtol=0.02)  # relative s.e. of a variance ≈ √(2/n) ≈ 0.0045


def test_vae_samples_in_training_mode_and_uses_the_mean_in_eval_mode():
    model, x, _ = tiny("vae")
    model.train()
    torch.manual_seed(5)
    out = model(x)
    torch.manual_seed(5)
    assert torch.equal(out.recon, model.decode(reparameterize(out.mu, out.logvar)))
    assert not torch.equal(out.recon, model(x).recon)  # a fresh draw
    model.eval()
    assert torch.equal(model(x).recon, model.decode(model(x).mu))


def test_latent_grid_axis_sits_at_normal_quantiles_and_rows_run_top_down():
    axis = grid_axis(10)
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(axis.double())
    assert torch.allclose(cdf, torch.arange(0.05, 1.0, 0.1, dtype=torch.float64), atol=1e-6)
    grid = latent_grid(axis)
    assert grid.shape == (100, 2)
    assert torch.equal(grid[:10, 0], axis) and torch.all(grid[:10, 1] == axis[-1])  # top row: largest z₂
    assert torch.all(grid[90:, 1] == axis[0])


# ----- denoising --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_gaussian_corruption_adds_noise_of_standard_deviation_sigma(sigma):
    x = torch.full((400, 500), 0.5)
    noise = corrupt(x, "gaussian", sigma, torch.Generator().manual_seed(0)) - x
    assert abs(float(noise.mean())) < 5 * sigma / math.sqrt(noise.numel())
    assert float(noise.std()) == pytest.approx(sigma, rel=0.01)  # relative s.e. of the std ≈ 1/√(2n) ≈ 0.0016


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_masking_zeroes_the_set_fraction_of_pixels(fraction):
    x = torch.rand(400, 500, generator=torch.Generator().manual_seed(1)) + 0.1  # no pixel is 0 already
    noisy = corrupt(x, "mask", fraction, torch.Generator().manual_seed(0))
    zeroed = noisy == 0
    n = zeroed.numel()
    assert abs(float(zeroed.float().mean()) - fraction) < 5 * math.sqrt(fraction * (1 - fraction) / n)
    assert torch.equal(noisy[~zeroed], x[~zeroed])


def test_salt_and_pepper_flips_the_set_fraction_to_zero_or_one_evenly():
    fraction = 0.2
    x = torch.full((400, 500), 0.5)
    noisy = corrupt(x, "salt_pepper", fraction, torch.Generator().manual_seed(0))
    hit = noisy != 0.5
    n = hit.numel()
    assert abs(float(hit.float().mean()) - fraction) < 5 * math.sqrt(fraction * (1 - fraction) / n)
    assert set(noisy[hit].unique().tolist()) == {0.0, 1.0}
    assert abs(float(noisy[hit].mean()) - 0.5) < 5 * 0.5 / math.sqrt(int(hit.sum()))


def test_denoising_corrupts_only_in_training_mode_and_reconstructs_the_clean_input():
    model, x, cfg = tiny("denoising", corruption="mask", noise_level=0.5)
    assert isinstance(model, DenoisingAutoencoder)
    model.train()
    torch.manual_seed(3)
    out = model(x)
    assert (
        out.corrupted is not None and bool((out.corrupted == 0).any()) and not torch.equal(out.corrupted, x)
    )
    assert torch.equal(out.recon, model.decode(model.encode(out.corrupted)))
    expected = 0.5 * (out.recon - x).pow(2).sum(dim=1).mean()  # against the clean x, not the corrupted one
    assert loss_terms(model, x, out, cfg)["reconstruction"].item() == pytest.approx(
        expected.item(), rel=1e-12
    )
    model.eval()
    clean = model(x)
    assert clean.corrupted is None and torch.equal(clean.recon, model.decode(model.encode(x)))


# ----- k-sparse ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_ksparse_keeps_exactly_the_k_largest_linear_activations_per_sample(tied):
    model, x, cfg = tiny("ksparse", hidden=6, k=3, tied=tied)
    h = model.encode(x)
    assert torch.all((h != 0).sum(dim=1) == 3)
    z = (x @ model.encoder.weight.T + model.encoder.bias).detach().numpy()  # linear codes, by hand
    for row, z_row in zip(h.detach().numpy(), z, strict=True):
        top = np.argsort(z_row)[-3:]
        assert set(np.flatnonzero(row)) == set(top)
        np.testing.assert_allclose(row[top], z_row[top], rtol=1e-12)
    if tied:
        assert torch.equal(model.dictionary(), model.encoder.weight.T)
        assert not any("decoder.weight" in name for name, _ in model.named_parameters())


def test_ksparse_has_no_penalty_term_whatever_the_penalty_says():
    model, x, cfg = tiny("ksparse", penalty="kl")
    assert set(loss_terms(model, x, model(x), cfg)) == {"reconstruction", "weight_decay", "total"}


def count_kept_per_training_step(model: torch.nn.Module) -> list[int]:
    """Non-zero code units per row at every training-mode forward pass, read from the encoder's output
    as top-k leaves it (every row must agree)."""
    kept: list[int] = []

    def hook(module, inputs, output):
        if module.training:
            counts = (output.hidden != 0).sum(dim=1)
            assert (counts == counts[0]).all()
            kept.append(int(counts[0]))

    model.register_forward_hook(hook)
    return kept


def test_k_schedule_falls_linearly_from_k_start_to_k_over_the_set_share_of_the_run(tiny_digits):
    """20 steps, k from 10 to 2 over the first half: k = 10 − 0.8·s rounded for s = 0..9, then 2."""
    cfg = RunConfig.from_flat(
        dict(
            variant="ksparse", hidden=12, k=2, k_start=10, k_anneal=0.5, steps=20, batch_size=32, device="cpu"
        )
    )
    trainer = Trainer(cfg, tiny_digits)
    kept = count_kept_per_training_step(trainer.model)
    trainer.advance()
    # 10, 9.2, 8.4, 7.6, 6.8, 6.0, 5.2, 4.4, 3.6, 2.8 rounded to the nearest integer
    assert kept == [10, 9, 8, 8, 7, 6, 5, 4, 4, 3] + [2] * 10
    assert trainer.snapshot().metrics["l0"] == 2.0  # after the schedule: the target k


def test_without_a_run_length_or_a_schedule_k_is_the_target_from_the_start(tiny_digits):
    for k_start, steps in ((0, 6), (10, 0)):  # no schedule; a run until paused
        cfg = RunConfig.from_flat(
            dict(variant="ksparse", hidden=12, k=2, k_start=k_start, steps=steps, batch_size=32, device="cpu")
        )
        trainer = Trainer(cfg, tiny_digits)
        kept = count_kept_per_training_step(trainer.model)
        trainer.advance(max_steps=6)
        assert kept == [2] * 6


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_k_schedule_leaves_fewer_dead_units_than_a_fixed_small_k(tiny_digits, seed):
    """40 units, k = 2 on 300 digits: with k fixed most units never win a sample early on and stay dead
    (about 85 % here); starting at k = 20 and annealing over the first half every unit learns first."""

    def dead(k_start: int) -> float:
        cfg = RunConfig.from_flat(
            dict(variant="ksparse", hidden=40, k=2, k_start=k_start, steps=300, batch_size=32, seed=seed,
                 device="cpu")
        )  # fmt: skip
        trainer = Trainer(cfg, tiny_digits)
        trainer.advance()
        _, codes = metrics.forward_all(trainer.model, trainer.x)
        return float(((codes != 0).sum(dim=0) == 0).float().mean())  # units never kept on any input

    fixed, scheduled = dead(0), dead(20)
    assert fixed > 0.5 and scheduled < fixed - 0.15, (fixed, scheduled)


def test_alpha_k_rule_keeps_alpha_times_k_units_outside_training_only():
    model, x, cfg = tiny("ksparse", hidden=10, k=3, alpha=2.5)
    z = model.encoder(x).detach().numpy()
    assert ((model.encode(x) != 0).sum(dim=1) == 3).all()  # training: k
    model.eval()
    h = model.encode(x).detach().numpy()
    for row, z_row in zip(h, z, strict=True):  # round(2.5·3) = round(7.5) = 8 largest linear values
        assert set(np.flatnonzero(row)) == set(np.argsort(z_row)[-8:])
    capped, _, _ = tiny("ksparse", hidden=10, k=4, alpha=3.0)
    capped.eval()
    assert ((capped.encode(x) != 0).sum(dim=1) == 10).all()  # 12 > 10 units: all of them


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"k_start": 11}, r"k_start must be 0 \(no schedule\) or in \[k=2, hidden=10\], got 11"),
        ({"k_start": 1}, r"k_start must be 0 \(no schedule\) or in \[k=2"),
        ({"k_start": -1}, "k_start must be >= 0"),
        ({"k_anneal": 0.0}, r"k_anneal must be in \(0, 1\]"),
        ({"alpha": 0.9}, "alpha must be >= 1"),
    ],
)
def test_k_schedule_and_alpha_settings_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(variant="ksparse", hidden=10, k=2, **changes)


# ----- convolutional ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 8), (7, 5)])
def test_conv_feature_maps_are_half_size_and_reconstruction_has_the_input_shape(shape):
    model = ConvAutoencoder(shape, kernels=3, kernel_size=5)
    x = torch.rand(2, shape[0] * shape[1])
    maps = model.feature_maps(x)
    assert maps.shape == (2, 3, (shape[0] + 1) // 2, (shape[1] + 1) // 2)
    out = model(x)
    assert out.recon.shape == x.shape and torch.equal(out.hidden, maps.flatten(1))
    assert model.filters().shape == (3, 25) and model.filter_shape((8, 8)) == (5, 5)


def test_conv_kl_penalty_uses_one_rho_hat_per_kernel_weighted_by_the_positions():
    model, x, cfg = tiny("conv", n_side=6, kernels=3, beta=2.0)
    out = model(x)
    maps = model.feature_maps(x).detach()  # [5, 3, 3, 3]: 6×6 images give 3×3 maps, P = 9 positions
    rho_hat = maps.mean(dim=(0, 2, 3)).numpy()  # [kernels]
    rho = cfg.rho
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    got = loss_terms(model, x, out, cfg)["sparsity"].item()
    assert got == pytest.approx(cfg.beta * 9 * kl.sum(), rel=1e-10)
    codes = model.sparsity_codes(AEOutput(recon=out.recon, hidden=out.hidden))  # what the penalty sees
    np.testing.assert_allclose(codes.mean(dim=0).detach().numpy(), rho_hat, rtol=1e-12)


def test_conv_l1_penalty_is_the_one_layer_models_on_every_code_unit():
    """β·P·mean over (sample, position) of Σₖ|h| = β·mean over samples of Σ over all kernels·positions."""
    model, x, cfg = tiny("conv", n_side=6, kernels=3, beta=0.5, penalty="l1")
    out = model(x)
    every_unit = out.hidden.detach().abs().sum(dim=1).mean().item()  # [5, 3·9] codes, per sample
    assert loss_terms(model, x, out, cfg)["sparsity"].item() == pytest.approx(0.5 * every_unit, rel=1e-10)


@pytest.mark.slow
def test_conv_kl_penalty_brings_the_kernels_mean_activation_to_rho_on_large_maps(tiny_digits):
    """Digits upsampled to 24×24 (12×12 maps, P = 144): after 400 Adam steps every kernel's ρ̂ is within
    2× of ρ = 0.05. Without the factor P (β·Σₖ KL alone) the same run ends near 0.15, 3× the target."""
    up = torch.nn.functional.interpolate(tiny_digits.train.view(-1, 1, 8, 8), scale_factor=3, mode="bilinear")
    dataset = Dataset("digits-24", up.flatten(1), None, None, None, (24, 24))
    cfg = RunConfig.from_flat(
        dict(variant="conv", kernels=8, rho=0.05, beta=3.0, steps=400, batch_size=32, seed=0, device="cpu")
    )
    trainer = Trainer(cfg, dataset)
    trainer.advance()
    with torch.no_grad():
        rho_hat = trainer.model.feature_maps(trainer.x).mean(dim=(0, 2, 3))  # per kernel, by hand
    assert float(rho_hat.max()) < 2 * 0.05, rho_hat
    assert float(rho_hat.mean()) == pytest.approx(0.05, rel=0.5)


# ----- deep -------------------------------------------------------------------------------------------------


def test_deep_filters_are_the_first_layer_and_extras_hold_every_layer():
    model, x, cfg = tiny("deep", layers=(7, 5), hidden=3)
    assert model.filters().shape == (7, 16)
    extras = model.snapshot_extras(x, x)
    assert {k: tuple(v.shape) for k, v in extras.items()} == {
        "layer1_activations": (5, 7),
        "layer2_activations": (5, 5),
        "layer3_activations": (5, 3),
    }
    assert torch.equal(extras["layer3_activations"], model(x).hidden)
    shallow, _, _ = tiny("deep", layers=(), hidden=3)  # no layers before the code: one encoder layer
    assert shallow.filters().shape == (3, 16) and shallow(x).recon.shape == x.shape


# ----- every variant ----------------------------------------------------------------------------------------

GRADCHECK_CASES = [
    ("deep", {"penalty": "kl"}),
    ("deep", {"penalty": "topk"}),
    ("conv", {"penalty": "kl"}),
    ("denoising", {"corruption": "gaussian"}),
    ("denoising", {"corruption": "salt_pepper"}),
    ("vae", {}),
    ("vae", {"output": "linear"}),
    ("contractive", {"penalty": "kl"}),
    ("ksparse", {"tied": False}),
    ("ksparse", {"tied": True}),
]


def topk_margin(z: torch.Tensor, k: int) -> float:
    """Smallest gap between the k-th and (k+1)-th largest entry of a row of z."""
    top = z.detach().topk(k + 1, dim=1).values
    return float((top[:, k - 1] - top[:, k]).min())


def gradient_mismatch(
    model: torch.nn.Module, x: torch.Tensor, cfg: ModelConfig
) -> dict[str, tuple[float, float]]:
    """name -> (‖autograd − central differences‖, ‖autograd + central differences‖) for the objective.

    The noise of the stochastic variants is re-seeded before every evaluation, so the objective is a
    deterministic function of the parameters.
    """

    def objective() -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return loss_terms(model, x, model(x), cfg)["total"]

    names, params = zip(*model.named_parameters(), strict=True)
    analytic = torch.autograd.grad(objective(), params)
    numeric = gradcheck.numeric_grad(objective, list(params), eps=1e-6)
    return {
        n: (float((a - g).norm()), float((a + g).norm()))
        for n, a, g in zip(names, analytic, numeric, strict=True)
    }


@pytest.mark.parametrize(("variant", "changes"), GRADCHECK_CASES)
def test_variant_objective_gradient_matches_central_differences(variant, changes):
    model, x, cfg = tiny(variant, **changes)
    model.train()  # denoising and vae: the corrupted / sampled path is the one checked
    # Top-k: a ±1e-6 step must not change which units are kept, so the linear codes must not nearly tie.
    if variant == "ksparse":
        assert topk_margin(model.encoder(x), cfg.k) > 1e-4
    if variant == "deep" and cfg.penalty == "topk":
        model.code_layer.k = None  # the code before top-k
        assert topk_margin(model.encode(x), cfg.k) > 1e-4
        model.code_layer.k = cfg.k
    mismatch = gradient_mismatch(model, x, cfg)
    # UFLDL's relative error, with an absolute floor for tensors whose gradient nearly cancels over the batch
    # (central differences in float64 carry ~1e-10 of round-off per element).
    assert all(diff <= 1e-7 * total + 1e-9 for diff, total in mismatch.values()), mismatch
    assert sum(total for _, total in mismatch.values()) > 1e-3  # the objective does depend on the parameters


def pattern_data(n: int = 160, side: int = 8, seed: int = 0) -> Dataset:
    """Sums of random horizontal / vertical bars on an 8×8 grid, with labels = number of bars."""
    g = torch.Generator().manual_seed(seed)
    on = torch.rand(n, 2 * side, generator=g) < 0.2
    images = torch.zeros(n, side, side)
    images += on[:, :side, None].float()
    images += on[:, None, side:].float()
    x = images.clamp(max=1.0).flatten(1)
    labels = on.sum(dim=1)
    return Dataset("patterns", x[:128], x[128:], labels[:128], labels[128:], (side, side))


def expected_extras(variant: str, cfg: RunConfig, n_train: int) -> dict[str, tuple[int, ...]]:
    m = cfg.model
    return {
        "deep": {"layer1_activations": (SHOW_SIZE, 16), "layer2_activations": (SHOW_SIZE, m.hidden)},
        "conv": {"feature_maps": (SHOW_SIZE, m.kernels, 4, 4), "decoder_kernels": (m.kernels, 9)},
        "denoising": {"noisy_inputs": (SHOW_SIZE, 64), "denoised": (SHOW_SIZE, 64)},
        "vae": {
            "prior_samples": (16, 64),
            "latent_grid": (100, 64),
            "latent_axis": (10,),
            "kl_per_dim": (m.latent,),
            "posterior_var": (m.latent,),
        },
        "contractive": {"jacobian_norms": (min(PROBE_SIZE, n_train),)},
        "ksparse": {"k_train": (), "k_encode": ()},
    }[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_trains_with_decreasing_loss_and_snapshots_its_views(variant):
    dataset = pattern_data()
    cfg = RunConfig().replace(
        variant=variant,
        hidden=8,
        layers=(16,),
        kernels=4,
        kernel_size=3,
        k=3,
        lr=1e-2,
        batch_size=32,
        steps=160,
        snapshot_every=80,
        weight_decay=1e-4,
        device="cpu",
    )
    snaps = list(Trainer(cfg, dataset).run())
    assert [s.step for s in snaps] == [80, 160] and snaps[-1].status == "done"
    total = snaps[-1].history["total"]
    assert total[-10:].mean() < 0.9 * total[:10].mean(), total
    last = snaps[-1]
    assert {k: v.shape for k, v in last.extras.items()} == expected_extras(variant, cfg, len(dataset.train))
    assert all(np.isfinite(v).all() for v in last.extras.values())
    code = cfg.model.kernels * 16 if variant == "conv" else cfg.model.latent if variant == "vae" else 8
    assert last.activations.shape == (len(dataset.train), code)
    filters = {"deep": (16, 64), "conv": (4, 9)}.get(variant, (8, 64))  # first layer: [units, pixels]
    assert last.encoder_weight.shape == filters
    assert last.filter_shape == ((3, 3) if variant == "conv" else (8, 8))
    extra_terms = {"vae": {"kl_prior"}, "contractive": {"contractive", "sparsity"}, "ksparse": set()}
    assert set(last.losses) - {"reconstruction", "weight_decay", "total"} == extra_terms.get(
        variant, {"sparsity"}
    )
    if variant == "denoising":  # the noisy pictures are seeded: the same at every snapshot
        np.testing.assert_array_equal(snaps[0].extras["noisy_inputs"], last.extras["noisy_inputs"])
