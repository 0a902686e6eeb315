"""Screenshots of the app as a class sees it: Home and Train, at projector size and on a big screen.

Starts the app offline, opens Home, then Train on the default preset, trains until the progress line
reaches --steps, pauses and takes the picture (a settled frame, not one caught mid-redraw), then unit 3's
card on the Train page and the Applications and Theory pages on that model. At 1280×720 Train is also
shown in presentation mode. Then the run is stopped (kept), a second one with ρ 0.2 and β 1 is trained
and stopped, and the Runs page compares them; last, the Explore page trains a 4 × 4 sweep.
Writes PNGs to --out (default assets/screenshots/).

With --superposition it shoots only the Train page at 1280×720 on the superposition preset, trained to its
end: the top of the page (the numbers, with features found and MMCS) and the view pairing each true
feature with the learned one.

    PYTHONPATH=. python scripts/screenshots.py [--steps 1000] [--out assets/screenshots] [--superposition]

Needs Debian's Chromium at /usr/bin/chromium and the playwright Python package (tests extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.browser_helpers import (
    CHROMIUM,
    ROOT,
    click_button,
    exception_texts,
    launch_chromium,
    open_home,
    open_train,
    progress,
    streamlit_app,
    wait_until,
    warm_up,
)

SIZES = {"1280x720": {"width": 1280, "height": 720}, "1600x1000": {"width": 1600, "height": 1000}}
DEADLINE_S = 120.0


def train_to(page, steps: int) -> None:
    """Press Train, wait until the page shows at least `steps` steps, pause (unless it has finished)."""
    click_button(page, "train")
    wait_until(lambda: (p := progress(page)) and p.step >= steps, DEADLINE_S, f"step {steps}")
    if progress(page).status == "training":  # else the run reached its length by itself
        click_button(page, "pause")
    wait_until(lambda: (p := progress(page)) and p.status in ("paused", "finished"), DEADLINE_S, "a pause")


def presentation_on(page) -> None:
    page.locator(".st-key-presentation label").first.click()
    title = page.locator("h1", has_text="Train a sparse autoencoder")
    wait_until(lambda: title.count() == 0 or None, DEADLINE_S, "presentation mode")


def settle(page) -> None:
    """Let Plotly finish its redraws: what a viewer sees a moment after the page stops changing."""
    page.wait_for_timeout(800)  # a screenshot script, not a test: a fixed pause is how long a person looks


def unit_card_picture(page, path: Path) -> None:
    """The paused run's card of unit 3 (typed into its number input), as the part of the page it fills."""
    card = page.locator(".st-key-unit_card")
    card.scroll_into_view_if_needed()
    box = page.locator(".st-key-card_unit input")
    box.fill("3")
    box.press("Enter")
    title = page.locator(".st-key-unit_card_chart .gtitle", has_text="unit 3 of")
    title.wait_for(timeout=DEADLINE_S * 1000)
    settle(page)
    card.screenshot(path=str(path))


def keep_two_runs(page, url: str, steps: int) -> None:
    """Stop the run (it is kept), train a second one with other ρ and β and stop it, open the Runs page:
    it compares the two newest."""
    end_run(page)
    open_train(page, url, "rho=0.2&beta=1", timeout_s=DEADLINE_S)
    train_to(page, steps // 2)
    end_run(page)
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Runs").click()
    page.locator(".st-key-cmp_loss_chart .js-plotly-plot").wait_for(timeout=DEADLINE_S * 1000)


def end_run(page) -> None:
    """Stop a paused run (a finished one is kept as it is) and wait until the page says so."""
    if progress(page).status != "finished":
        click_button(page, "stop")
    ended = ("stopped", "finished")
    wait_until(lambda: (p := progress(page)) and p.status in ended, DEADLINE_S, "the run to end")


def sweep(page, url: str) -> None:
    """A 4 × 4 sweep of the Explore page's proposed grid on the current settings, trained to its end."""
    page.goto(f"{url}/explore")
    page.locator(".st-key-sweep_steps input").fill("1500")
    click_button(page, "sweep_train")
    done = page.locator(".st-key-live_views [data-testid='stProgress']", has_text="done")
    done.wait_for(timeout=DEADLINE_S * 1000)


def shoot(browser, url: str, out: Path, steps: int) -> list[Path]:
    written = []
    for name, viewport in SIZES.items():
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(DEADLINE_S * 1000)
        open_home(page, url, DEADLINE_S)
        settle(page)
        written.append(out / f"home-{name}.png")
        page.screenshot(path=str(written[-1]))
        open_train(page, url, timeout_s=DEADLINE_S)
        train_to(page, steps)
        settle(page)
        written.append(out / f"train-{name}.png")
        page.screenshot(path=str(written[-1]))
        written.append(out / f"unit-card-{name}.png")
        unit_card_picture(page, written[-1])
        for title in ("Applications", "Theory"):  # the same session: they show the model just trained
            page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
            page.locator("h1").first.wait_for()
            settle(page)  # long computations show a spinner: wait for the page's own answer
            spinner = page.locator('[data-testid="stSpinner"]')
            wait_until(lambda s=spinner: s.count() == 0 or None, DEADLINE_S, f"the {title} page")
            settle(page)
            written.append(out / f"{title.lower()}-{name}.png")
            page.screenshot(path=str(written[-1]))
        page.locator('[data-testid="stSidebarNavLink"]', has_text="Train").click()
        wait_until(lambda p=page: progress(p), DEADLINE_S, "the Train page again")
        if name == "1280x720":
            presentation_on(page)
            train_to(page, 2 * steps)
            settle(page)
            written.append(out / f"train-{name}-presentation.png")
            page.screenshot(path=str(written[-1]))
        keep_two_runs(page, url, steps)
        settle(page)
        written.append(out / f"runs-{name}.png")
        page.screenshot(path=str(written[-1]), full_page=True)
        sweep(page, url)
        settle(page)
        written.append(out / f"explore-{name}.png")
        page.screenshot(path=str(written[-1]))
        errors = exception_texts(page)
        context.close()
        if errors:
            raise RuntimeError(f"the page showed a traceback at {name}: {errors}")
    return written


def shoot_superposition(browser, url: str, out: Path) -> list[Path]:
    """The superposition preset's Train page after its whole run: the top, then the true-vs-learned view."""
    context = browser.new_context(viewport=SIZES["1280x720"])
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    open_train(page, url, "preset=superposition", timeout_s=DEADLINE_S)
    click_button(page, "train")
    wait_until(lambda: (p := progress(page)) and p.status == "finished" or None, DEADLINE_S, "the run's end")
    settle(page)
    written = [out / "train-superposition-top-1280x720.png", out / "train-superposition-1280x720.png"]
    page.screenshot(path=str(written[0]))
    page.locator(".st-key-truth_chart__stack").first.scroll_into_view_if_needed()
    settle(page)
    page.screenshot(path=str(written[1]))
    errors = exception_texts(page)
    context.close()
    if errors:
        raise RuntimeError(f"the page showed a traceback: {errors}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps to train before the picture")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    parser.add_argument("--superposition", action="store_true", help="only the superposition preset's Train")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = tempfile.mkdtemp(prefix="sae-screenshot-runs-")  # the pictures' runs, not the user's
    with sync_playwright() as p, streamlit_app(DEADLINE_S, env={"SAE_RUNS_DIR": runs_dir}) as url:
        browser = launch_chromium(p)
        warm_up(browser, url, DEADLINE_S)
        shots = shoot_superposition(browser, url, args.out) if args.superposition else None
        for path in shots or shoot(browser, url, args.out, args.steps):
            print(f"wrote {path}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
