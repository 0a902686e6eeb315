"""What the pages share: per-session settings, the URL, the server-wide training slots, cached datasets.

Not a page itself (app.py lists the pages). The settings dict in `st.session_state[SETTINGS]` is the
source of truth for the run configuration: widgets are initialised from it and write back to it in
their callbacks, because Streamlit drops a widget's state when the page that draws it is not shown.
"""

from __future__ import annotations

import binascii
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st
import torch

from pages.navigation_guard import leave_old_multipage_mode  # noqa: F401 (re-exported)
from sae_core.config.run import BETA_DEFAULTS, FIELD_SECTION, LIVE_FIELDS, DataConfig, RunConfig
from sae_core.data import datasets as data
from sae_core.models import REGISTRY
from sae_core.presets import DEFAULT_PRESET, load_presets
from sae_core.serve import scheduler, upload_store
from sae_core.serve.jobs import TrainingJob
from sae_core.serve.scheduler import TrainingQueue
from sae_core.train import budget

PER_BROWSER = 2
"""Runs one browser may have training or queued at once (two tabs comparing runs; a reload's old run
holds its place for the few seconds until it notices its tab is gone,
sae_core.serve.jobs.DISCONNECT_GRACE_S)."""
IDLE_TIMEOUT_S = 30.0
"""A job pauses itself when for this long no page has drawn it and no tab of its browser session has
been open (see `session_watcher`); $SAE_IDLE_TIMEOUT_S overrides it (tests use a short one)."""

WIDGET_KEYS = (
    "dataset",
    "variant",
    "penalty",
    "k",
    "rho",
    "beta",
    "weight_decay",
    "hidden",
    "lr",
    "batch_size",
    "optimizer",
    "steps",
    "seed",
)
"""Config fields that the Train page has a widget for; the widget's key is the field name."""
VARIANT_WIDGET_KEYS = tuple(
    dict.fromkeys(key for spec in REGISTRY.values() for key in spec.fields if key not in WIDGET_KEYS)
)
"""Fields with a widget only while their variant is chosen: every variant spec's own controls."""

# st.session_state keys
SETTINGS = "settings"
"""Flat config mapping (only the fields that differ from RunConfig defaults are needed)."""
ERRORS = "setting_errors"
"""field -> message for values that were refused; shown next to the control."""
JOB = "job"
"""The current TrainingJob of this browser session."""
PREVIOUS = "previous_job"
"""The job replaced by the last rebuild, kept until the user discards it."""
NOTICE = "notice"
"""A one-off message for the next run of the Train page (e.g. "model rebuilt")."""
URL_READ = "url_read"
UPLOADS = "uploads"
"""This session's `upload_store.SessionUploads`: its accepted file, referenced by a server-issued id."""

SERVER_ONLY = ("upload", "data_dir")
"""Fields that name files on the server: never taken from a URL (nor written to one) or a widget. The
app sets `upload` to the id of the session's own uploaded file; `data_dir` stays $SAE_DATA_DIR's."""


@st.cache_resource
def configure_torch() -> int:
    """Once per server: how many CPU threads each training step may use ($SAE_TORCH_THREADS, default 1).

    One thread per job is the right policy for a shared server: the models are small, several jobs may
    train at once, and on a busy machine two OpenMP threads per step measured 10-20× slower than one
    (digits, 25 units: ~550 steps/s with 1 thread, 28-390 with 2, varying with the load).
    """
    import torch

    threads = max(1, int(os.environ.get("SAE_TORCH_THREADS", "1")))
    torch.set_num_threads(threads)
    from sae_core.serve.warmup import warm_up_in_background

    warm_up_in_background()  # the first Train click of this server should not pay torch's start-up
    return threads


@st.cache_resource
def training_queue() -> TrainingQueue:
    """The server's training slots (one per core, $SAE_MAX_JOBS) and the queue of runs waiting for one."""
    return TrainingQueue(scheduler.default_slots(), per_owner=PER_BROWSER)


@st.cache_resource
def reaper() -> scheduler.Reaper:
    """Releases the runs of browser sessions the server has dropped (after server.disconnectedSessionTTL)."""
    return scheduler.Reaper(ttl_s=float(st.get_option("server.disconnectedSessionTTL")))


def browser_owner() -> str:
    """Who a run belongs to (the queue's per-browser limit, the kept runs): the browser, by the token in
    Streamlit's XSRF cookie (the same in every tab, across reloads and server restarts), else this session.

    The cookie's value changes at every page load (Tornado re-masks the token: "2|mask|masked|time"), so
    the token is unmasked first: keyed on the raw value, a reload made a new owner, who could take more
    places in the queue. AppTest's mocked client answers with a MagicMock: that is no cookie.
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    cookie = st.context.cookies.get("_streamlit_xsrf")
    if isinstance(cookie, str) and cookie:
        return "browser:" + xsrf_token(cookie)
    ctx = get_script_run_ctx()
    return "session:" + (ctx.session_id if ctx is not None else "")


def xsrf_token(cookie: str) -> str:
    """The token inside an XSRF cookie value: version 2 ("2|mask|masked|time") unmasked, as hex; any other
    value as it is."""
    parts = cookie.strip("\"'").split("|")
    if len(parts) != 4 or parts[0] != "2":
        return cookie
    try:
        mask, masked = binascii.a2b_hex(parts[1]), binascii.a2b_hex(parts[2])
    except (binascii.Error, ValueError):
        return cookie
    if not mask:
        return cookie
    return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()


@st.cache_resource
def presets() -> dict:
    return load_presets()


@st.cache_data(max_entries=4, show_spinner="Loading data…")
def _load_dataset(**fields: Any) -> data.Dataset:
    return data.load(DataConfig(**fields))


def load_dataset(cfg: DataConfig) -> data.Dataset:
    """data.load through st.cache_data, keyed on the DataConfig's fields; an upload id becomes the path of
    this session's file (UploadError for an id that is not this session's)."""
    if cfg.dataset == "upload" and cfg.upload:
        cfg = dataclasses.replace(cfg, upload=str(session_uploads().path(cfg.upload)))
    return _load_dataset(**dataclasses.asdict(cfg))


def session_uploads() -> upload_store.SessionUploads:
    if UPLOADS not in st.session_state:
        st.session_state[UPLOADS] = upload_store.SessionUploads()
    return st.session_state[UPLOADS]


def check_memory(cfg: RunConfig) -> None:
    """budget.check before anything is built: BudgetError (a ValueError) says what would fit."""
    if cfg.data.dataset == "upload":
        samples, shape = session_uploads().shape(cfg.data.upload)
        budget.check(cfg, samples=samples, image_shape=shape)
    else:
        budget.check(cfg)


def literal(text: object) -> str:
    """Text from outside (a URL, a file name, a message quoting them) as a Markdown code span, which
    CommonMark and Streamlit show character for character: no link, image, emphasis, directive or
    formula can form inside it. The fence is longer than any run of backticks in the text."""
    body = " ".join(str(text).split())  # one line: a blank line would end the span
    fence = "`" * (max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


# ----- settings -------------------------------------------------------------------------------------------
def presets_default() -> str:
    return DEFAULT_PRESET


def base_settings() -> dict[str, Any]:
    """What a new session starts with: the offline default preset."""
    return dict(presets()[DEFAULT_PRESET].flat)


def settings() -> dict[str, Any]:
    if SETTINGS not in st.session_state:
        st.session_state[SETTINGS] = base_settings()
    return st.session_state[SETTINGS]


def errors() -> dict[str, str]:
    if ERRORS not in st.session_state:
        st.session_state[ERRORS] = {}
    return st.session_state[ERRORS]


def add_notice(text: str) -> None:
    """Add a line to the one-off message the page shows on its next run (several may pile up)."""
    earlier = st.session_state.get(NOTICE)
    st.session_state[NOTICE] = f"{earlier} {text}" if earlier else text


def current_config() -> RunConfig:
    return RunConfig.from_flat(settings())


BETA_TOP = {"l1": 1.0}
"""Top of the β control per penalty (10 otherwise): L1 weights above 1 kill every unit."""


def beta_range(penalty: str) -> tuple[float, float]:
    """The β control's range under a penalty; a value outside it (from a link) is refused."""
    return 0.0, BETA_TOP.get(penalty, 10.0)


def out_of_range(key: str, cfg: RunConfig) -> str | None:
    """Why cfg's value of `key` cannot be shown by its control (a valid config, a too-small widget)."""
    if key != "beta":
        return None
    lo, hi = beta_range(cfg.model.penalty)
    beta = cfg.model.beta
    if lo <= beta <= hi:
        return None
    penalty = cfg.model.penalty
    return f"beta must be in [{lo:g}, {hi:g}] for the {penalty} penalty (the slider's range), got {beta:g}"


def apply_setting(key: str, value: Any) -> RunConfig | None:
    """Validate and store one field; on a bad value remember the message, keep the old setting and
    return None. Returns the validated config otherwise (the one place a control's value is checked)."""
    try:
        cfg = RunConfig.from_flat({**settings(), key: value})
    except ValueError as err:
        errors()[key] = str(err)
        return None
    problem = out_of_range(key, cfg)
    if problem is not None:
        errors()[key] = problem
        return None
    errors().pop(key, None)
    settings()[key] = cfg.flat()[key]  # the coerced value ("0.1" -> 0.1)
    return cfg


def apply_preset(name: str) -> None:
    """Replace every setting by the preset's; widgets pick the new values up when next drawn."""
    st.session_state[SETTINGS] = {**base_settings(), **presets()[name].flat}
    st.session_state[ERRORS] = {}
    for key in WIDGET_KEYS + VARIANT_WIDGET_KEYS:
        st.session_state.pop(key, None)
    st.session_state[NOTICE] = f"Loaded the preset “{presets()[name].title}”."


# ----- the URL --------------------------------------------------------------------------------------------
def read_query_params() -> None:
    """Once per session: settings from the URL (?rho=0.01&beta=5); bad values are refused with a message."""
    if st.session_state.get(URL_READ):
        return
    st.session_state[URL_READ] = True
    params = st.query_params.to_dict()
    if not params:
        return
    from pages import classroom  # it imports this module

    preset = params.pop("preset", None)  # ?preset=NAME: the link's other settings go on top of it
    if preset in presets():
        apply_preset(preset)
    elif preset is not None:
        add_notice(f"Ignored the unknown preset {literal(preset)}; the presets are: {', '.join(presets())}.")
    classroom.read_link(params.pop(classroom.PARAM, None))
    settings()
    unknown = sorted(k for k in params if k not in FIELD_SECTION)
    server_only = sorted(k for k in params if k in SERVER_ONLY)
    known = {k: v for k, v in params.items() if k in FIELD_SECTION and k not in SERVER_ONLY}
    try:  # all at once first: ?penalty=topk&k=2 is valid together but not in the order k comes last
        cfg = RunConfig.from_flat({**settings(), **known})
        settings().update({k: cfg.flat()[k] for k in known})
    except ValueError:  # then one by one, so each refused value gets its own message
        for key, value in known.items():
            apply_setting(key, value)
    # ?penalty=l1 alone must not leave the KL default β = 3 on the L1 control.
    fit_beta_to_penalty(explicit="beta" in known)
    if "variant" in known and "lr" not in known:  # ?variant=deep alone must not start at a collapsing lr
        fit_lr_to_variant(current_config())
    for key in WIDGET_KEYS + VARIANT_WIDGET_KEYS:
        st.session_state.pop(key, None)
    if unknown:
        add_notice(f"Ignored unknown URL parameter(s): {', '.join(literal(k) for k in unknown)}.")
    if server_only:
        add_notice(f"Ignored {', '.join(server_only)}: a link cannot name files on the server.")
    # A refused value whose field has no control on the page (n_bars, n_patches...) is said here.
    drawn = {k for k in set(WIDGET_KEYS) | set(current_config().model.spec.fields) if classroom.allows(k)}
    for key in known:
        if key in errors() and key not in drawn:
            add_notice(f"Not applied from the link: {literal(errors().pop(key))}.")


def url_query(cfg: RunConfig, base: RunConfig | None = None) -> dict[str, str]:
    """cfg as URL parameters: every field that differs from `base` (default: what a new session starts
    with), never a server path."""
    start = (base or RunConfig.from_flat(base_settings())).flat()
    return {k: _url_value(v) for k, v in cfg.flat().items() if v != start[k] and k not in SERVER_ONLY}


def write_query_params(cfg: RunConfig) -> None:
    """Put cfg's URL parameters into the URL, so a link reopens this run (a classroom link stays one)."""
    from pages import classroom  # it imports this module

    wanted = {**url_query(cfg), **classroom.query()}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def _url_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# ----- the job --------------------------------------------------------------------------------------------
def structural(cfg: RunConfig) -> dict[str, Any]:
    """The fields whose change needs a new model (everything except ρ, β, λ, lr)."""
    return {k: v for k, v in cfg.flat().items() if k not in LIVE_FIELDS}


def current_job() -> TrainingJob | None:
    return st.session_state.get(JOB)


def change_setting(key: str) -> None:
    """A control's on_change: validate and store its value, and hand a live field (LIVE_FIELDS: ρ, β,
    λ, lr, the run's length, λ_c) to the running job at once; other fields rebuild on the next run.
    A new penalty brings its own β (BETA_DEFAULTS): 3 for KL would kill every unit under L1."""
    old_penalty, old_variant = settings().get("penalty"), settings().get("variant")
    cfg = set_setting(key, st.session_state[key])
    if key == "variant" and cfg is not None and cfg.model.variant != old_variant:
        fit_lr_to_variant(cfg)
    if key == "penalty" and cfg is not None and cfg.model.penalty != old_penalty:
        beta = BETA_DEFAULTS.get(cfg.model.penalty)
        if beta is not None and beta != cfg.model.beta:
            set_setting("beta", beta)
            st.session_state["beta"] = beta
            add_notice(f"β set to {beta:g}, a good start for the {cfg.model.penalty} penalty.")


def fit_lr_to_variant(cfg: RunConfig) -> None:
    """A newly picked variant that collapses at the current Adam learning rate (VariantSpec.adam_lr: deep and
    VAE models lose every unit at the bars preset's 0.1) gets its own, with a notice."""
    limit = cfg.model.spec.adam_lr
    if cfg.train.optimizer != "adam" or limit is None or cfg.train.lr <= limit:
        return
    if set_setting("lr", limit) is not None:
        st.session_state["lr"] = limit
        add_notice(
            f"Learning rate set to {limit:g}: at {cfg.train.lr:g} a {cfg.model.spec.title.lower()} model "
            "loses every unit within a few hundred Adam steps."
        )


def fit_beta_to_penalty(explicit: bool) -> None:
    """After settings came from outside (a link): a β outside its control's range for the penalty is
    replaced by the penalty's default β; when the link set β itself, it is refused with its message
    under the β control."""
    cfg = current_config()
    problem = out_of_range("beta", cfg)
    if problem is None:
        return
    apply_setting("beta", BETA_DEFAULTS.get(cfg.model.penalty, beta_range(cfg.model.penalty)[1]))
    if explicit:
        errors()["beta"] = problem


def set_setting(key: str, value: Any) -> RunConfig | None:
    """change_setting with a value from code (a button that extends the run, the until-paused box).
    Returns the validated config, or None when the value was refused."""
    cfg = apply_setting(key, value)
    job = current_job()
    # A live field reaches the running job at once, unless a structural change is already waiting:
    # then the page's next run builds a new model with every setting.
    if (
        cfg is not None
        and key in LIVE_FIELDS
        and job is not None
        and structural(cfg) == structural(job.config)
    ):
        job.set_config(cfg)
    return cfg


def idle_timeout_s() -> float:
    return float(os.environ.get("SAE_IDLE_TIMEOUT_S", IDLE_TIMEOUT_S))


def session_watcher() -> Callable[[], bool] | None:
    """A callable that says whether this browser session still has a tab connected to the server, or
    None where there is no real server (AppTest mocks the runtime): the job then goes by page reads.

    Streamlit drops a session from its active ones when its websocket closes (the tab was closed or
    lost its connection), so a user on another page of the app keeps the run going.
    """
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    server, session_id = runtime.get_instance(), ctx.session_id
    if server.is_active_session(session_id) is not True:  # this very script runs for it: not a real one
        return None
    return lambda: server.is_active_session(session_id)


def build_job(
    cfg: RunConfig, initial_state: Mapping[str, torch.Tensor] | None = None, start_step: int = 0
) -> TrainingJob:
    """A fresh job on the (cached) dataset, once the run's memory estimate fits the per-run budget;
    raises DataUnavailableError / UploadError / ValueError (budget.BudgetError among them). With
    initial_state it starts from those weights at start_step (see open_model)."""
    check_memory(cfg)
    dataset = load_dataset(cfg.data)
    job = TrainingJob(
        cfg,
        dataset,
        queue=training_queue(),
        owner=browser_owner(),
        idle_timeout=idle_timeout_s(),
        is_watched=session_watcher(),
        initial_state=initial_state,
        start_step=start_step,
    )
    reaper().watch(job)
    return job


def open_model(
    cfg: RunConfig, state: Mapping[str, torch.Tensor], start_step: int = 0, source: str = "a saved model"
) -> TrainingJob:
    """Make a trained model (an imported zip, a saved run, a sweep's cell) this session's run: its config
    becomes the settings (the widgets follow), the current run is kept as the previous one, and the new
    job starts paused from `state` at `start_step`. The caller then shows the Train page
    (st.switch_page("pages/train.py")). Raises what build_job raises, and RuntimeError naming the
    mismatch when the weights do not fit the config's model; the current run is untouched then."""
    # Never a data folder from the model's side (a zip, a saved run): this server's, as every run's.
    cfg = cfg.replace(data_dir=current_config().data.data_dir)
    flat = {k: v for k, v in cfg.flat().items() if k not in SERVER_ONLY or k == "upload"}
    try:
        job = build_job(cfg, initial_state=state, start_step=start_step)
    except RuntimeError as err:  # load_state_dict: missing / unexpected keys, shape mismatches
        raise RuntimeError(f"The weights of {source} do not fit its configuration: {err}") from err
    retire_job(f"Opened {source}.")
    st.session_state[SETTINGS] = {**base_settings(), **flat}
    st.session_state[ERRORS] = {}
    for key in WIDGET_KEYS + VARIANT_WIDGET_KEYS:
        st.session_state.pop(key, None)
    st.session_state[JOB] = job
    return job


def retire_job(reason: str) -> None:
    """Stop the current job; keep it as the previous run if it has trained at all."""
    job = current_job()
    if job is None:
        return
    job.stop()
    from pages import runs_store  # it imports this module

    runs_store.keep_retired(job)  # a run replaced is kept on the Runs page (if it trained)
    st.session_state[JOB] = None
    if job.step_count > 0:
        st.session_state[PREVIOUS] = job
        add_notice(f"{reason} The previous run (step {job.step_count}) is kept below.")
    else:
        add_notice(reason)


def sync_job(cfg: RunConfig) -> TrainingJob:
    """The session's job for cfg: reuse it when only live fields differ, else rebuild."""
    job = current_job()
    if job is not None and structural(job.config) != structural(cfg):
        changed = [k for k, v in structural(cfg).items() if structural(job.config).get(k) != v]
        retire_job(f"Changed {', '.join(changed)}: that needs a new model, so one was built.")
        job = None
    if job is None:
        job = build_job(cfg)
        st.session_state[JOB] = job
        return job
    if cfg != job.config:  # only live fields differ (a slider moved, or a URL / preset set them)
        job.set_config(cfg)
    return job
