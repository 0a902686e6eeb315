"""Screenshots of a class's dashboard: eight simulated students' bars runs (tests/class_helpers.py), the
teacher's dashboard at 1280×720 and 1600×1000 (its top, then scrolled to the cards; the whole page goes
to artifacts/), at 1280×720 with one student in the spotlight, and a joined student's Train page with the
class box in its sidebar (the teacher's next setting offered, the spotlight).

    PYTHONPATH=. python scripts/class_screenshots.py [--students 8] [--out assets/screenshots]

Needs Debian's Chromium at /usr/bin/chromium and the playwright Python package (tests extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sae_core.serve import classes
from tests.browser_helpers import (
    ARTIFACTS,
    CHROMIUM,
    FILTERS_PICTURE,
    ROOT,
    exception_texts,
    launch_chromium,
    screenshot,
    streamlit_app,
    wait_until,
)
from tests.class_helpers import fill_class, train_students

SIZES = {"1280x720": {"width": 1280, "height": 720}, "1600x1000": {"width": 1600, "height": 1000}}
DEADLINE_S = 120.0
CARDS = '[class*="st-key-class_card_"]:not([class*="_spot"])'


def open_dashboard(browser, url: str, code: str, token: str, size: dict, students: int):
    page = browser.new_context(viewport=size).new_page()
    page.goto(f"{url}/class?code={code}&teacher={token}")
    cards = page.locator('[class*="st-key-class_card_"] [data-testid="stImage"] img')
    wait_until(lambda: cards.count() >= students or None, DEADLINE_S, f"{students} cards")
    page.locator(".st-key-class_scatter .js-plotly-plot").first.wait_for(timeout=DEADLINE_S * 1000)
    page.wait_for_timeout(1500)  # a screenshot script, not a test: let the images and the plot settle
    problems = exception_texts(page)
    if problems:
        raise RuntimeError(f"the dashboard shows an error: {problems}")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(exist_ok=True)  # whole-page pictures, to look at, not to publish
    db = Path(tempfile.mkdtemp(prefix="sae-class-shots-")) / "classes.sqlite3"
    store = classes.ClassStore(db)
    info, token = store.create_class("Sparsity, lecture 4", minutes=90)
    members = fill_class(store, info.code, train_students(args.students))
    env = {"SAE_CLASSES_DB": str(db)}
    with sync_playwright() as p, streamlit_app(DEADLINE_S, env=env) as url:
        browser = launch_chromium(p)
        for name, size in SIZES.items():
            for member in members:  # present: their pages have been heard from just now
                store.publish(member, None, None)
            page = open_dashboard(browser, url, info.code, token, size, args.students)
            path = args.out / f"class-dashboard-{name}.png"
            page.screenshot(path=str(path))
            print(f"wrote {path}")
            print(f"wrote {screenshot(page, f'class-dashboard-{name}-full.png')}")
            page.locator(CARDS).first.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            cards = args.out / f"class-dashboard-cards-{name}.png"
            page.screenshot(path=str(cards))  # scrolled to the cards
            print(f"wrote {cards}")
            page.context.close()
        store.set_spotlight(info.code, token, members[2])
        page = open_dashboard(browser, url, info.code, token, SIZES["1280x720"], args.students)
        page.locator(".st-key-class_spotlight").wait_for(timeout=DEADLINE_S * 1000)
        path = args.out / "class-spotlight-1280x720.png"
        page.screenshot(path=str(path))
        print(f"wrote {path}")
        store.push_setting(info.code, token, "the preset “Bars with a known answer”", {"preset": "bars"})
        for name, size in SIZES.items():
            path = args.out / f"class-student-train-{name}.png"
            student_page(browser, url, info.code, f"Student{name[:4]}", size).screenshot(path=str(path))
            print(f"wrote {path}")
        browser.close()
    return 0


def student_page(browser, url: str, code: str, nickname: str, size: dict):
    """A student who joined from the join link: their Train page, the class box in its sidebar."""
    page = browser.new_context(viewport=size).new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    page.goto(f"{url}/class?code={code}")
    page.get_by_role("textbox", name="Your nickname").fill(nickname)
    page.get_by_role("button", name="Join").click()
    page.locator(".st-key-class_student").wait_for()
    page.get_by_text("Your teacher suggests").wait_for()
    page.locator(FILTERS_PICTURE).first.wait_for()  # a plain picture until the first step
    page.wait_for_timeout(1500)  # a screenshot script, not a test: let the page settle
    return page


if __name__ == "__main__":
    sys.exit(main())
