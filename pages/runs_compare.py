"""The Runs page's comparison: two to four kept runs side by side (sae_core.figures.compare does the work).

Not a page itself (pages/runs.py draws it). Each run is drawn from its kept snapshot
(`StoredRun.snapshot()`) with the Train page's own figure functions: filters, the ρ̂ and density
histograms (the unit statistics kept with the run, so no dataset is needed), then the loss curves
overlaid, the numbers, and the settings with the ones that differ highlighted.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages import runs_store
from sae_core.figures import compare
from sae_core.figures import training as figures
from sae_core.store import runs
from sae_core.train.metrics import active_rule
from sae_core.train.snapshot import Snapshot

PICK = "compare_runs"
"""Key of the multiselect: the ids of the runs compared."""
MAIN_SETTINGS = (
    "dataset",
    "variant",
    "hidden",
    "penalty",
    "rho",
    "beta",
    "k",
    "weight_decay",
    "optimizer",
    "lr",
    "batch_size",
    "steps",
    "seed",
)
"""Settings always in the table; the others only where they differ (or with "Show every setting")."""
SWATCHES = ("blue", "red", "green", "violet")
"""Streamlit's names for the colours of compare.RUN_COLOURS, for the square before each run's name."""
DIFFERS = "background-color: #fff3bf; font-weight: 600"
CHART_HEIGHT = 300
FILTERS_HEIGHT = {2: 340, 3: 290, 4: 250}
"""Pixels per filter montage by the number of runs compared: about its column's width (square tiles)."""


@st.cache_resource(max_entries=16, show_spinner=False)
def kept_snapshot(run_id: str, saved: float) -> Snapshot:
    """A kept run's snapshot (read-only, so one copy serves every session; `saved` keys a rewrite)."""
    return runs_store.store().load_run(run_id).snapshot()


def forget(run_id: str) -> None:
    """A deleted run leaves the comparison."""
    if PICK in st.session_state:
        st.session_state[PICK] = [r for r in st.session_state[PICK] if r != run_id]


def draw(infos: list[runs.RunInfo]) -> None:
    by_id = {info.id: info for info in infos}
    if PICK in st.session_state:  # a run deleted or pruned meanwhile is no option any more
        st.session_state[PICK] = [r for r in st.session_state[PICK] if r in by_id][: compare.MAX_RUNS]
    st.subheader("Compare runs")
    if len(by_id) < 2:
        st.caption("Keep one more run to compare two side by side.")
        return
    picked = st.multiselect(
        "Runs to compare (two to four)",
        list(by_id),
        default=list(by_id)[:2],
        format_func=lambda run_id: by_id[run_id].title,
        max_selections=compare.MAX_RUNS,
        key=PICK,
        help="The two newest are picked to start with.",
    )
    if len(picked) < 2:
        st.caption("Pick at least two runs to see them side by side.")
        return
    loaded = []
    for run_id in picked:
        try:
            loaded.append((by_id[run_id], kept_snapshot(run_id, by_id[run_id].saved)))
        except (KeyError, ValueError, OSError) as err:
            st.warning(f"{by_id[run_id].title} cannot be read: {err}", icon=":material/warning:")
    if len(loaded) < 2:
        return
    infos_shown = [info for info, _ in loaded]
    snaps = [snap for _, snap in loaded]
    labels = compare.short_labels([info.title for info in infos_shown])
    draw_pictures(labels, infos_shown, snaps)
    draw_losses(labels, snaps)
    draw_numbers(labels, snaps)
    draw_settings(labels, snaps)


def draw_pictures(labels: list[str], infos: list[runs.RunInfo], snaps: list[Snapshot]) -> None:
    """One column per run, one row per kind of picture, so that the same pictures line up."""
    n = len(snaps)
    for i, col in enumerate(st.columns(n)):
        col.markdown(f":{SWATCHES[i]}[■] **{labels[i]}**")
        col.caption(f"{infos[i].title} · {snaps[i].config.model.spec.title} · {infos[i].status}")
    for i, col in enumerate(st.columns(n)):
        filters = figures.filters_figure(snaps[i], "encoder")
        units = filters.layout.title.text.rsplit("(", 1)[-1]  # "25 units, 8×8)"
        _compact(filters, f"Encoder filters ({units}", height=FILTERS_HEIGHT[n])
        col.plotly_chart(filters, key=f"cmp_filters_{infos[i].id}", config={"displayModeBar": False})
    if all(_has_units(snap) for snap in snaps):
        draw_histograms(infos, snaps)
    else:
        st.caption(
            "A run kept without its unit statistics (an imported model) has no histograms: "
            + ", ".join(label for label, snap in zip(labels, snaps, strict=True) if not _has_units(snap))
            + "."
        )


def _has_units(snap: Snapshot) -> bool:
    """A kept snapshot holds the probe's size (activations [n_probe, 0]) only when units.json was kept."""
    return snap.activations.shape[0] > 0 and "rho_hat" in snap.config.model.spec.standard_views


def draw_histograms(infos: list[runs.RunInfo], snaps: list[Snapshot]) -> None:
    for i, col in enumerate(st.columns(len(snaps))):
        fig = figures.rho_hat_histogram(snaps[i])
        _compact(fig, f"Mean activation ρ̂ⱼ ({snaps[i].rho_hat.size} units)", height=CHART_HEIGHT)
        col.plotly_chart(fig, key=f"cmp_rho_{infos[i].id}", config={"displayModeBar": False})
    for i, col in enumerate(st.columns(len(snaps))):
        fig = figures.density_histogram(snaps[i])
        dead = int((snaps[i].density == 0).sum())
        _compact(fig, f"Feature density ({dead} dead)", height=CHART_HEIGHT)
        threshold = active_rule(snaps[i].active_threshold)
        fig.layout.xaxis.title.text = f"fraction of samples with<br>{threshold} (log scale)"
        fig.layout.margin.b = 80
        col.plotly_chart(fig, key=f"cmp_density_{infos[i].id}", config={"displayModeBar": False})


def _compact(fig, title: str, height: int) -> None:
    """A shorter title and height: a quarter of the page has no room for the Train page's titles."""
    fig.layout.title.text = title
    fig.layout.title.font.size = 13
    fig.layout.height = height


def draw_losses(labels: list[str], snaps: list[Snapshot]) -> None:
    st.markdown("##### Loss curves")
    terms = compare.loss_terms(snaps)
    penalties = {snap.config.model.effective_penalty for snap in snaps}
    penalty = penalties.pop() if len(penalties) == 1 else ""  # "sparsity" for KL and L1 runs together
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    term = left.segmented_control(
        "Loss term",
        terms or ["total"],
        default=(terms or ["total"])[0],
        required=True,
        key="compare_term",
        format_func=lambda t: figures.term_label(t, penalty),
    )
    log_y = right.toggle("Log-scale loss", value=True, key="compare_log_y")
    fig = compare.loss_overlay_figure(labels, snaps, term or "total", log_y=log_y)
    st.plotly_chart(fig, key="cmp_loss_chart")


def draw_numbers(labels: list[str], snaps: list[Snapshot]) -> None:
    st.markdown("##### Numbers")
    rows = compare.metric_rows(snaps)
    table = pd.DataFrame(
        [values for _, values, _ in rows], index=[label for label, _, _ in rows], columns=labels
    )
    st.table(table)


def draw_settings(labels: list[str], snaps: list[Snapshot]) -> None:
    rows = compare.setting_rows([snap.config for snap in snaps])
    differing = [row.name for row in rows if row.differs]
    st.markdown("##### Settings")
    show_all = st.toggle("Show every setting", key="compare_all_settings")
    shown = [row for row in rows if show_all or row.differs or row.name in MAIN_SETTINGS]
    shown.sort(key=lambda row: not row.differs)  # the differing ones first, each group in config order
    st.caption(
        f"Highlighted: the {len(differing)} setting{'s' if len(differing) != 1 else ''} that differ "
        f"({', '.join(differing)})."
        if differing
        else "These runs have the same settings."
    )
    table = pd.DataFrame(
        {"differs": ["≠" if row.differs else "" for row in shown], **_columns(labels, shown)},
        index=pd.Index([row.name for row in shown], name="setting"),
    )
    styled = table.style.apply(lambda row: [DIFFERS if row["differs"] else ""] * len(row), axis=1)
    st.dataframe(styled, key="cmp_settings", width="stretch", height=min(35 * (len(shown) + 1) + 3, 640))


def _columns(labels: list[str], rows: list[compare.SettingRow]) -> dict[str, list]:
    return {label: [row.values[i] for row in rows] for i, label in enumerate(labels)}
