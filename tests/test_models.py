"""Model construction: UFLDL initialisation, parameter names and shapes, encode/decode/forward."""

from __future__ import annotations

import math

import pytest
import torch

from sae_core.config.run import ModelConfig
from sae_core.models import AEOutput, SparseAutoencoder, build


def test_parameter_names_and_shapes_are_the_saved_layout():
    model = build(ModelConfig(hidden=7), 12, (3, 4))
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "encoder.weight": (7, 12),
        "encoder.bias": (7,),
        "decoder.weight": (12, 7),
        "decoder.bias": (12,),
    }


def test_ufldl_init_draws_weights_uniformly_in_plus_minus_r_and_zeroes_biases():
    n_in, hidden = 64, 50
    r = math.sqrt(6) / math.sqrt(n_in + hidden + 1)
    torch.manual_seed(0)
    model = SparseAutoencoder(n_in, hidden)
    for layer in (model.encoder, model.decoder):
        w = layer.weight.detach()
        assert w.abs().max() <= r
        # 3200 uniform draws on [-r, r]: the extremes come within 1% of ±r, the moments match U(-r, r).
        assert w.max() > 0.99 * r and w.min() < -0.99 * r
        assert abs(w.mean().item()) < 0.05 * r
        assert w.var().item() == pytest.approx(r**2 / 3, rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0


def test_init_is_reproducible_under_a_seed_and_differs_across_seeds():
    def weights(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return build(ModelConfig(hidden=5), 10, (2, 5)).encoder.weight.detach().clone()

    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


def test_forward_returns_named_output_of_encode_and_decode():
    torch.manual_seed(1)
    model = build(ModelConfig(hidden=4, output="sigmoid"), 6, (2, 3))
    x = torch.rand(5, 6)
    out = model(x)
    assert isinstance(out, AEOutput)
    assert out.hidden.shape == (5, 4) and out.recon.shape == (5, 6)
    # h = σ(W₁x + b₁), x̂ = σ(W₂h + b₂) written out with the raw parameters.
    h = torch.sigmoid(x @ model.encoder.weight.T + model.encoder.bias)
    torch.testing.assert_close(out.hidden, h)
    torch.testing.assert_close(out.recon, torch.sigmoid(h @ model.decoder.weight.T + model.decoder.bias))
    assert out.mu is None and out.logvar is None and out.corrupted is None


def test_linear_output_and_relu_hidden_follow_the_config():
    torch.manual_seed(2)
    model = build(ModelConfig(hidden=4, penalty="l1", output="linear"), 6, (2, 3))
    x = torch.randn(5, 6)
    out = model(x)
    h = torch.relu(x @ model.encoder.weight.T + model.encoder.bias)
    torch.testing.assert_close(out.hidden, h)
    torch.testing.assert_close(out.recon, h @ model.decoder.weight.T + model.decoder.bias)


def test_decayed_weights_are_the_two_matrices_and_filters_are_encoder_rows():
    model = build(ModelConfig(hidden=3), 4, (2, 2))
    decayed = model.decayed_weights()
    assert len(decayed) == 2
    assert decayed[0] is model.encoder.weight and decayed[1] is model.decoder.weight
    assert model.filters() is model.encoder.weight
