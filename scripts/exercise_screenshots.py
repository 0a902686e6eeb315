"""Screenshots of the Theory page's exercise at projector size (1280×720): a wrong attempt with its hint,
a right one, and the run trained with the right formula beside the built-in KL.

    PYTHONPATH=. python scripts/exercise_screenshots.py [--out DIR]

Needs Debian's Chromium at /usr/bin/chromium and the playwright Python package (tests extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.browser_helpers import (
    CHROMIUM,
    click_button,
    exception_texts,
    launch_chromium,
    streamlit_app,
    warm_up,
)

SIZE = {"width": 1280, "height": 720}
DEADLINE_S = 600.0  # the Theory page trains one small run per penalty on its first visit
WRONG = "rho*log(rho/rho_hat)"
RIGHT = "ρ*log(ρ/ρ̂) + (1−ρ)*log((1−ρ)/(1−ρ̂))"


def attempt(page, text: str) -> None:
    """Type a formula into step 1 and press Check; wait for its curve."""
    field = page.locator(".st-key-exercise_penalty input")
    field.fill(text)
    click_button(page, "exercise_penalty_check")
    page.locator(".st-key-exercise_penalty_chart .js-plotly-plot").wait_for(timeout=DEADLINE_S * 1000)


def top_at(page, target, above: int = 70) -> None:
    """Scroll so that `target` (a selector or a locator) sits `above` pixels under the top of the view;
    let Plotly settle."""
    locator = page.locator(target) if isinstance(target, str) else target
    locator.first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.wheel(0, -above)
    page.mouse.move(5, 700)  # off the charts: no toolbar or hover label in the picture
    page.wait_for_timeout(1200)  # a screenshot script: how long a person looks before the picture


def shoot(browser, url: str, out: Path) -> list[Path]:
    context = browser.new_context(viewport=SIZE)
    page = context.new_page()
    page.goto(f"{url}/theory")
    # The whole page first (its last section trains), so that Check is not pressed mid-run.
    page.locator(".st-key-theory_penalties_chart .js-plotly-plot").wait_for(timeout=DEADLINE_S * 1000)
    written = []
    attempt(page, WRONG)
    page.get_by_text("Hint:").wait_for(timeout=DEADLINE_S * 1000)
    top_at(page, page.locator("h3", has_text="Step 1"))
    written.append(out / "exercise-wrong-1280x720.png")
    page.screenshot(path=str(written[-1]))
    attempt(page, RIGHT)
    page.get_by_text("Right: it is KL").wait_for(timeout=DEADLINE_S * 1000)
    top_at(page, page.locator("h3", has_text="Step 1"))
    written.append(out / "exercise-right-1280x720.png")
    page.screenshot(path=str(written[-1]))
    click_button(page, "exercise_train")
    page.locator(".st-key-exercise_runs_chart .js-plotly-plot").wait_for(timeout=DEADLINE_S * 1000)
    top_at(page, ".st-key-exercise_train")
    written.append(out / "exercise-trained-1280x720.png")
    page.screenshot(path=str(written[-1]))
    errors = exception_texts(page)
    context.close()
    if errors:
        raise RuntimeError(f"the page shows an exception: {errors[0][:500]}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "exercise-shots")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = tempfile.mkdtemp(prefix="sae-screenshot-runs-")
    with sync_playwright() as p, streamlit_app(DEADLINE_S, env={"SAE_RUNS_DIR": runs_dir}) as url:
        browser = launch_chromium(p)
        warm_up(browser, url, DEADLINE_S)
        for path in shoot(browser, url, args.out):
            print(f"wrote {path}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
