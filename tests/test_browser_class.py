"""The teacher's dashboard in real Chromium (real `streamlit run app.py`).

Three simulated students' runs are in the class store (tests/class_helpers.py); a fourth student joins
from the join link in their own browser and trains. The dashboard shows every card, refreshes by itself
until the new student's finished run is there without ever emptying its cards, puts a student in the
spotlight, which the joined student's Train page then shows; a wrong token opens no dashboard. Last, two
app servers behind nginx (scripts/class_servers.py): a student on each, one class on the dashboard.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    click_button,
    exception_texts,
    playwright_sync_api,
    progress,
    screenshot,
    streamlit_app,
    wait_until,
)
from class_helpers import fill_class, train_students

from sae_core.serve import classes

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # scripts/ sits next to the app; it is not an installed package
    sys.path.insert(0, str(ROOT))

from scripts import class_servers  # noqa: E402

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_S = 90  # generous: 2 CPU cores shared with other jobs; the first page load imports torch
CARD_IMAGES = '[class*="st-key-class_card_"] [data-testid="stImage"] img'
CARDS = '[class*="st-key-class_card_"]:not([class*="_spot"])'
STUDENT_SETTINGS = "hidden=6&steps=60&batch_size=100"


def _text(page) -> str:
    return page.evaluate("() => document.body.innerText")


def _click_first_dot(page) -> bool:
    """Click the scatter's first dot (the first student's) and give the page a few seconds to open its
    card: True once it is open. A click that lands while a refresh remounts the plot is lost, as it would
    be for a teacher, who clicks again; so does the caller, and so it does when the dot it found is gone
    before it could scroll to it."""
    picked = page.locator(".st-key-class_picked_card")
    point = page.locator(".st-key-class_scatter .point").first
    try:
        point.scroll_into_view_if_needed()
    except sync_api.Error as err:  # the refresh remounted the plot between finding the dot and scrolling
        if "not attached to the DOM" not in str(err):
            raise
        return False
    box = point.bounding_box()
    if box is None:
        return False
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    try:
        picked.wait_for(timeout=5000)
    except sync_api.TimeoutError:
        return False
    return True


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """One server and class for the module (the wrong-token test changes nothing in it)."""
    store = classes.ClassStore(tmp_path_factory.mktemp("class") / "classes.sqlite3")
    info, token = store.create_class("Browser class", minutes=30)
    members = fill_class(store, info.code, train_students(3, steps=60, batch_size=100))
    with streamlit_app(DEADLINE_S, env={classes.ENV_DB: str(store.path)}) as url:
        yield url, store, info.code, token, members


def test_the_dashboard_shows_a_joining_student_live_and_the_spotlight_reaches_them(browser, class_server):
    url, store, code, token, members = class_server
    teacher = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    teacher.set_default_timeout(DEADLINE_S * 1000)
    student = browser.new_context(viewport=VIEWPORT).new_page()
    student.set_default_timeout(DEADLINE_S * 1000)
    try:
        teacher.goto(f"{url}/class?code={code}&teacher={token}")
        wait_until(lambda: teacher.locator(CARD_IMAGES).count() == 3 or None, DEADLINE_S, "three cards")
        teacher.locator(".st-key-class_scatter .js-plotly-plot").first.wait_for()
        assert "Ada" in _text(teacher) and "3 student(s) joined" in _text(teacher)

        student.goto(f"{url}/class?code={code}&{STUDENT_SETTINGS}")
        student.get_by_role("textbox", name="Your nickname").fill("Newbie")
        student.get_by_role("button", name="Join").click()
        student.locator(".st-key-class_student").wait_for()  # on Train, the class box in the sidebar
        click_button(student, "train")
        wait_until(lambda: (p := progress(student)) and p.status == "finished", DEADLINE_S, "the run to end")

        # The dashboard refreshes by itself; while it does, its cards never all go (no blank frame).
        fewest = 99
        deadline = time.monotonic() + DEADLINE_S
        while "Newbie · step 60" not in _text(teacher):
            fewest = min(fewest, teacher.locator(CARDS).count())
            assert time.monotonic() < deadline, "the new student's finished run never reached the dashboard"
            teacher.wait_for_timeout(100)  # a polling interval; the text decides
        assert fewest >= 3 and teacher.locator(CARDS).count() == 4
        assert exception_texts(teacher) == []
        screenshot(teacher, "class-dashboard-browser.png")

        picked = teacher.locator(".st-key-class_picked_card")
        wait_until(
            lambda: _click_first_dot(teacher) and "Ada" in picked.inner_text(), DEADLINE_S, "Ada's card"
        )

        click_button(teacher, f"class_card_{members[1]}_spot")
        teacher.locator(".st-key-class_spotlight").wait_for()
        assert "In the spotlight: Bo" in _text(teacher)
        wait_until(lambda: "On the projector: Bo" in _text(student), DEADLINE_S, "the student to see it")
        assert exception_texts(student) == []
    finally:
        teacher.context.close()
        student.context.close()


def test_a_wrong_token_opens_no_dashboard(browser, class_server):
    url, _, code, token, _ = class_server
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    try:
        page.goto(f"{url}/class?code={code}&teacher={token[:-2]}xx")
        wait_until(lambda: "missing or wrong" in _text(page), DEADLINE_S, "the refusal")
        assert page.locator(CARDS).count() == 0 and "Browser class" not in _text(page)
    finally:
        page.context.close()


def _join_and_train(page, url: str, code: str, nickname: str) -> str:
    """Join from the join link through nginx and train to the end; the number of the server that answered."""
    response = page.goto(f"{url}/class?code={code}&{STUDENT_SETTINGS}")
    assert response is not None and response.ok, response
    page.get_by_role("textbox", name="Your nickname").fill(nickname)
    page.get_by_role("button", name="Join").click()
    page.locator(".st-key-class_student").wait_for()
    click_button(page, "train")
    wait_until(lambda: (p := progress(page)) and p.status == "finished", DEADLINE_S, "the run to end")
    return response.headers["x-backend"]


@pytest.mark.skipif(class_servers.find_nginx() is None, reason="needs nginx (Debian: apt-get install nginx)")
def test_a_class_spread_over_two_servers_behind_nginx_is_one_class(browser, tmp_path):
    db = tmp_path / "classes.sqlite3"
    info, token = classes.ClassStore(db).create_class("Two servers", minutes=30)
    listen = f"127.0.0.1:{class_servers.free_port()}"
    env = {"SAE_OFFLINE": "1", classes.ENV_DB: str(db)}
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(3)]
    try:
        with class_servers.class_servers(2, listen, tmp_path / "nginx", max_jobs=1, env=env) as running:
            one, two, teacher = (context.new_page() for context in contexts)
            for page in (one, two, teacher):
                page.set_default_timeout(DEADLINE_S * 1000)
            served = [_join_and_train(one, running.url, info.code, "One")]
            served.append(_join_and_train(two, running.url, info.code, "Two"))
            assert sorted(served) == ["1", "2"]  # new browsers go to the servers in turn
            teacher.goto(f"{running.url}/class?code={info.code}&teacher={token}")
            wait_until(
                lambda: "One · step 60" in _text(teacher) and "Two · step 60" in _text(teacher),
                DEADLINE_S,
                "both students' runs on the dashboard",
            )
            assert exception_texts(teacher) == []
    finally:
        for context in contexts:
            context.close()
