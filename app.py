"""Sparse Autoencoder Playground: the Streamlit entry point (`streamlit run app.py`).

Two roles, told apart by `__name__`:
* `streamlit run app.py` imports this file as a module to find `app`, the `st.App` it serves: the
  server warms torch, the optimizer and the figures up before it listens (sae_core/serve/startup.py),
  so that its first visitor does not wait for them.
* Every page view runs this file as the script `__main__`: it sets up the page, reads settings from the
  URL once per session, draws the shared sidebar and runs the page the user picked. Pages live in
  pages/ (see navigation_guard.leave_old_multipage_mode for the one quirk that comes with that folder
  name).
The library in sae_core/ knows nothing of Streamlit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `pages` and `sae_core` import from here under any runner
    sys.path.insert(0, str(ROOT))

from pages import navigation_guard, not_found, server, url_state  # noqa: E402
from sae_core.serve import static_memory  # noqa: E402
from sae_core.serve.preload import PreloadMiddleware  # noqa: E402
from sae_core.serve.startup import lifespan  # noqa: E402
from sae_core.train.trainer import resolve_device  # noqa: E402


def main() -> None:
    """One page view."""
    navigation_guard.leave_old_multipage_mode(rerun=False)  # st.navigation below takes over
    st.set_page_config(
        page_title="Sparse Autoencoder Playground", page_icon=":material/grid_view:", layout="wide"
    )

    home = st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)
    train = st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train")
    theory = st.Page("pages/theory.py", title="Theory", icon=":material/functions:", url_path="theory")
    applications = st.Page(
        "pages/applications.py", title="Applications", icon=":material/insights:", url_path="applications"
    )
    runs = st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:", url_path="runs")
    explore = st.Page("pages/explore.py", title="Explore", icon=":material/grid_on:", url_path="explore")
    klass = st.Page("pages/class.py", title="Class", icon=":material/school:", url_path="class")
    pages = [home, train, explore, runs, klass, applications, theory]
    missing = not_found.unknown_page(pages)  # /nonexistent: a hidden page there says so, with links
    extra = not_found.page_for(missing, pages) if missing else None
    page = st.navigation(pages + ([extra] if extra else []))

    server.configure_torch()
    url_state.read_query_params()

    with st.sidebar:
        device = resolve_device("auto")
        names = {"cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple MPS"}
        st.caption(f"Training on: **{names.get(device.type, device.type)}**")

    page.run()


if __name__ == "__main__":
    main()
else:
    # Served by `streamlit run app.py`: the Train page's modules (these import the rest) are loaded
    # here, before the server listens, so that its first visitor's script does not import them (and, on a
    # fresh install, compile them: about 0.2 s of a fresh page, py-spy).
    from pages import class_student, job_control, train_controls, train_import, train_views, unit_card  # noqa: F401

    # Streamlit's frontend files answered from memory (static_memory.py, unless $SAE_STATIC_MEMORY is 0), and
    # KaTeX's script and fonts named in the page's HTML, fetched with Streamlit's own bundles (preload.py).
    # The page's HTML also names the server's address, so the frontend does not look for it at the page's
    # own address first (preload.base_script).
    base_url = st.get_option("server.baseUrlPath") or ""
    middleware = [Middleware(PreloadMiddleware, base_url=base_url)]
    if os.environ.get(static_memory.ENV_VAR, "1") != "0":
        middleware.insert(0, Middleware(static_memory.StaticMemoryMiddleware, base_url=base_url))
    app = st.App(__file__, lifespan=lifespan, middleware=middleware)
