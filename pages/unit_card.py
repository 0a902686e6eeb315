"""The Train page's unit card: one unit's feature dashboard (sae_core.analysis.unit_card), under the live
views.

Not a page itself (pages/train.py calls `draw`). The card runs the model, so it is drawn only while the
job is not training: from a CPU copy of the paused or finished model, on the job's fixed probe inputs,
kept in st.session_state with what a card's unit is for it (`unit_card.card_layout`) until the step
changes, and the card until the unit changes too. A card's unit is a code unit, or a conv model's kernel.
A click on a filter tile (train_views.HIGHLIGHT) picks the unit where the tiles are the units' own weights
(W₁ rows, kernels); the number input picks it too.
"""

from __future__ import annotations

import streamlit as st

from pages import train_views
from sae_core.analysis import unit_card
from sae_core.figures import unit_card as unit_card_draw
from sae_core.serve.jobs import TrainingJob
from sae_core.train import metrics

UNIT = "card_unit"
"""Key of the unit number input."""
CHOSEN = "card_chosen_unit"
"""The unit last shown, kept while the input is not drawn (Streamlit forgets an undrawn widget's value)."""
SEEN_TILE = "card_seen_tile"
"""The filter tile last copied into the number input (a new click moves the input, a typed number stays)."""
PREPARED = "card_prepared"
"""((job id, step, status), CPU model copy, probe inputs, CardLayout) of the job as it was last drawn."""
CACHE = "card_cache"
"""((job id, step, status, unit), UnitCard, its figure) of the last card drawn."""
CHART = "unit_card_chart"


def _prepared(job: TrainingJob) -> tuple[object, object, unit_card.CardLayout]:
    """(model copy, probe inputs, layout) for the job as it is now (not training), made once per step, so
    the job's own model is never run here."""
    snap = job.latest()
    key = (id(job), job.step_count, snap.status)
    cached = st.session_state.get(PREPARED)
    if cached is not None and cached[0] == key:
        return cached[1:]
    model, _ = job.model_copy()
    x = job.trainer.probe.detach().cpu()
    layout = unit_card.card_layout(model, x, snap.image_shape)
    st.session_state[PREPARED] = (key, model, x, layout)
    return model, x, layout


def _input_help(layout: unit_card.CardLayout) -> str:
    if layout.positions > 1:
        return (
            f"Or click a kernel in the filter grid above. One card per kernel: it pools the kernel's map "
            f"over its {layout.positions} positions."
        )
    if layout.filters is not None:
        return "Or click a tile in the filter grid above."
    return "The filter grid above shows the first layer, whose tiles are not the code's units: pick one here."


def _picked_unit(layout: unit_card.CardLayout) -> int:
    """The unit to show: a new click on a filter tile wins, then what the number input holds."""
    units = layout.units
    tile = st.session_state.get(train_views.HIGHLIGHT)
    if tile != st.session_state.get(SEEN_TILE):
        st.session_state[SEEN_TILE] = tile
        unit = layout.unit_of_tile(tile)
        if unit is not None:
            st.session_state[UNIT] = unit
    value = st.session_state.get(UNIT, st.session_state.get(CHOSEN, 0))
    st.session_state[UNIT] = value if isinstance(value, int) and 0 <= value < units else 0
    unit = st.number_input(
        f"{layout.noun.capitalize()} (0–{units - 1})",
        min_value=0,
        max_value=units - 1,
        step=1,
        key=UNIT,
        help=_input_help(layout),
    )
    st.session_state[CHOSEN] = int(unit)
    return int(unit)


def card_of(job: TrainingJob, unit: int) -> tuple[unit_card.UnitCard, object]:
    """(card, figure) of `unit` for the job as it is now (not training): computed once per step and unit."""
    snap = job.latest()
    key = (id(job), job.step_count, snap.status, unit)
    cached = st.session_state.get(CACHE)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    model, x, layout = _prepared(job)
    card = unit_card.build_card(model, x, unit, snap.image_shape, layout=layout)
    figure = unit_card_draw.card_figure(card)
    st.session_state[CACHE] = (key, card, figure)
    return card, figure


def _draw_numbers(card: unit_card.UnitCard) -> None:
    numbers = card.numbers()
    pooled = card.positions > 1
    where = f" × {card.positions} positions" if pooled else ""
    cols = st.columns(4)
    cols[0].metric(
        "ρ̂ₖ (mean of its map)" if pooled else "ρ̂ⱼ (mean activation)",
        f"{numbers['rho_hat']:.4f}",
        help="Mean of the kernel's map over the inputs and its positions: the ρ̂ₖ the penalty pulls to ρ."
        if pooled
        else None,
    )
    cols[1].metric(
        "Density",
        f"{numbers['density']:.1%}",
        help=f"Fraction of the {numbers['samples']:,} probe inputs{where} on which the {card.noun} is active "
        f"({metrics.active_rule(card.threshold)}).",
    )
    cols[2].metric("Reconstruction error", f"{numbers['recon_error']:.4g}")
    off = f"all of map {card.unit}" if pooled else "hⱼ"
    cols[3].metric(
        "Rise when switched off",
        f"{numbers['ablation_increase']:+.4g}",
        help=f"½·mean‖x̂ − x‖² with {off} set to 0 before decoding, minus the error as it is.",
    )


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
        _, _, layout = _prepared(job)
        with st.columns([1, 3])[0]:
            unit = _picked_unit(layout)
        card, figure = card_of(job, unit)
        _draw_numbers(card)
        st.plotly_chart(figure, key=CHART)
