"""Every registered variant, through everything that reads its spec: build, train, snapshot, every view,
the formula, the CLI; and the activity threshold, the same in the numbers and in every label.

Parametrised over `sae_core.models.REGISTRY`, so a new variant module is covered by these tests as soon as
it exists.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from sae_core.analysis import formulas
from sae_core.cli import main as cli
from sae_core.config.run import RunConfig
from sae_core.data.datasets import load
from sae_core.figures import training as figures
from sae_core.models import REGISTRY, build, get_spec
from sae_core.models.spec import STANDARD_VIEWS
from sae_core.penalties.registry import PENALTY_NAMES
from sae_core.train.trainer import Trainer

TINY = {
    "dataset": "digits",
    "max_samples": 200,
    "hidden": 6,
    "layers": (8,),
    "kernels": 3,
    "kernel_size": 3,
    "latent": 2,
    "k": 3,
    "batch_size": 32,
    "steps": 12,
    "snapshot_every": 6,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def digits():
    return load(RunConfig.from_flat(TINY).data)


@pytest.fixture(scope="module")
def snaps(digits):
    """variant -> (trainer, last snapshot) after a few steps."""
    torch.manual_seed(0)
    out = {}
    for name in REGISTRY:
        trainer = Trainer(RunConfig.from_flat({**TINY, "variant": name}), digits)
        out[name] = (trainer, list(trainer.run())[-1])
    return out


def _balanced(tex: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_the_registry_holds_every_variant_module_with_a_spec():
    assert list(REGISTRY)[0] == "sparse"
    assert {"sparse", "deep", "conv", "denoising", "vae", "contractive", "ksparse"} <= set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.title and spec.note
        assert spec.standard_views <= STANDARD_VIEWS
        assert spec.fixed_penalty is None or spec.penalty_reason
    with pytest.raises(ValueError, match="variant must be one of sparse, deep"):
        get_spec("nope")
    with pytest.raises(ValueError, match="variant must be one of"):
        RunConfig().replace(variant="nope")


@pytest.mark.parametrize("variant", list(REGISTRY))
def test_variant_trains_and_its_snapshot_draws_every_view(snaps, variant):
    trainer, snap = snaps[variant]
    spec = REGISTRY[variant]
    assert snap.step == 12 and snap.status == "done"
    assert np.isfinite(snap.history["total"]).all()
    assert snap.active_threshold == trainer.model.active_threshold
    drawn = [
        figures.filters_figure(snap, "encoder"),
        figures.filters_figure(snap, "decoder"),
        figures.loss_figure(snap),
        figures.reconstructions_figure(snap),
        figures.rho_hat_histogram(snap),
        figures.activation_histogram(snap),
        figures.density_histogram(snap),
    ]
    if snap.config.model.penalty_spec.unit_curve is not None:
        drawn.append(figures.kl_curve_figure(snap))
    else:  # no per-unit curve (the VAE's none, k-sparse's top-k): the snapshot keeps none, and says so
        (note,) = figures.kl_curve_figure(snap).layout.annotations
        assert snap.kl_per_unit is None and "has no" in note.text
    for view in spec.views:
        draw = view.figure_function()
        drawn.append(draw(snap, index=0) if view.pick_input else draw(snap))
    for fig in drawn:
        assert fig.layout.title.text, fig
        assert not (fig.layout.annotations and "has no" in (fig.layout.annotations[0].text or "")), fig
    for label, value, help_text in figures.metrics_row(snap) + spec.metric_rows(snap):
        assert label and value and help_text
    labels = {label for label, _, _ in figures.metrics_row(snap)}
    assert {"Reconstruction error", "Test error", "Variance explained"} <= labels
    assert ({"L0", "Dead units"} <= labels) == ("rho_hat" in spec.standard_views)


@pytest.mark.parametrize("variant", list(REGISTRY))
def test_variant_formula_is_balanced_and_names_its_own_terms(variant):
    cfg = RunConfig.from_flat({**TINY, "variant": variant})
    tex = formulas.objective_latex(cfg)
    assert tex.startswith(r"\begin{aligned}J(W, b) &= ") and _balanced(tex)
    spec = REGISTRY[variant]
    for term in spec.extra_tex(cfg.model) + spec.notes_tex(cfg.model):
        assert term in tex
    replaced = spec.reconstruction_tex(cfg.model)
    assert (replaced or formulas.RECONSTRUCTION) in tex
    assert (r"\mathrm{KL}\bigl(0.05" in tex) == (cfg.model.effective_penalty == "kl")


@pytest.mark.parametrize("variant", list(REGISTRY))
def test_variant_trains_from_the_cli(variant, tmp_path):
    flags = ["--variant", variant, "--dataset", "digits", "--max-samples", "200", "--steps", "8"]
    flags += ["--hidden", "6", "--layers", "8", "--kernels", "3", "--kernel-size", "3", "--k", "3"]
    assert cli.main(["train", *flags, "--device", "cpu", "--quiet", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"]["variant"] == variant
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "filters.png").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 8 and np.isfinite(metrics["recon_error"])


def test_cli_help_lists_every_variant_with_its_note(capsys):
    try:
        cli.main(["train", "--help"])
    except SystemExit:  # argparse exits after printing the help
        pass
    text = " ".join(capsys.readouterr().out.split())
    for spec in REGISTRY.values():
        assert spec.name in text and " ".join(spec.note.split()) in text


# ----- one activity threshold -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(REGISTRY))
@pytest.mark.parametrize("penalty", PENALTY_NAMES)
def test_every_label_states_the_threshold_the_numbers_were_counted_with(digits, variant, penalty):
    if penalty not in REGISTRY[variant].penalties and REGISTRY[variant].fixed_penalty is None:
        pytest.skip(f"{variant} does not take the {penalty} penalty")
    cfg = RunConfig.from_flat({**TINY, "variant": variant, "penalty": penalty, "steps": 1})
    torch.manual_seed(0)
    trainer = Trainer(cfg, digits)
    snap = trainer.snapshot("ready")
    threshold = build(cfg.model, 64, (8, 8)).active_threshold
    assert snap.active_threshold == threshold
    codes = np.asarray(snap.activations, dtype=np.float64)
    # Independent count: non-zero for ReLU / linear codes (threshold 0), above 0.1 for sigmoid ones; the
    # VAE's μ counts latent dimensions whose variance over the probe exceeds 0.01 (Burda et al. 2016).
    if variant == "vae":
        active = np.broadcast_to(codes.var(axis=0, ddof=1) > 0.01, codes.shape)
    else:
        active = np.abs(codes) > threshold
    assert snap.metrics["l0"] == pytest.approx(active.sum(axis=1).mean(), rel=1e-6)
    np.testing.assert_allclose(snap.density, active.mean(axis=0), rtol=1e-6)
    rule = "hⱼ ≠ 0" if threshold == 0 else f"hⱼ > {threshold:g}"
    assert threshold in (0.0, 0.1)
    density_title = figures.density_histogram(snap).layout.xaxis.title.text
    assert rule in density_title
    helps = {label: help_text for label, _, help_text in figures.metrics_row(snap)}
    if "L0" in helps:
        assert rule.replace("hⱼ", "h") in helps["L0"]
    rho_fig = figures.rho_hat_histogram(snap)
    targets = [a.text for a in rho_fig.layout.annotations or ()]
    assert (targets == [f"target ρ = {cfg.model.rho:g}"]) == (cfg.model.effective_penalty == "kl")


def test_threshold_of_sigmoid_code_stays_sigmoid_under_l1_for_the_contractive_variant(digits):
    """The old figures worked the threshold out from the penalty (L1 -> ReLU, 1e-6) while the contractive
    model is always sigmoid and was counted with 0.1."""
    cfg = RunConfig.from_flat({**TINY, "variant": "contractive", "penalty": "l1"})
    snap = Trainer(cfg, digits).snapshot("ready")
    assert snap.active_threshold == 0.1
    assert "hⱼ > 0.1 " in figures.density_histogram(snap).layout.xaxis.title.text


def test_the_vae_main_views_show_its_own_quantities_not_unit_activity(snaps):
    _, snap = snaps["vae"]
    spec = REGISTRY["vae"]
    assert not spec.standard_views & {"rho_hat", "density", "penalty_curve"}
    labels = [label for label, _, _ in figures.metrics_row(snap) + spec.metric_rows(snap)]
    assert "L0" not in labels and "Dead units" not in labels
    assert "KL to the prior" in labels and "Active latent dimensions" in labels
    assert {"vae_kl_chart"} <= {view.key for view in spec.views}
