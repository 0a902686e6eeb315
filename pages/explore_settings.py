"""The Explore page's settings: the sweep's grid and shared settings in one form, and the button that
builds the sweep it describes (a `SweepJob` in st.session_state[explore_views.JOB]) and starts it.

Not a page itself (pages/explore.py lays the page out).
"""

from __future__ import annotations

import streamlit as st

from pages import datasets, explore_views, server, settings_state
from pages.explore_views import ERROR, JOB, PROBE, SELECTED, current_job
from sae_core.cli.sweep import parse_list
from sae_core.data import datasets as data
from sae_core.models.registry import REGISTRY
from sae_core.penalties.registry import PENALTIES as ALL_PENALTIES
from sae_core.serve.sweep_job import RemoteSweepJob, SweepJob
from sae_core.sweep.spec import AXIS_LABELS, MAX_AXIS_VALUES, MAX_VALUES
from sae_core.sweep.trainer import SweepSpec

VARIANTS = {name: spec.title for name, spec in REGISTRY.items()}
"""Every registered variant sweeps."""


def _penalty_label(spec) -> str:
    if spec.uses_rho and spec.uses_beta:
        return f"{spec.short}: ρ × β"
    if spec.uses_beta:
        return f"{spec.short}: β (ρ is not used)"
    return f"{spec.short}: no ρ or β (sweep a third axis)"


PENALTIES = {name: _penalty_label(spec) for name, spec in ALL_PENALTIES.items()}
"""Every registered penalty sweeps; the grid keeps the ρ and β values the objective uses."""
BACKEND = "sweep_backend"
BACKENDS = {"local": "this server", "ray": "the Ray cluster ($RAY_ADDRESS)"}
AXIS_CHOICES = {"none": "none", **AXIS_LABELS}
DEFAULT_RHOS = "0.01, 0.05, 0.1, 0.2"
DEFAULT_AXIS_VALUES = {
    "hidden": "16, 36",
    "weight_decay": "0, 0.001",
    "seed": "0, 1",
    "k": "2, 5",
    "latent": "2, 8",
    "kernels": "8, 16",
}


def _form_defaults() -> dict:
    """The form's starting values: the Train page's current run where the sweep takes it."""
    cfg = settings_state.current_config()
    flat = cfg.flat()
    dataset = (
        flat["dataset"] if flat["dataset"] in data.DATASETS and flat["dataset"] != "upload" else "digits"
    )
    return {
        "dataset": dataset,
        "variant": flat["variant"] if flat["variant"] in VARIANTS else "sparse",
        "penalty": flat["penalty"] if flat["penalty"] in PENALTIES else next(iter(PENALTIES)),
        "optimizer": flat["optimizer"] if flat["optimizer"] in ("adam", "sgd") else "adam",
        "hidden": int(flat["hidden"]),
        "steps": int(flat["steps"]) if flat["steps"] and flat["epochs"] is None else 2000,
        "lr": float(flat["lr"]),
        "batch_size": int(flat["batch_size"]),
    }


def draw_settings() -> None:
    """The sweep's settings in one form: nothing reruns until "Train sweep" is pressed."""
    d = _form_defaults()
    datasets = [name for name in data.DATASETS if name != "upload"]
    with st.form("sweep_settings", border=True):
        st.markdown(
            "**Grid** · comma-separated values, up to "
            f"{MAX_VALUES} each (a third axis up to {MAX_AXIS_VALUES})"
        )
        a, b, c, v = st.columns([1, 1, 0.8, 1])
        a.text_input(
            "ρ values (rows)",
            value=DEFAULT_RHOS,
            key="sweep_rhos",
            help="Target mean activations ρ, one grid row each (each in (0, 1)).",
        )
        b.text_input(
            "β values (columns)",
            value=ALL_PENALTIES[d["penalty"]].explore_betas,
            key="sweep_betas",
            help="Sparsity penalty weights β, one grid column each.",
        )
        c.selectbox(
            "Third axis",
            list(AXIS_CHOICES),
            format_func=AXIS_CHOICES.get,
            key="sweep_axis",
            help="Optional: repeat the grid for each value of hidden units, λ, the seed, or a size of the "
            "variant's own (k for top-k and k-sparse, the VAE's latent size, the conv model's kernels).",
        )
        v.text_input(
            "Third-axis values",
            value="",
            key="sweep_axis_values",
            placeholder="e.g. 16, 36",
            help="Used only with a third axis.",
        )
        st.markdown("**Shared by every cell**")
        cols = st.columns(4)
        cols[0].selectbox(
            "Dataset",
            datasets,
            index=datasets.index(d["dataset"]),
            key="sweep_dataset",
            format_func=lambda n: data.DATASETS[n].title,
        )
        cols[1].selectbox(
            "Variant",
            list(VARIANTS),
            index=list(VARIANTS).index(d["variant"]),
            format_func=VARIANTS.get,
            key="sweep_variant",
        )
        cols[2].selectbox(
            "Penalty",
            list(PENALTIES),
            index=list(PENALTIES).index(d["penalty"]),
            format_func=PENALTIES.get,
            key="sweep_penalty",
        )
        cols[3].selectbox(
            "Optimizer",
            ["adam", "sgd"],
            index=["adam", "sgd"].index(d["optimizer"]),
            format_func=str.capitalize,
            key="sweep_optimizer",
        )
        cols = st.columns(4)
        cols[0].number_input("Hidden units", 1, 4096, d["hidden"], key="sweep_hidden")
        cols[1].number_input("Steps", 1, 200_000, d["steps"], step=500, key="sweep_steps")
        cols[2].number_input("Batch size (0 = all)", 0, 65_536, d["batch_size"], key="sweep_batch_size")
        cols[3].number_input("Learning rate", 1e-6, 10.0, d["lr"], format="%.4g", key="sweep_lr")
        st.caption("Everything else (seed, λ, output layer, ...) is the Train page's current setting.")
        _backend_choice()
        st.form_submit_button("Train sweep", type="primary", on_click=on_train_sweep, key="sweep_train")


def spec_from_form() -> SweepSpec:
    """The SweepSpec the form describes; ValueError naming the field that is wrong."""
    state = st.session_state
    penalty = state["sweep_penalty"]
    base = settings_state.current_config().replace(
        dataset=state["sweep_dataset"],
        upload=None,
        variant=state["sweep_variant"],
        penalty=penalty,
        optimizer=state["sweep_optimizer"],
        hidden=int(state["sweep_hidden"]),
        steps=int(state["sweep_steps"]),
        epochs=None,
        batch_size=int(state["sweep_batch_size"]),
        lr=float(state["sweep_lr"]),
    )
    # The objective's own penalty (the VAE has none, k-sparse its top-k): where ρ or β does nothing, one
    # row or column, not copies of the same runs.
    objective = base.model.penalty_spec
    rhos = parse_list(state["sweep_rhos"], "ρ values")
    rhos = rhos if objective.uses_rho else rhos[:1]
    betas = parse_list(state["sweep_betas"], "β values")
    betas = betas if objective.uses_beta else betas[:1]
    axis = None if state["sweep_axis"] == "none" else state["sweep_axis"]
    values: tuple = ()
    if axis is not None:
        if not state["sweep_axis_values"].strip():
            raise ValueError(
                f"give the values of the third axis ({AXIS_LABELS[axis]}), e.g. {DEFAULT_AXIS_VALUES[axis]}"
            )
        values = parse_list(state["sweep_axis_values"], "third-axis values")
    return SweepSpec(base, rhos, betas, axis, values)


# ----- buttons ----------------------------------------------------------------------------------------------
@st.cache_data(ttl=30, show_spinner=False)
def ray_status() -> tuple[bool, str]:
    """Whether a Ray cluster answers at $RAY_ADDRESS (checked at most every 30 s: it may wait 2 s)."""
    from sae_core.sweep.ray_backend import ray_status as status

    return status()


def _backend_choice() -> None:
    """Where the cells train: this server, or the Ray cluster at $RAY_ADDRESS when one answers."""
    available, message = ray_status()
    if not available:
        st.session_state.pop(BACKEND, None)
        st.caption(f"Ray cluster: not in use ({message}).")
        return
    st.radio(
        "Train on",
        list(BACKENDS),
        format_func=BACKENDS.get,
        horizontal=True,
        key=BACKEND,
        help=f"{message}. On the cluster each group of cells of one size is one Ray task; the grid fills "
        "in as the groups come back, and it cannot pause (Stop cancels what is left).",
    )


def build_job(spec: SweepSpec) -> SweepJob | RemoteSweepJob:
    """A SweepJob on this server's queue, or a RemoteSweepJob on the Ray cluster when that was chosen."""
    dataset = datasets.load_dataset(spec.base.data)
    if st.session_state.get(BACKEND, "local") == "ray":
        return RemoteSweepJob(spec, dataset, backend="ray")
    need = spec.check_memory(samples=len(dataset.train), image_shape=dataset.image_shape)
    server.server_memory().check_run(need, spec.base.data)  # ServerFullError (a ValueError): server full
    job = SweepJob(
        spec,
        dataset,
        queue=server.training_queue(),
        owner=server.browser_owner(),
        idle_timeout=server.idle_timeout_s(),
        is_watched=server.session_watcher(),
        wake=server.session_waker(),
    )
    server.reaper().watch(job)
    server.server_memory().add_run(job, need, spec.base.data)
    return job


def on_train_sweep() -> None:
    """Build the sweep the form describes (stopping the one before) and start it."""
    st.session_state.pop(ERROR, None)
    try:
        job = build_job(spec_from_form())
    except (data.DataUnavailableError, data.UploadError, ValueError) as err:
        st.session_state[ERROR] = f"Cannot build this sweep: {err}"
        return
    old = current_job()
    if old is not None:
        old.stop()
    st.session_state[JOB] = job
    st.session_state.pop(SELECTED, None)
    st.session_state.pop(PROBE, None)
    explore_views.start(job)
