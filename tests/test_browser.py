"""The live training flow in a real headless Chromium against a real `streamlit run app.py` server.

What a teacher does in class: open Train (quick digits), press Train, watch the step count and the
filters change, move ρ while it trains, and see training go on with the new ρ. Screenshots land in
artifacts/ for a human to look at. The runs ask for 100 000 steps through the URL so that training is
still going when ρ moves (the preset's 3000 steps can finish in seconds); everything else is the preset.
"""

from __future__ import annotations

import pytest
from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    click_button,
    exception_texts,
    filters_signature,
    move_rho,
    open_home,
    open_train,
    playwright_sync_api,
    progress,
    rho_shown,
    screenshot,
    select_option,
    selectbox_options,
    streamlit_app,
    wait_until,
    warm_up,
)

from sae_core.models import REGISTRY

VARIANT_NAMES = {name: spec.title for name, spec in REGISTRY.items()}

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_S = 90  # generous: 2 CPU cores shared with other jobs; the first page load imports torch
LONG_RUN = "steps=100000"
PREFERRED_VARIANT = "denoising"  # a config value; the select shows VARIANT_NAMES[value]


@pytest.fixture(scope="module")
def app_url(browser):
    with streamlit_app(deadline_s=DEADLINE_S) as url:
        warm_up(browser, url, DEADLINE_S)
        yield url


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    yield page
    screenshot(page, f"last-{request.node.name}.png")  # what the page showed at the end, pass or fail
    context.close()


def _train_until_filters_change(page) -> None:
    """Press Train on a fresh run; wait for the step count to rise and the filter montage to change."""
    ready = wait_until(lambda: progress(page), DEADLINE_S, "the progress line")
    assert (ready.status, ready.step) == ("ready", 0), ready
    before = wait_until(lambda: filters_signature(page), DEADLINE_S, "the filter chart")
    click_button(page, "train")
    wait_until(
        lambda: (p := progress(page)) and p.status == "training" and p.step > 0,
        DEADLINE_S,
        "the step count to rise while training",
    )
    wait_until(lambda: filters_signature(page) not in (None, before), DEADLINE_S, "the filters to change")


def _pause(page) -> None:
    """Pause so this session's thread stops competing for the CPU with the next test."""
    click_button(page, "pause")
    wait_until(lambda: (p := progress(page)) and p.status == "paused", DEADLINE_S, "the run to pause")


def _metrics_text(page) -> str:
    return " ".join(page.locator('[data-testid="stMetric"]').all_inner_texts())


def test_train_page_trains_live_and_rho_changes_apply_without_restarting(page, app_url):
    first = open_train(page, app_url, LONG_RUN, timeout_s=DEADLINE_S)
    assert first.total == 100_000  # the URL's steps were read
    _train_until_filters_change(page)

    rho_before = rho_shown(page)
    step_before = progress(page).step
    move_rho(page, +1)
    rho_after = wait_until(lambda: (r := rho_shown(page)) != rho_before and r, DEADLINE_S, "ρ to move")
    assert float(rho_after) > float(rho_before)
    # The metric row reads ρ from the job's latest snapshot: this shows the running job took the new ρ.
    rho_label = f"ρ = {float(rho_after):g})"  # the "Mean ρ̂ (target ρ = …)" label
    wait_until(lambda: rho_label in _metrics_text(page), DEADLINE_S, f"the metrics to show {rho_label}")
    moved = progress(page)
    assert moved.status == "training", moved
    assert moved.step >= step_before > 0, (step_before, moved)  # went on from where it was, not reset
    wait_until(lambda: progress(page).step > moved.step, DEADLINE_S, "training to go on after moving ρ")
    assert f"rho={float(rho_after):g}" in page.url  # the link now opens this ρ

    assert exception_texts(page) == []
    _pause(page)
    screenshot(page, "train-live.png")  # paused: the picture holds still for the screenshot


def test_home_page_renders_presets_without_errors(page, app_url):
    open_home(page, app_url, DEADLINE_S)
    screenshot(page, "home.png")
    assert exception_texts(page) == []


def test_a_non_default_variant_trains_live(page, app_url):
    open_train(page, app_url, LONG_RUN, timeout_s=DEADLINE_S)
    others = [v for v in selectbox_options(page, "variant") if v != VARIANT_NAMES["sparse"]]
    if not others:
        pytest.skip("the Variant select offers only the sparse autoencoder")
    label = VARIANT_NAMES[PREFERRED_VARIANT]
    label = label if label in others else others[0]
    variant = next(v for v, name in VARIANT_NAMES.items() if name == label)
    select_option(page, "variant", label)
    # The change rebuilds the model; the app says so in a notice above the buttons.
    page.get_by_text("Changed variant").first.wait_for()  # the info box and a toast both say it

    _train_until_filters_change(page)
    assert page.locator(".st-key-variant input").input_value() == label
    if variant == "denoising":  # its own view: corrupted / clean / reconstruction rows
        page.locator(".st-key-denoising_chart").first.wait_for(timeout=DEADLINE_S * 1000)

    assert exception_texts(page) == []
    _pause(page)
    screenshot(page, f"train-{variant}.png")


def test_a_link_to_train_opened_first_on_a_fresh_server_applies_its_settings(page):
    # Regression: with a folder named pages/, Streamlit runs a fresh server's first /train request as
    # an old-style multipage app, skipping app.py and the URL's settings, unless
    # pages/navigation_guard.leave_old_multipage_mode switches it over.
    with streamlit_app(deadline_s=DEADLINE_S) as url:
        shown = open_train(page, url, "rho=0.1&steps=100000", timeout_s=DEADLINE_S)
        assert shown.total == 100_000
        assert rho_shown(page) == "0.1"


def test_clicking_a_filter_tile_marks_its_unit_in_the_rho_hat_histogram(page, app_url):
    """Hover a tile: its unit's numbers. Click it: its ρ̂ bar is coloured and named (Streamlit's on_select
    reports the click on the invisible click targets; in Chromium their customdata arrives as an object).
    Before the first step the filters are a plain picture (figures.static): one Step makes them a plot."""
    open_train(page, app_url, "dataset=bars&hidden=16&steps=3000", timeout_s=DEADLINE_S)
    click_button(page, "step")
    wait_until(
        lambda: (shown := progress(page)) and shown.step >= 1 and shown.status == "paused", 60, "a step"
    )
    plot = page.locator(".st-key-filters_chart__stack .nsewdrag").first
    plot.scroll_into_view_if_needed()
    box = wait_until(lambda: plot.bounding_box(), DEADLINE_S, "the filter montage")
    side = 4 * 9 + 1  # 16 units: a 4×4 grid of 8×8 tiles with 1-pixel gaps
    x, y = (box["x"] + (1 + 9 + 4) / side * box["width"], box["y"] + (1 + 9 + 4) / side * box["height"])
    page.mouse.move(x, y)  # the middle of tile 5 (row 1, column 1)
    hover_js = "() => Array.from(document.querySelectorAll('.hoverlayer')).map(e => e.textContent).join(' ')"
    hover = wait_until(lambda: t if "unit 5" in (t := page.evaluate(hover_js)) else None, 10, "the hover")
    assert "ρ̂ = " in hover and "KL(ρ‖ρ̂ⱼ)" in hover and "of samples" in hover
    page.mouse.click(x, y)
    notes_js = "() => Array.from(document.querySelectorAll('.st-key-rho_hat_chart__stack .annotation'))"
    notes_js += ".map(e => e.textContent).join(' | ')"
    wait_until(lambda: "unit 5: ρ̂ =" in page.evaluate(notes_js) or None, DEADLINE_S, "the unit's bar label")
    assert exception_texts(page) == []
    screenshot(page, "train-unit-picked.png")
