"""Every variant under every penalty it offers, through the Applications and Theory pages (AppTest).

For each case a short run is trained on the Train page (8×8 digits), then the Applications page's four
sections and the Theory page are opened as a user would. On digits every section applies to every variant,
so each must show its numbers, and sane ones: probe above chance, PSNR finite, AUC in [0, 1] (explained
when below 0.5), variance kept in [0, 1], never "nan". (What does not apply, an upload without labels, is
tested in test_applications_page.) A code that carries nothing (dead L1 units, a collapsed VAE) is said
to in words. The Theory page draws the current model: its units on the KL curve only under KL (one dot per
ρ̂ the penalty sums over: a conv model's kernels), a note of what applies instead otherwise, lifetime and
population sparsity or why they do not apply, and a gradient check of its tiny copy that passes.
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core.analysis import theory
from sae_core.models import REGISTRY
from sae_core.train import gradcheck

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 120  # the Theory page's first visit trains its three penalty runs on 2 shared cores
BASE = {"dataset": "digits", "max_samples": "500", "hidden": "16", "steps": "150", "batch_size": "64"}
OWN = {
    "deep": {"layers": "32"},
    "conv": {"kernels": "4", "kernel_size": "3"},
    # The preset's learning rate (0.1) collapses the VAE's latents onto the prior in 150 steps (so the page
    # lowers it, VariantSpec.adam_lr); that case has a test of its own
    # (test_a_code_that_carries_nothing_is_said_plainly).
    "vae": {"hidden": "32", "latent": "2", "lr": "0.01"},
    "ksparse": {"k": "4"},
}
"""A variant's own settings, small."""
PENALTY_SETTINGS = {"l1": {"penalty": "l1", "beta": "0.01"}, "topk": {"penalty": "topk", "k": "4"}}


def _cases() -> list[tuple[str, str]]:
    """(variant, penalty) for every variant in the registry and every penalty it offers, "none" included
    (the one it has instead of a choice, for the VAE and k-sparse)."""
    return [(name, p) for name in REGISTRY for p in gradcheck.penalties_of(name)]


CASES = _cases()


def _query(variant: str, penalty: str) -> dict[str, str]:
    settings = PENALTY_SETTINGS.get(penalty, {"penalty": penalty})
    if REGISTRY[variant].fixed_penalty is not None:
        settings = {}
    return {**BASE, "variant": variant, **settings, **OWN.get(variant, {})}


@pytest.fixture(scope="module", params=CASES, ids=[f"{v}-{p}" for v, p in CASES])
def trained(request):
    """(an AppTest session whose job has trained the case's short run to its end, variant, penalty)."""
    variant, penalty = request.param
    with pytest.MonkeyPatch.context() as mp:
        pin_navigation_mode(mp)
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update(_query(variant, penalty))
        try:
            at.run()
            at.switch_page("pages/train.py").run()
            _no_exceptions(at)
            job = at.session_state["job"]
            assert job.config.model.variant == variant
            assert job.config.model.effective_penalty == penalty
            at.button(key="train").click().run()
            poll(at, lambda: job.step_count >= 150 and not job.running, "the run's 150 steps", 90)
            yield at, variant, penalty
        finally:
            stop_jobs(at)


# ----- reading the page -------------------------------------------------------------------------------------
def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _charts(at: AppTest) -> dict:
    """Plotly figures by chart key (element ids end in '-<key>')."""
    return {c.proto.id.split("-", 2)[-1]: pio.from_json(c.proto.spec) for c in at.get("plotly_chart")}


def _array(values) -> np.ndarray | None:
    """A trace's numbers as float64 (plotly's JSON writes numpy arrays as base64 'bdata'), None for text."""
    if isinstance(values, dict) and "bdata" in values:
        arr = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        shape = values.get("shape")
        if isinstance(shape, str):
            shape = tuple(int(n) for n in shape.split(","))
        return arr.reshape(shape).astype(np.float64) if shape else arr.astype(np.float64)
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # text, or rows of different lengths
        return None


def _has_data(fig) -> bool:
    """Some trace of the figure holds a finite number (points, bars or heatmap cells)."""
    for trace in fig.data:
        for attr in ("y", "z"):
            values = getattr(trace, attr, None)
            arr = None if values is None else _array(values)
            if arr is not None and np.isfinite(arr).any():
                return True
    return False


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _number(text: str) -> float:
    """The first number of a metric's value ('87.5%' -> 87.5, '12.31 dB' -> 12.31, 'nan%' -> nan)."""
    match = re.search(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|nan|inf", text)
    assert match, text
    return float(match.group(0))


def _section(at: AppTest, name: str) -> None:
    at.segmented_control(key="app_section").set_value(name).run()
    _no_exceptions(at)


def _does_not_apply(at: AppTest) -> str | None:
    """The section's 'does not apply' message, if it shows one."""
    texts = [i.value for i in at.info if i.value.startswith("Does not apply here:")]
    return texts[0] if texts else None


def _assert_charts(at: AppTest, keys: set[str], section: str) -> None:
    charts = _charts(at)
    assert keys <= set(charts), (section, sorted(charts))
    for key in keys:
        assert _has_data(charts[key]), (section, key)
        title = charts[key].layout.title.text or ""
        assert not re.search(r"\bnan\b", title), (section, key, title)


# ----- the Applications page --------------------------------------------------------------------------------
def _feature_learning(at: AppTest) -> None:
    shown = _metrics(at)
    codes = next(v for k, v in shown.items() if k.startswith("Hidden codes ("))
    assert _number(codes) > 20, shown  # ten digit classes: chance is 10%
    assert _number(shown["Raw pixels (64 dims)"]) > 80, shown
    _assert_charts(at, {"app_probe_bars", "app_probe_curve", "app_confusion"}, "feature learning")


def _dimensionality_reduction(at: AppTest) -> None:
    kept = _number(_metrics(at)["Variance kept, codes' PCA map"])
    assert 0 <= kept <= 100, kept
    width = at.session_state["job"].latest().activations.shape[1]
    assert any("its map is the code itself" in c.value for c in at.caption) == (width <= 2)
    _assert_charts(at, {"app_map_codes", "app_map_pixels"}, "dimensionality reduction")


def _denoising(at: AppTest) -> None:
    shown = _metrics(at)
    for label in ("PSNR of the noisy input", "PSNR of the reconstruction", "PSNR without noise"):
        assert math.isfinite(_number(shown[label])) and _number(shown[label]) > 3, shown
    _assert_charts(at, {"app_denoise_images", "app_psnr_curve"}, "denoising")


def _anomaly_detection(at: AppTest) -> None:
    for source in ("noise", "dataset", "class"):
        at.radio(key="app_source_kind").set_value(source).run()
        _no_exceptions(at)
        if source == "class":  # a copy of the configuration trained without one digit, behind a button
            assert "AUC" not in _metrics(at)
            at.button(key="app_held_run").click().run()
            _no_exceptions(at)
        auc = _number(_metrics(at)["AUC"])
        assert 0.0 <= auc <= 1.0, (source, auc)
        below = any(c.value.startswith("AUC below 0.5") for c in at.caption)
        if abs(auc - 0.5) > 1e-3:  # the metric shows three decimals
            assert below == (auc < 0.5), (source, auc)  # an inverted score is explained, not left to puzzle
        _assert_charts(at, {"app_error_hist", "app_roc"}, f"anomaly detection ({source})")


SECTIONS = {
    "Feature learning": _feature_learning,
    "Dimensionality reduction": _dimensionality_reduction,
    "Denoising": _denoising,
    "Anomaly detection": _anomaly_detection,
}


def test_every_applications_section_shows_sane_numbers_or_says_why_not(trained):
    at, variant, _ = trained
    at.switch_page("pages/applications.py").run()
    _no_exceptions(at)
    captions = " ".join(c.value for c in at.caption)
    assert f"{variant} variant" in captions
    snap = at.session_state["job"].latest()
    model = snap.config.model
    assert model.spec.code_units(model, snap.activations.shape[1]) in captions  # what its features are
    for name, check in SECTIONS.items():
        _section(at, name)
        reason = _does_not_apply(at)
        if reason is not None:  # on digits every section applies
            pytest.fail(f"{name} does not apply to {variant}: {reason}")
        check(at)
        shown = _metrics(at)
        assert not any(re.search(r"nan|inf", v) for v in shown.values()), (name, shown)
        assert not at.warning, (name, [w.value for w in at.warning])  # these codes are not dead


# ----- the Theory page --------------------------------------------------------------------------------------
INSTEAD_OF_KL = {
    "l1": "L1",
    "topk": "top-k",
    "none": "no sparsity penalty",
    "jumprelu": "L0 on JumpReLU units",
}
"""What the KL section must name when the current model's penalty is not KL (a variant with a regulariser
of its own instead of the penalty, the VAE and k-sparse, names that: its spec's penalty_reason)."""


def test_theory_page_draws_the_current_model_and_its_gradient_check_passes(trained):
    at, variant, penalty = trained
    at.switch_page("pages/theory.py").run()
    _no_exceptions(at)
    snap = at.session_state["job"].latest()
    charts = _charts(at)
    # The KL curve: the model's units on it under KL only (one dot per ρ̂ the penalty sums over).
    kl_chart = charts["theory_kl_chart"]
    assert _has_data(kl_chart)
    dots = [t for t in kl_chart.data if t.name == "this model's units"]
    if penalty == "kl":
        assert len(dots) == 1 and _array(dots[0].x).size == snap.penalty_rho_hat.size, variant
        np.testing.assert_allclose(_array(dots[0].x), np.clip(snap.penalty_rho_hat, 0.002, 0.998), rtol=1e-6)
        assert any(f"Dots: the {snap.penalty_rho_hat.size} ρ̂" in c.value for c in at.caption)
    else:
        assert not dots, f"{variant} under {penalty} drawn on the KL curve"
        notes = [i.value for i in at.info if "not under the KL penalty" in i.value]
        spec = REGISTRY[variant]
        named = spec.penalty_reason if spec.fixed_penalty else INSTEAD_OF_KL[penalty]
        assert len(notes) == 1 and named in notes[0], notes
        # The objective's Sparsity bullet says the same before it teaches KL.
        instead = theory.sparsity_instead(snap.config.model)
        assert any(f"**Sparsity**: {instead}" in m.value for m in at.markdown)
    # Lifetime and population sparsity on the current model, or why they do not apply.
    if "activations" in REGISTRY[variant].standard_views:
        for key in ("theory_lifetime_chart", "theory_population_chart"):
            assert _has_data(charts[key]), key
        assert _array(charts["theory_population_chart"].data[0].y).sum() == len(snap.activations)
    else:
        assert any("do not apply" in i.value for i in at.info), [i.value for i in at.info]
    assert _has_data(charts["theory_penalties_chart"])
    # The gradient check of a tiny float64 copy of these settings.
    at.button(key="gradcheck_button").click().run()
    _no_exceptions(at)
    assert not at.warning, [w.value for w in at.warning]
    errors = [float(v) for v in at.dataframe[0].value["relative error"]]
    assert errors and max(errors) < gradcheck.TOLERANCE, errors
    assert any("the check passes" in s.value for s in at.success)


@pytest.mark.parametrize(
    "query",
    [
        {"penalty": "l1", "beta": "1"},  # the top of the L1 β slider: every ReLU unit dies
        # lr 0.1 named in the link (a link naming the VAE alone gets its lr 0.01): the latents collapse
        {"variant": "vae", "hidden": "32", "latent": "4", "lr": "0.1"},
    ],
    ids=["sparse-l1-dead", "vae-collapsed"],
)
def test_a_code_that_carries_nothing_is_said_plainly(query, monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params.update({**BASE, **query})
    try:
        at.run()
        at.switch_page("pages/train.py").run()
        job = at.session_state["job"]
        at.button(key="train").click().run()
        poll(at, lambda: job.step_count >= 150 and not job.running, "the run's 150 steps", 90)
        at.switch_page("pages/applications.py").run()
        _no_exceptions(at)
        width = job.latest().activations.shape[1]
        said = f"All {width} numbers of this model's code are the same for every sample"
        assert any(said in w.value and "so their probe is at chance" in w.value for w in at.warning)
        _section(at, "Dimensionality reduction")
        assert _metrics(at)["Variance kept, codes' PCA map"] == "none to keep"
        assert any(said in w.value and "their map is a single point" in w.value for w in at.warning)
        _assert_charts(at, {"app_map_codes", "app_map_pixels"}, "dimensionality reduction")
    finally:
        stop_jobs(at)
