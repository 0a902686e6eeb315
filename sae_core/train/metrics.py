"""Diagnostics of a trained autoencoder on a dataset: error, variance explained, sparsity.

Activity: a unit counts as *active* on a sample when |code| exceeds the model's `active_threshold`
(`models.base.ACTIVE_THRESHOLD`, one per code activation): non-zero for ReLU and linear / top-k codes
(top-k keeps negative values too), above 0.1 for sigmoid units, which are never exactly 0. The model
decides (`Autoencoder.active`): the VAE counts latent dimensions in use instead. L0, dead units and
activation density all use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from sae_core.config.run import ModelConfig
from sae_core.penalties.spec import Term
from sae_core.train.objective import loss_terms

if TYPE_CHECKING:
    import numpy as np

FOUND_THRESHOLD = 0.9
"""A true feature counts as found when some unit's feature correlates with it above this. Passing it for
two features at once needs them to correlate above 2·0.9² − 1 = 0.62; two bars correlate 0 (crossing)
or −1/7 (parallel), so one unit finds at most one bar, and a unit drawing two bars (about 0.7 with
each) finds neither."""
HELD_OUT_TERMS = ("reconstruction", "total")
"""The objective's terms recorded on the held-out probe (weight decay is the same on any data)."""


@torch.no_grad()
def forward_all(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstructions and codes for every row of x, in chunks. x: [N, D] -> ([N, D], [N, H])."""
    was_training = model.training
    model.eval()
    recons, codes = [], []
    for start in range(0, x.shape[0], chunk):
        out = model(x[start : start + chunk])
        recons.append(out.recon)
        codes.append(out.hidden)
    model.train(was_training)
    return torch.cat(recons), torch.cat(codes)


def active_rule(threshold: float, symbol: str = "hⱼ") -> str:
    """The rule `is_active` applies, for labels: "hⱼ ≠ 0" for threshold 0, else "hⱼ > 0.1" (only sigmoid
    codes, which are positive, have a threshold above 0, so |hⱼ| = hⱼ there)."""
    return f"{symbol} ≠ 0" if threshold == 0 else f"{symbol} > {threshold:g}"


def summary(
    x: torch.Tensor, recon: torch.Tensor, codes: torch.Tensor, active: torch.Tensor
) -> dict[str, float]:
    """Scalar metrics from inputs x [N, D], reconstructions [N, D], codes [N, H] and which of them are
    active, [N, H] bool (the model's `active(codes)`).

    recon_error: ½·mean Σᵢ(x̂ᵢ−xᵢ)² (the objective's term); mse: mean per pixel;
    fve: 1 − Σ(x−x̂)² / Σ(x−x̄)², x̄ the per-pixel mean (fraction of variance explained);
    mean_activation: mean of ρ̂ⱼ; l0: mean active units per sample; dead_fraction: units never active.
    """
    err = (recon - x).pow(2)
    total_var = (x - x.mean(dim=0)).pow(2).sum()
    return {
        "recon_error": float(0.5 * err.sum(dim=1).mean()),
        "mse": float(err.mean()),
        "fve": float(1.0 - err.sum() / total_var.clamp_min(1e-12)),
        "mean_activation": float(codes.mean()),
        "l0": float(active.float().sum(dim=1).mean()),
        "dead_fraction": float((~active.any(dim=0)).float().mean()),
    }


def unit_stats(codes: torch.Tensor, active: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-unit statistics from codes [N, H] and active [N, H] bool: rho_hat (mean activation) and density.

    density (lifetime sparsity): fraction of samples on which the unit is active, [H].
    """
    return {"rho_hat": codes.mean(dim=0), "density": active.float().mean(dim=0)}


def top_activating(codes: torch.Tensor, n: int = 9) -> torch.Tensor:
    """Indices of the n samples that drive each unit hardest. codes: [N, H] -> [H, n]."""
    return codes.topk(min(n, codes.shape[0]), dim=0).indices.T


EVAL_CHUNK = 1000
"""At most this many rows per forward pass of `evaluate`: the probe's size (PROBE_SIZE), whose forward pass
every snapshot makes and the run's memory estimate counts (sae_core.train.budget)."""
EVAL_CHUNK_BYTES = 4 * 2**20
"""And at most this many bytes of codes per forward pass. Wide codes in big chunks cost far more than their
size: 1000 rows of 16 384 units (64 MB of codes) raised the resident memory by 234 MB (the forward pass's
intermediates, and freed blocks the allocator keeps), 64 rows by 32 MB."""
FIRST_CHUNK = 16
"""Rows of the first forward pass, which measures how wide the codes are."""


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """All scalar metrics of `model` on the whole of x [N, D] (those of `summary`), in chunks of rows.

    Only per-unit and per-pixel sums are kept between chunks, never the [N, hidden] codes: evaluating
    20 000 samples of a 16 384-unit model at once took 2.9 GB for a run estimated at 376 MB. A model
    whose `active` looks at all the rows at once (the VAE) keeps its codes, [N, latent].
    """
    n, d = x.shape
    if n == 0:
        return summary(x, x, x.new_zeros(0, 0), x.new_zeros(0, 0, dtype=torch.bool))
    was_training = model.training
    model.eval()
    mean = sum(c.double().sum(dim=0) for c in x.split(EVAL_CHUNK)) / n
    err_sum = var_sum = code_sum = active_sum = 0.0
    units_active: torch.Tensor | None = None
    kept: list[torch.Tensor] = []
    start, rows = 0, FIRST_CHUNK
    while start < n:
        chunk = x[start : start + rows]
        start += chunk.shape[0]
        out = model(chunk)
        width = out.hidden[0].numel() * out.hidden.element_size()
        rows = max(FIRST_CHUNK, min(EVAL_CHUNK, EVAL_CHUNK_BYTES // max(1, width)))
        err_sum += float((out.recon - chunk).pow(2).sum(dtype=torch.float64))  # float64 sums, no copies
        var_sum += float((chunk.double() - mean).pow(2).sum())  # [rows, D]: inputs are narrow
        code_sum += float(out.hidden.sum(dtype=torch.float64))
        if not getattr(model, "active_by_row", True):
            kept.append(out.hidden)
            continue
        active = model.active(out.hidden)
        active_sum += float(active.sum())
        seen = active.any(dim=0)
        units_active = seen if units_active is None else units_active | seen
        del out, active
    model.train(was_training)
    if kept:
        active = model.active(torch.cat(kept))
        active_sum, units_active = float(active.sum()), active.any(dim=0)
    assert units_active is not None
    return {
        "recon_error": 0.5 * err_sum / n,
        "mse": err_sum / (n * d),
        "fve": 1.0 - err_sum / max(var_sum, 1e-12),
        "mean_activation": code_sum / (n * units_active.numel()),
        "l0": active_sum / n,
        "dead_fraction": float((~units_active).float().mean()),
    }


@torch.no_grad()
def held_out(
    model: nn.Module, x: torch.Tensor, cfg: ModelConfig, term: Term | None = None
) -> dict[str, float]:
    """The objective's terms, recon_error (as `summary`'s) and the sample count on held-out inputs
    x [N, D], the model in eval mode (no corruption, the VAE's mean code) as for the probe metrics.
    One forward pass and one device sync. term: the sparsity term training uses, when not the penalty's."""
    was_training = model.training
    model.eval()
    out = model(x)
    terms = loss_terms(model, x, out, cfg, term)
    model.train(was_training)
    terms["recon_error"] = 0.5 * (out.recon - x).pow(2).sum(dim=1).mean()
    values = torch.stack([t.detach().float() for t in terms.values()]).cpu().tolist()
    return {**dict(zip(terms, values, strict=True)), "samples": float(x.shape[0])}


def feature_similarity(
    features: torch.Tensor, truth: torch.Tensor, similarity: str = "correlation"
) -> torch.Tensor:
    """Every true feature against every unit's feature. features: [H, D], truth: [K, D] -> [K, H] float64.

    "correlation" (Pearson, over the D pixels): each row minus its mean, divided by its norm, so neither the
    scale of a filter nor an offset (a bias the decoder could carry) matters. "cosine": each row divided by
    its norm, for directions whose offset means something (superposition's features); the sign counts, so
    a unit drawing −fᵢ does not match fᵢ.
    """
    if similarity not in ("correlation", "cosine"):
        raise ValueError(f"similarity must be correlation or cosine, got {similarity!r}")

    def unit_rows(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.double()
        if similarity == "correlation":
            rows = rows - rows.mean(dim=1, keepdim=True)
        return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return unit_rows(truth) @ unit_rows(features).T


def best_match(
    features: torch.Tensor, truth: torch.Tensor, similarity: str = "correlation"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(each true feature's best similarity with any unit's feature [K], that unit's index [K]): the
    maximum over units of `feature_similarity`."""
    best = feature_similarity(features, truth, similarity).max(dim=1)
    return best.values, best.indices


def feature_match(
    features: torch.Tensor, truth: torch.Tensor, similarity: str = "correlation"
) -> torch.Tensor:
    """Each true feature's best similarity with any unit's feature (`best_match`'s values) -> [K]."""
    return best_match(features, truth, similarity)[0]


def mmcs(match: torch.Tensor | np.ndarray) -> float:
    """Mean max cosine similarity (Sharkey, Braun & Millidge 2022): the mean over the true features of
    each one's best cosine similarity with a learned feature, `feature_match(..., "cosine")`. 1 when every
    true feature is drawn exactly by some unit; a random dictionary scores far less (about 0.44 for 128
    random directions in 32 dimensions)."""
    return float(torch.as_tensor(match, dtype=torch.float64).mean())


def features_found(match: torch.Tensor | np.ndarray, threshold: float = FOUND_THRESHOLD) -> int:
    """How many true features some unit matches with a similarity above threshold (see feature_match);
    match: [n_true], a tensor or a snapshot's array."""
    return int((torch.as_tensor(match) > threshold).sum())


def truth_summary(match: torch.Tensor | np.ndarray | None, similarity: str) -> dict[str, float | int]:
    """The numbers a run with ground truth reports (metrics.json, the CLI): features_found and
    features_total, and for cosine matching (superposition) mmcs; {} without ground truth.
    match: [n_true], a snapshot's truth_match."""
    if match is None:
        return {}
    out: dict[str, float | int] = {"features_found": features_found(match), "features_total": len(match)}
    if similarity == "cosine":
        out["mmcs"] = mmcs(match)
    return out
