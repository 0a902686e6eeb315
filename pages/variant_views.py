"""The Train page's parts that belong to one autoencoder variant: its sidebar controls and its views.

Not a page itself: pages/train.py calls `draw_controls` in the sidebar's Model section, right under the
Variant select, and `draw_views` in its live fragment. Controls follow the page's rules: the widget key
is the config field's name, the tooltip is the field's docstring, a change goes through
`common.change_setting` (a refused value gets its message under the control); λ_c applies live, the
other fields rebuild the model on the page's next run. The figures are pure functions in
`sae_core.figures_variants`.
"""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import streamlit as st

from pages import common
from sae_core import figures_variants as fv
from sae_core.config import FIELD_DOCS, Corruption
from sae_core.jobs import TrainingJob
from sae_core.training import Snapshot

VARIANT_NAMES = {
    "sparse": "Sparse (one hidden layer)",
    "deep": "Deep (stacked)",
    "conv": "Convolutional",
    "denoising": "Denoising",
    "vae": "Variational (VAE)",
    "contractive": "Contractive",
    "ksparse": "k-sparse (top-k)",
}
"""What the Variant select shows for each config value (the value itself stays the config's literal)."""
CORRUPTION_NAMES = {
    "gaussian": "Gaussian noise (level = σ)",
    "mask": "Masking (level = fraction set to 0)",
    "salt_pepper": "Salt and pepper (level = fraction set to 0 or 1)",
}
CONTROL_KEYS = {
    "deep": ("layers",),
    "conv": ("kernels", "kernel_size"),
    "denoising": ("corruption", "noise_level"),
    "vae": ("latent",),
    "contractive": ("contraction",),
    "ksparse": ("tied",),  # and k, which the page already keeps for the top-k penalty
}
"""The fields each variant has its own control for (common.VARIANT_WIDGET_KEYS holds them all)."""
NO_PENALTY = ("vae", "ksparse")
"""Variants that ignore the sparsity penalty setting (their own regulariser replaces it)."""
KERNEL_SIZES = tuple(range(1, 16, 2))
"""Every kernel side the config accepts (odd, 1..15), so the select cannot offer a refused value."""
SCATTER_POINTS = 2000
"""Test inputs encoded for the VAE's latent scatter."""
VAE_CACHE = "vae_codes_cache"
"""st.session_state key: (job id, step, codes, labels) of the last latent scatter."""


def variant_label(variant: str) -> str:
    return VARIANT_NAMES.get(variant, variant)


# ----- controls -------------------------------------------------------------------------------------------
def widget_value(key: str, value: Any) -> Any:
    """A setting as its widget holds it: layer sizes as the text "128,64", everything else unchanged."""
    if key == "layers":
        return ",".join(str(v) for v in value)
    return value


def _control(kind, label: str, key: str, **kwargs) -> None:
    kind(label, key=key, help=FIELD_DOCS.get(key), on_change=common.change_setting, args=(key,), **kwargs)
    message = common.errors().get(key)
    if message:
        st.error(f"Not applied: {message}", icon=":material/block:")


def draw_controls(variant: str) -> None:
    """The chosen variant's own settings (call inside the sidebar); changing one rebuilds the model."""
    flat = common.current_config().flat()
    for key in CONTROL_KEYS.get(variant, ()):
        if key not in st.session_state:
            st.session_state[key] = widget_value(key, flat[key])
    if variant == "deep":
        _control(st.text_input, "Encoder layers before the code (sizes, comma-separated)", "layers")
        st.caption("The code layer has *Hidden units* units; the decoder mirrors the encoder.")
    elif variant == "conv":
        _control(st.number_input, "Kernels", "kernels", min_value=1, step=1)
        _control(st.selectbox, "Kernel size", "kernel_size", options=KERNEL_SIZES, format_func=_square)
        st.caption("The code is one feature map per kernel (stride 2), so *Hidden units* is not used.")
    elif variant == "denoising":
        _control(
            st.selectbox,
            "Corruption",
            "corruption",
            options=list(get_args(Corruption)),
            format_func=CORRUPTION_NAMES.get,
        )
        _control(st.number_input, "Noise level", "noise_level", min_value=0.0, step=0.05, format="%.2f")
    elif variant == "vae":
        _control(st.number_input, "Latent dimensions", "latent", min_value=1, step=1)
        st.caption(
            "*Hidden units* is the width of the encoder and decoder layers. The prior KL regularises the "
            "code, so the sparsity penalty, ρ and β are not used. Latent 2 draws the latent space."
        )
    elif variant == "contractive":
        _control(
            st.number_input, "Contraction weight λ_c", "contraction", min_value=0.0, step=0.05, format="%.3f"
        )
        st.caption("Sigmoid encoder always (the penalty's closed form needs it); top-k is not offered.")
    elif variant == "ksparse":
        if st.session_state.get("penalty") != "topk":  # else the page's own k control is already drawn
            _control(st.number_input, "k (active units per sample)", "k", min_value=1, step=1)
        _control(st.checkbox, "Tied weights (decoder = encoderᵀ)", "tied")
        st.caption("Top-k is this model's regulariser, so the sparsity penalty, ρ and β are not used.")


def _square(side: int) -> str:
    return f"{side}×{side}"


# ----- views ----------------------------------------------------------------------------------------------
def draw_views(snap: Snapshot, job: TrainingJob) -> None:
    """The views of the snapshot's variant, under a heading; nothing for the plain sparse autoencoder."""
    variant = snap.config.model.variant
    draw = VIEWS.get(variant)
    if draw is None:
        return
    st.subheader(f"{variant_label(variant)} autoencoder")
    draw(snap, job)


def _deep(snap: Snapshot, job: TrainingJob) -> None:
    st.caption(
        "The filters above are the first layer's weights (the only ones in pixel space). Below: how each "
        "layer responds to the ten shown inputs; the sparsity penalty acts on the code layer only."
    )
    st.plotly_chart(fv.layer_histograms_figure(snap), key="deep_layers_chart")


def _conv(snap: Snapshot, job: TrainingJob) -> None:
    st.caption(
        "The filters above are the encoder's kernels. Each kernel slides over the image; its feature map "
        "is where it fires. The sparsity penalty acts per kernel (ρ̂ over samples and positions)."
    )
    shown = int(np.asarray(snap.show_inputs).shape[0])
    left, right = st.columns([1.3, 1], gap="large")
    with left:
        index = st.selectbox(
            "Input shown", list(range(shown)), key="feature_input", format_func=lambda i: f"input #{i}"
        )
        st.plotly_chart(fv.feature_maps_figure(snap, int(index or 0)), key="feature_maps_chart")
    with right:
        st.plotly_chart(fv.decoder_kernels_figure(snap), key="decoder_kernels_chart")
        st.plotly_chart(fv.kernel_rho_figure(snap), key="kernel_rho_chart")


def _denoising(snap: Snapshot, job: TrainingJob) -> None:
    st.caption(
        "The encoder only ever sees corrupted inputs during training; the loss compares its output with "
        "the clean input. The metrics and the Reconstructions tab use clean inputs."
    )
    st.plotly_chart(fv.denoising_figure(snap), key="denoising_chart")


def _vae(snap: Snapshot, job: TrainingJob) -> None:
    st.caption(
        "The loss curves show the two terms of the negative ELBO: *reconstruction* (−log p(x|z)) and "
        "*kl prior* (KL(q(z|x) ‖ N(0, I))). The code shown in the other views is the posterior mean μ."
    )
    latent = snap.config.model.latent
    left, right = st.columns(2, gap="large")
    with left:
        st.plotly_chart(fv.prior_samples_figure(snap), key="prior_samples_chart")
        if latent >= 2:
            codes, labels = _vae_codes(snap, job)
            name = "digit" if snap.config.data.dataset in ("digits", "mnist") else "class"
            st.plotly_chart(
                fv.latent_scatter_figure(codes, labels, snap.step, name), key="latent_scatter_chart"
            )
    with right:
        if latent == 2:
            st.plotly_chart(fv.latent_grid_figure(snap), key="latent_grid_chart")
        else:
            st.caption("Set *Latent dimensions* to 2 to see the decoder on a grid over the latent plane.")


def _vae_codes(snap: Snapshot, job: TrainingJob) -> tuple[np.ndarray, np.ndarray | None]:
    """μ of up to SCATTER_POINTS test inputs, recomputed only when the snapshot's step changes.

    The model is read while the training thread may be stepping it: a forward pass only reads the
    weights, so the worst case is a picture from one step later than the snapshot's.
    """
    from sae_core.variants import vae_codes

    cached = st.session_state.get(VAE_CACHE)
    if cached is not None and cached[:2] == (id(job), snap.step):
        return cached[2], cached[3]
    dataset = job.trainer.dataset
    x, y = dataset.test, dataset.test_labels
    if x is None or len(x) == 0:
        x, y = dataset.train, dataset.train_labels
    codes = vae_codes(job.trainer.model, x[:SCATTER_POINTS]).cpu().numpy()
    labels = None if y is None else np.asarray(y[:SCATTER_POINTS])
    st.session_state[VAE_CACHE] = (id(job), snap.step, codes, labels)
    return codes, labels


def _contractive(snap: Snapshot, job: TrainingJob) -> None:
    norms = fv.jacobian_norms(snap)
    lam = snap.config.model.contraction
    term = snap.losses.get("contractive")
    cols = st.columns(3)
    cols[0].metric(
        "Contractive term",
        "–" if term is None else f"{term:.4g}",
        help="λ_c · mean over the last batch of ‖∂h/∂x‖²_F; also plotted in the loss curves",
    )
    cols[1].metric("Mean ‖∂h/∂x‖²_F", f"{norms.mean():.4g}" if norms.size else "–", help="On the probe set")
    cols[2].metric("λ_c", f"{lam:g}", help=FIELD_DOCS.get("contraction"))
    st.plotly_chart(fv.contraction_figure(snap), key="contraction_chart")


def _ksparse(snap: Snapshot, job: TrainingJob) -> None:
    active = fv.active_per_sample(snap)
    k = snap.config.model.k
    exact = int((active == k).sum())
    text = f"Top-k check: {exact:,} of {active.size:,} probe samples have exactly k = {k} non-zero units."
    if exact == active.size:
        st.success(text, icon=":material/check_circle:")
    else:
        st.warning(text + " The others have units that are exactly 0 among their top k.")
    if snap.config.model.tied:
        st.caption("Tied weights: the decoder features are the encoder filters, transposed.")
    st.plotly_chart(fv.active_per_sample_figure(snap), key="active_per_sample_chart")


VIEWS = {
    "deep": _deep,
    "conv": _conv,
    "denoising": _denoising,
    "vae": _vae,
    "contractive": _contractive,
    "ksparse": _ksparse,
}
"""variant -> function drawing its views (the sparse autoencoder has none beyond the page's own)."""
