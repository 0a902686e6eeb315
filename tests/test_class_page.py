"""The Class page with AppTest: a teacher starts a class, several students join from the join link, train
and leave, and the teacher's dashboard shows them; the teacher's setting and spotlight reach the students;
a wrong or missing teacher token opens no dashboard."""

from __future__ import annotations

import uuid

import pytest
import streamlit as st
from apptest_helpers import APP, pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from pages import class_push, class_state, server

pytestmark = pytest.mark.apptest

RUN_TIMEOUT = 60
TINY = {"dataset": "bars", "hidden": "6", "steps": "40", "batch_size": "32"}
CLASS_PAGE = "pages/class.py"
TRAIN_PAGE = "pages/train.py"


@pytest.fixture
def apps(monkeypatch, tmp_path):
    """New AppTest sessions on a class store of their own (a fresh SQLite file)."""
    pin_navigation_mode(monkeypatch)
    monkeypatch.setattr(server, "browser_owner", _one_browser_per_session)
    monkeypatch.setenv("SAE_CLASSES_DB", str(tmp_path / "classes.sqlite3"))
    class_state.store.clear()
    made: list[AppTest] = []

    def make(query: dict[str, str], page: str = CLASS_PAGE) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update(query)
        made.append(at)
        at.run()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield make
    for at in made:
        stop_jobs(at)
    class_state.store.clear()


def _one_browser_per_session() -> str:
    """Every AppTest session has the same session id and no cookie, so server.browser_owner would make them
    one browser; here each session is a browser of its own, as each student's is."""
    return st.session_state.setdefault("test_browser", f"browser:{uuid.uuid4().hex}")


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _text_input(at: AppTest, label: str):
    return next(t for t in at.text_input if t.label == label)


def _query(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def start_class(apps) -> tuple[AppTest, str, str]:
    teacher = apps({})
    _text_input(teacher, "Title").input("Lecture 4")
    _button(teacher, "Start the class").click().run()
    assert not teacher.exception
    return teacher, _query(teacher, class_state.CODE), _query(teacher, class_state.TEACHER)


def join(apps, code: str, nickname: str, **settings: str) -> AppTest:
    student = apps({class_state.CODE: code, **TINY, **settings})
    assert _text_input(student, "Class code").value == code  # the join link fills the code in
    _text_input(student, "Your nickname").input(nickname)
    _button(student, "Join").click().run()
    assert not student.exception, [e.value for e in student.exception]
    student.switch_page(TRAIN_PAGE).run()  # where Join sends the student
    assert any(f"you are **{nickname}**" in m.value for m in student.sidebar.markdown)
    return student


def train(student: AppTest) -> None:
    student.button(key="train").click().run()
    job = student.session_state["job"]
    poll(student, lambda: not job.running and job.step_count > 0, "the run to finish", 60)
    student.run()  # the class box's next tick publishes the last snapshot


def dashboard_cards(teacher: AppTest) -> dict[str, str]:
    """Nickname -> the card's heading line, for every card of the dashboard."""
    teacher.run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    cards = {}
    for md in teacher.markdown:
        text = md.value
        if text.startswith("**"):
            cards[text.split("**")[1]] = text
    return cards


def test_students_join_train_and_leave_and_the_dashboard_follows(apps):
    teacher, code, token = start_class(apps)
    assert "Lecture 4" in teacher.header[0].value
    assert any(c.value.endswith(f"/class?code={code}") for c in teacher.code)  # the students' link
    students = {name: join(apps, code, name) for name in ("Ada", "Bo", "Cy")}
    assert set(dashboard_cards(teacher)) == {"Ada", "Bo", "Cy"}
    assert any("**3** student(s) joined" in c.value for c in teacher.caption)

    for name in ("Ada", "Bo"):
        train(students[name])
    cards = dashboard_cards(teacher)
    assert "step 40" in cards["Ada"] and "step 40" in cards["Bo"] and "step 0" in cards["Cy"]  # untrained yet
    numbers = [c.value for c in teacher.caption if c.value.startswith("bars **")]
    assert sorted("L0 **–**" in n for n in numbers) == [False, False, True], numbers  # Cy's: not yet
    assert all("FVE" in n and "dead" in n for n in numbers)
    specs = [chart.proto.spec for chart in teacher.get("plotly_chart")]
    assert any('"Ada"' in spec and '"Bo"' in spec and '"Cy"' not in spec for spec in specs)  # trained runs

    students["Bo"].button(key="class_student_leave").click().run()
    assert set(dashboard_cards(teacher)) == {"Ada", "Cy"}


def test_cards_sort_by_the_chosen_number(apps):
    teacher, code, _ = start_class(apps)
    for name, rho in (("Ada", "0.3"), ("Bo", "0.02"), ("Cy", "0.1")):
        train(join(apps, code, name, rho=rho))
    teacher.run()
    teacher.selectbox(key="class_sort").set_value("rho").run()
    assert list(dashboard_cards(teacher)) == ["Bo", "Cy", "Ada"]
    teacher.toggle(key="class_sort_descending").set_value(True).run()
    assert list(dashboard_cards(teacher)) == ["Ada", "Cy", "Bo"]


def test_the_teachers_setting_and_spotlight_reach_the_students(apps):
    teacher, code, _ = start_class(apps)
    ada, bo = join(apps, code, "Ada"), join(apps, code, "Bo")
    train(ada)
    teacher.run()
    teacher.selectbox(key="class_push_preset").set_value("quick-digits").run()
    _button(teacher, "Send to the class").click().run()
    bo.run()
    assert any("Your teacher suggests" in i.value for i in bo.sidebar.info)
    bo.button(key="class_apply").click().run()
    assert not bo.exception, [e.value for e in bo.exception]
    assert bo.session_state["settings"]["dataset"] == "digits"
    assert not any("Your teacher suggests" in i.value for i in bo.sidebar.info)  # applied: offered no more

    teacher.run()
    ada_member = next(s.member for s in class_state.store().students(code) if s.nickname == "Ada")
    teacher.button(key=f"class_card_{ada_member}_spot").click().run()
    assert any("In the spotlight: Ada" in h.value for h in teacher.subheader)
    bo.run()
    assert any("On the projector: Ada" in e.label for e in bo.sidebar.expander)


@pytest.mark.parametrize("token", ["wrong-token", ""])
def test_a_wrong_teacher_token_opens_no_dashboard(apps, token):
    _, code, _ = start_class(apps)
    join(apps, code, "Ada")
    intruder = apps({class_state.CODE: code, class_state.TEACHER: token})
    assert any("teacher token is missing or wrong" in e.value for e in intruder.error)
    assert not dashboard_cards(intruder)
    assert not intruder.get("plotly_chart")


def test_a_student_link_without_the_token_is_the_join_form(apps):
    _, code, _ = start_class(apps)
    join(apps, code, "Ada")
    student = apps({class_state.CODE: code})
    assert _text_input(student, "Class code").value == code
    assert not dashboard_cards(student)
    assert not student.get("plotly_chart")


def test_ending_the_class_closes_it_for_its_students(apps):
    teacher, code, _ = start_class(apps)
    ada = join(apps, code, "Ada")
    teacher.button(key="class_end").click().run()
    assert any("This class has ended" in i.value for i in teacher.info)
    ada.run()
    assert any("Your class has ended" in i.value for i in ada.sidebar.info)
    assert class_state.MEMBER not in ada.session_state
    late = apps({class_state.CODE: code})
    _text_input(late, "Your nickname").input("Late")
    _button(late, "Join").click().run()
    assert any("This class has ended" in e.value for e in late.error)


@pytest.mark.parametrize(
    ("link", "label", "query"),
    [
        (
            "http://x:8501/train?rho=0.05&beta=1&classroom=rho,beta",
            "a classroom link (rho = 0.05, beta = 1)",
            {"rho": "0.05", "beta": "1", "classroom": "rho,beta"},
        ),
        ("?preset=quick-digits&rho=0.2", "a classroom link (preset quick-digits, rho = 0.2)", None),
    ],
)
def test_a_classroom_link_is_read_as_the_train_page_would(link, label, query):
    got_label, got_query = class_push.parse_link(link)
    assert got_label == label
    assert got_query == (query or {"preset": "quick-digits", "rho": "0.2"})


@pytest.mark.parametrize(
    ("link", "why"),
    [
        ("http://x:8501/train", "settings come after"),
        ("http://x/train?rho=2", "do not make a run"),
        ("http://x/train?preset=nope", "presets are"),
        ("http://x/train?colour=red", "cannot carry: colour"),
        ("http://x/train?data_dir=/etc", "cannot carry: data_dir"),
    ],
)
def test_a_bad_classroom_link_is_refused_in_words(link, why):
    with pytest.raises(ValueError, match=why):
        class_push.parse_link(link)
