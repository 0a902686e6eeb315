"""The Train page's model import: a model zip becomes this session's run, at the step it was saved at.

Not a page itself (pages/train.py draws it at the top of the sidebar). The zip is the Download model
button's, or a `sae train --out` folder zipped; sae_core.store.model_import checks every file of it before
anything changes. An accepted model replaces the run (the current one is kept as the previous run) and
its settings fill the sidebar, so Train goes on training it and the Applications page explores it. A
refused file gets its message under the uploader, and the current run is left as it was.

A zip carries no data. A model trained on an uploaded file is opened on this session's own upload when
that has the model's image size; otherwise the user is told to upload such data first.
"""

from __future__ import annotations

import streamlit as st

from pages import classroom, datasets, job_control, notices, runs_store, settings_state
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.store import model_import

UPLOADER = "model_zip"
"""Key of the uploader."""
ERROR = "model_import_error"
"""Why the last zip was refused (shown under the uploader until another file is chosen)."""
HANDLED = "model_import_handled"
"""file_id of the last upload handled: the same upload is never imported twice."""


def draw() -> None:
    """The sidebar's "Import a model (.zip)" box; hidden on a classroom link, which fixes the settings."""
    if classroom.is_on():
        return
    error = st.session_state.get(ERROR)
    # A popover, not an expander: the uploader is drawn when opened, so a fresh Train page does not load its
    # browser code. The popover stays open over the upload's rerun, so a refusal under the uploader is seen.
    with st.sidebar, st.popover("Import a model (.zip)", icon=":material/upload:", width="stretch"):
        st.file_uploader(
            "A model zip: the **Download model** button's, or a `sae train --out` folder zipped",
            type=["zip"],
            key=UPLOADER,
            on_change=on_upload,
            help="Its weights, settings and step count replace this run (kept as the previous run), so "
            "Train goes on from there and Applications explores it. Only safetensors weights are read; "
            "pickled PyTorch files are refused.",
        )
        if error is not None:
            st.error(f"Not imported: {notices.literal(error)}", icon=":material/block:")


def on_upload() -> None:
    """The uploader's on_change: import a newly chosen file once; remember why it was refused."""
    upload = st.session_state.get(UPLOADER)
    st.session_state.pop(ERROR, None)
    if upload is None or upload.file_id == st.session_state.get(HANDLED):
        return
    st.session_state[HANDLED] = upload.file_id
    try:
        import_model(upload.getvalue(), upload.name)
    except (ValueError, OSError, RuntimeError) as err:  # UploadError, BudgetError, DataUnavailableError too
        st.session_state[ERROR] = str(err)


def import_model(raw: bytes, name: str) -> None:
    """Check a model zip's bytes and make it this session's run at its saved step (job_control.open_model).

    Raises ModelImportError for the file itself and what job_control.open_model raises (the data is not
    here, the run is over the memory budget, the weights do not fit the data's input size); the
    current run is untouched then.
    """
    imported = model_import.load_archive(raw, name)
    cfg = server_config(imported, name)
    source = f"imported {notices.literal(name)}"
    job_control.open_model(cfg, imported.model.state_dict(), imported.start_step, source=source)
    runs_store.keep_current_run("imported")  # on the Runs page at once, as it came
    if cfg.data.dataset == "upload":
        notices.add_notice("A model zip holds no data: it trains on your uploaded file, of the same size.")
    notices.add_notice(
        f"It goes on from step {imported.start_step:,}; **Train** trains it further, and Applications "
        "explores it."
    )


def server_config(imported: model_import.Imported, name: str) -> RunConfig:
    """The imported config with what belongs to this server, not to the machine that saved it: the data
    folder and the device are this session's, and an upload id becomes this session's upload."""
    here = settings_state.current_config()
    changes = {"data_dir": here.data.data_dir, "device": here.train.device}
    if imported.config.data.dataset == "upload":
        changes["upload"] = _matching_upload(imported.image_shape, name)
    return imported.config.replace(**changes)


def _matching_upload(image_shape: tuple[int, int], name: str) -> str:
    """This session's uploaded file when it has the model's image size; else why it cannot be used."""
    h, w = image_shape
    upload_id = settings_state.settings().get("upload")
    shape = None
    if upload_id:
        try:
            shape = tuple(datasets.session_uploads().shape(upload_id)[1])
        except data.UploadError:
            shape = None
    if shape == (h, w):
        return upload_id
    have = f" (yours is {shape[1]}×{shape[0]})" if shape else ""
    raise model_import.ModelImportError(
        f"{name} was trained on an uploaded data file, which a model zip does not hold. Choose "
        f"'{data.DATASETS['upload'].title}' under Data, upload images of {w}×{h} pixels{have}, "
        "then import the zip again"
    )
