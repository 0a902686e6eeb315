"""The Train page's unit card: one hidden unit's feature dashboard (sae_core.unit_card), under the live views.

Not a page itself (pages/train.py calls `draw`). The card runs the model, so it is drawn only while the
job is not training: from a CPU copy of the paused or finished model, on the job's fixed probe inputs,
and kept in st.session_state until the step or the unit changes. A click on a filter tile
(train_views.HIGHLIGHT) picks the unit; the number input picks it too.
"""

from __future__ import annotations

import streamlit as st

from pages import train_views
from sae_core import figures, metrics, unit_card
from sae_core.jobs import TrainingJob

UNIT = "card_unit"
"""Key of the unit number input."""
CHOSEN = "card_chosen_unit"
"""The unit last shown, kept while the input is not drawn (Streamlit forgets an undrawn widget's value)."""
SEEN_TILE = "card_seen_tile"
"""The filter tile last copied into the number input (a new click moves the input, a typed number stays)."""
CACHE = "card_cache"
"""((job id, step, status, unit), UnitCard, its figure) of the last card drawn."""
CHART = "unit_card_chart"


def _picked_unit(snap, units: int) -> int:
    """The unit to show: a new click on a filter tile wins, then what the number input holds."""
    tile = st.session_state.get(train_views.HIGHLIGHT)
    if tile != st.session_state.get(SEEN_TILE):
        st.session_state[SEEN_TILE] = tile
        unit = figures.unit_of_tile(snap, tile)
        if unit is not None:
            st.session_state[UNIT] = unit
    value = st.session_state.get(UNIT, st.session_state.get(CHOSEN, 0))
    st.session_state[UNIT] = value if isinstance(value, int) and 0 <= value < units else 0
    unit = st.number_input(
        f"Unit (0–{units - 1})",
        min_value=0,
        max_value=units - 1,
        step=1,
        key=UNIT,
        help="Or click a tile in the filter grid above.",
    )
    st.session_state[CHOSEN] = int(unit)
    return int(unit)


def card_of(job: TrainingJob, unit: int) -> tuple[unit_card.UnitCard, object]:
    """(card, figure) of `unit` for the job as it is now (not training): computed once per step and unit,
    on a CPU copy of the model, so the job's own model is never run here."""
    snap = job.latest()
    key = (id(job), job.step_count, snap.status, unit)
    cached = st.session_state.get(CACHE)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    model, _ = job.model_copy()
    x = job.trainer.probe.detach().cpu()
    card = unit_card.build_card(model, x, unit, snap.image_shape)
    figure = unit_card.card_figure(card)
    st.session_state[CACHE] = (key, card, figure)
    return card, figure


def draw(job: TrainingJob | None) -> None:
    """The card section: a note while training, the picked unit's card otherwise."""
    if job is None:
        return
    with st.container(key="unit_card"):
        st.subheader("One unit's card")
        if job.running:
            st.caption("Pause to open a unit's card: it runs the model, which is busy training.")
            return
        if job.step_count == 0:
            st.caption("Train first: a unit's card shows what a trained unit has learned.")
            return
        snap = job.latest()
        units = int(snap.activations.shape[1])
        with st.columns([1, 3])[0]:
            unit = _picked_unit(snap, units)
        card, figure = card_of(job, unit)
        numbers = card.numbers()
        cols = st.columns(4)
        cols[0].metric("ρ̂ⱼ (mean activation)", f"{numbers['rho_hat']:.4f}")
        cols[1].metric(
            "Density",
            f"{numbers['density']:.1%}",
            help=f"Fraction of the {numbers['samples']:,} probe inputs on which the unit is active "
            f"({metrics.active_rule(card.threshold)}).",
        )
        cols[2].metric("Reconstruction error", f"{numbers['recon_error']:.4g}")
        cols[3].metric(
            "Rise when switched off",
            f"{numbers['ablation_increase']:+.4g}",
            help="½·mean‖x̂ − x‖² with hⱼ set to 0 before decoding, minus the error as it is.",
        )
        st.plotly_chart(figure, key=CHART)
