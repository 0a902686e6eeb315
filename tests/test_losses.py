"""Loss terms against formulas written out in numpy here; the whole objective against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_core.config.run import ModelConfig
from sae_core.models import build, keep_topk
from sae_core.models.base import reconstruction_loss
from sae_core.penalties import kl, l1
from sae_core.train import objective as losses


def np_kl(rho: float, rho_hat: np.ndarray) -> np.ndarray:
    """KL(Bernoulli(ρ) ‖ Bernoulli(ρ̂)) written out."""
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


def random_codes(batch: int = 5, hidden: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.02, 0.98, size=(batch, hidden))


def test_kl_sparsity_value_matches_the_written_out_formula():
    h = random_codes()
    rho, beta = 0.05, 3.0
    got = kl.kl_sparsity(torch.from_numpy(h), rho, beta).item()
    assert got == pytest.approx(beta * np_kl(rho, h.mean(axis=0)).sum(), rel=1e-12)


def test_kl_sparsity_is_zero_when_every_unit_sits_at_rho():
    h = torch.full((4, 6), 0.2, dtype=torch.float64)
    assert kl.kl_sparsity(h, 0.2, 5.0).item() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(("rho", "beta"), [(0.05, 3.0), (0.3, 0.7)])
def test_kl_sparsity_gradient_matches_the_hand_derivative(rho, beta):
    h_np = random_codes(batch=6, hidden=4, seed=1)
    h = torch.from_numpy(h_np).requires_grad_(True)
    kl.kl_sparsity(h, rho, beta).backward()
    # d/dh[b, j] of β Σⱼ KL(ρ‖ρ̂ⱼ), ρ̂ⱼ = mean_b h[b, j]: β(−ρ/ρ̂ⱼ + (1−ρ)/(1−ρ̂ⱼ)) / batch, the same for every b.
    rho_hat = h_np.mean(axis=0)
    per_unit = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) / h_np.shape[0]
    expected = np.broadcast_to(per_unit, h_np.shape)
    np.testing.assert_allclose(h.grad.numpy(), expected, rtol=1e-12)


def test_kl_clamps_rho_hat_into_eps_band_so_dead_and_saturated_units_stay_finite():
    eps = kl.EPS
    assert 0 < eps <= 1e-4  # "tiny": the clamp must not change ρ̂ of any unit that is really on
    rho, beta = 0.1, 2.0
    # Unit 0 fully off (ρ̂ = 0), unit 1 saturated (ρ̂ = 1), unit 2 ordinary.
    h_np = np.array([[0.0, 1.0, 0.3], [0.0, 1.0, 0.5]])
    h = torch.from_numpy(h_np).requires_grad_(True)
    value = kl.kl_sparsity(h, rho, beta)
    value.backward()
    expected = beta * np_kl(rho, np.array([eps, 1 - eps, 0.4])).sum()
    assert np.isfinite(value.item())
    assert value.item() == pytest.approx(expected, rel=1e-12)
    assert torch.isfinite(h.grad).all()
    # Just inside the band nothing is clamped: the value and the derivative are the plain formula.
    h2_np = np.full((2, 1), 10 * eps)
    h2 = torch.from_numpy(h2_np).requires_grad_(True)
    v2 = kl.kl_sparsity(h2, rho, beta)
    v2.backward()
    assert v2.item() == pytest.approx(beta * np_kl(rho, np.array([10 * eps]))[0], rel=1e-12)
    grad = beta * (-rho / (10 * eps) + (1 - rho) / (1 - 10 * eps)) / 2
    np.testing.assert_allclose(h2.grad.numpy(), np.full((2, 1), grad), rtol=1e-12)


def test_a_dead_unit_gets_the_kl_gradient_of_the_band_edge_pushing_it_up():
    """ρ̂ = 0 (a unit off on every sample) and ρ̂ = 1 (saturated): the clamp bounds the value, but the
    gradient is the derivative of KL(ρ‖·) at the band's edge, so descent moves them back towards ρ."""
    eps, rho = kl.EPS, 0.05
    rho_hat = torch.tensor([0.0, 1.0, 0.2], dtype=torch.float64, requires_grad=True)
    kl.kl_divergence(rho, rho_hat).sum().backward()
    edge = np.array([eps, 1 - eps, 0.2])
    expected = -rho / edge + (1 - rho) / (1 - edge)
    np.testing.assert_allclose(rho_hat.grad.numpy(), expected, rtol=1e-12)
    assert rho_hat.grad[0] < -1e4  # descent raises the dead unit's ρ̂, strongly
    assert rho_hat.grad[1] > 1e4  # and lowers the saturated one's


def test_a_dead_sigmoid_units_bias_is_pushed_up_by_the_kl_penalty():
    """Through the model: a unit whose bias drives it to ρ̂ below EPS gets a bias gradient < 0 (so a
    descent step raises the bias), where a plain clamp gave exactly 0."""
    cfg = ModelConfig(hidden=3, penalty="kl", rho=0.05, beta=3.0, weight_decay=0.0)
    torch.manual_seed(0)
    model = build(cfg, 4, (2, 2)).double()
    with torch.no_grad():
        model.encoder.bias[0] = -40.0  # σ(−40 + small) ≈ 4e-18: far below EPS
    x = torch.rand(8, 4, dtype=torch.float64)
    out = model(x)
    assert out.hidden[:, 0].mean() < kl.EPS
    losses.sparsity_term(out.hidden, cfg).backward()
    assert model.encoder.bias.grad[0] < 0


def test_reconstruction_is_half_the_mean_over_samples_of_the_summed_squared_error():
    rng = np.random.default_rng(2)
    x, recon = rng.uniform(size=(7, 5)), rng.uniform(size=(7, 5))
    got = reconstruction_loss(torch.from_numpy(recon), torch.from_numpy(x)).item()
    assert got == pytest.approx(0.5 * np.mean(np.sum((recon - x) ** 2, axis=1)), rel=1e-12)


def test_l1_sparsity_is_beta_times_mean_over_samples_of_summed_absolute_codes():
    h = np.random.default_rng(3).normal(size=(6, 4))
    got = l1.l1_sparsity(torch.from_numpy(h), 0.3).item()
    assert got == pytest.approx(0.3 * np.mean(np.sum(np.abs(h), axis=1)), rel=1e-12)


def tiny_model(penalty: str, weight_decay: float = 1e-2, seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden=4, penalty=penalty, k=2, weight_decay=weight_decay, **kw)
    return build(cfg, 6, (2, 3)).double(), cfg


def test_weight_decay_is_half_lambda_times_squared_weights_and_ignores_biases():
    model, cfg = tiny_model("kl", weight_decay=0.03)
    with torch.no_grad():
        model.encoder.bias.fill_(5.0)  # large biases: if they were decayed the term would jump
        model.decoder.bias.fill_(-7.0)
    x = torch.rand(3, 6, dtype=torch.float64)
    term = losses.loss_terms(model, x, model(x), cfg)["weight_decay"].item()
    w1, w2 = model.encoder.weight.detach().numpy(), model.decoder.weight.detach().numpy()
    assert term == pytest.approx(0.03 / 2 * (np.sum(w1**2) + np.sum(w2**2)), rel=1e-12)


def test_zero_weight_decay_keeps_a_constant_zero_term():
    model, cfg = tiny_model("kl", weight_decay=0.0)
    x = torch.rand(3, 6, dtype=torch.float64)
    terms = losses.loss_terms(model, x, model(x), cfg)
    assert terms["weight_decay"].item() == 0.0 and not terms["weight_decay"].requires_grad
    assert terms["total"].item() == pytest.approx((terms["reconstruction"] + terms["sparsity"]).item())


@pytest.mark.parametrize(
    ("penalty", "names"),
    [
        ("kl", {"reconstruction", "sparsity", "weight_decay"}),
        ("l1", {"reconstruction", "sparsity", "weight_decay"}),
        ("topk", {"reconstruction", "weight_decay"}),
        ("none", {"reconstruction", "weight_decay"}),
    ],
)
def test_loss_terms_names_and_total_is_their_sum(penalty, names):
    model, cfg = tiny_model(penalty)
    x = torch.rand(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out = model(x)
    terms = losses.loss_terms(model, x, out, cfg)
    assert set(terms) == names | {"total"}
    assert terms["total"].item() == pytest.approx(sum(terms[n].item() for n in names), rel=1e-12)
    h, xh = out.hidden.detach().numpy(), out.recon.detach().numpy()
    assert terms["reconstruction"].item() == pytest.approx(
        0.5 * np.mean(np.sum((xh - x.numpy()) ** 2, axis=1)), rel=1e-12
    )
    if penalty == "kl":
        assert terms["sparsity"].item() == pytest.approx(
            cfg.beta * np_kl(cfg.rho, h.mean(0)).sum(), rel=1e-12
        )
    if penalty == "l1":
        assert terms["sparsity"].item() == pytest.approx(cfg.beta * np.abs(h).sum(1).mean(), rel=1e-12)


def test_keep_topk_leaves_exactly_the_k_largest_entries_of_each_row():
    h_np = np.random.default_rng(5).normal(size=(8, 10))
    for k in (1, 3, 7):
        kept = keep_topk(torch.from_numpy(h_np), k).numpy()
        for row, original in zip(kept, h_np, strict=True):
            nonzero = np.flatnonzero(row)
            assert len(nonzero) == k
            largest = np.argsort(original)[-k:]
            assert set(nonzero) == set(largest)
            np.testing.assert_array_equal(row[nonzero], original[nonzero])


@pytest.mark.parametrize(
    ("output", "activation"),
    [("linear", lambda z: z), ("sigmoid", lambda z: 1.0 / (1.0 + np.exp(-z)))],
    ids=["linear-codes", "sigmoid-codes"],
)
def test_topk_model_codes_have_exactly_k_nonzeros_per_row(output, activation):
    model, cfg = tiny_model("topk", output=output)  # auto: linear codes on signed data, sigmoid on [0, 1]
    x = torch.rand(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    h = model(x).hidden.detach().numpy()
    pre = model.encoder(x).detach().numpy()  # the code is the activation of the k largest pre-activations
    assert ((h != 0).sum(axis=1) == cfg.k).all()
    for row, full in zip(h, pre, strict=True):
        np.testing.assert_allclose(np.sort(row[row != 0]), activation(np.sort(full)[-cfg.k :]), rtol=1e-12)


# ----- the whole objective against central differences --------------------------------------------


def objective(model, x, cfg) -> torch.Tensor:
    return losses.loss_terms(model, x, model(x), cfg)["total"]


def central_difference_gradient(model, x, cfg, h: float = 1e-6) -> np.ndarray:
    """(f(θ + h eᵢ) − f(θ − h eᵢ)) / 2h for every parameter entry, in named_parameters order."""
    grads = []
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            g = np.empty(flat.numel())
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + h
                plus = objective(model, x, cfg).item()
                flat[i] = old - h
                minus = objective(model, x, cfg).item()
                flat[i] = old
                g[i] = (plus - minus) / (2 * h)
            grads.append(g)
    return np.concatenate(grads)


@pytest.mark.parametrize("penalty", ["kl", "l1", "topk", "none"])
@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_whole_objective_gradient_matches_finite_differences(penalty, output):
    model, cfg = tiny_model(penalty, weight_decay=1e-2, output=output, rho=0.2, beta=1.5)
    x = torch.rand(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    model.zero_grad()
    objective(model, x, cfg).backward()
    analytic = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    numeric = central_difference_gradient(model, x, cfg)
    assert np.linalg.norm(analytic) > 1e-3  # the check is not vacuous
    rel = np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric)
    assert rel < 1e-7, rel
