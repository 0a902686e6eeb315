"""pages/navigation_guard.py: the pages/ guard, with Streamlit's private flag present and gone.

The guard flips `PagesManager.uses_pages_directory` (private API). Where a Streamlit version drops the
flag or the class, the app must still load and the guard must warn once per process, not per rerun.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from pages import navigation_guard

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60  # seconds per script run: the first run imports torch on 2 shared cores
MODULE = "streamlit.runtime.pages_manager"


class PagesManagerWithoutFlag:
    """Stands in for a Streamlit whose PagesManager no longer has the flag."""


@pytest.fixture
def fresh_process(monkeypatch):
    """Each test sees the guard as a new server process does: nothing warned yet."""
    monkeypatch.setattr(navigation_guard, "_warned", False)


@pytest.fixture
def reruns(monkeypatch) -> list[None]:
    """Record st.rerun calls instead of raising (there is no script run to restart here)."""
    calls: list[None] = []
    monkeypatch.setattr(navigation_guard.st, "rerun", lambda: calls.append(None))
    return calls


def _guard_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if "navigation guard unavailable" in str(w.message)]


def _break_streamlit(monkeypatch, how: str) -> None:
    if how == "flag deleted":
        monkeypatch.delattr(PagesManager, navigation_guard.FLAG)
    elif how == "import fails":
        monkeypatch.setitem(sys.modules, MODULE, None)  # `from MODULE import ...` raises ImportError
    else:  # a PagesManager without the flag; Streamlit's own class keeps it (AppTest resets it anyway)
        monkeypatch.setattr(navigation_guard, "_pages_manager", lambda: PagesManagerWithoutFlag)


def test_flag_present_is_cleared_and_a_rerun_is_requested(monkeypatch, fresh_process, reruns):
    monkeypatch.setattr(PagesManager, navigation_guard.FLAG, True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        navigation_guard.leave_old_multipage_mode()
    assert PagesManager.uses_pages_directory is False
    assert len(reruns) == 1
    assert not _guard_warnings(caught)


def test_flag_present_with_rerun_false_only_clears_it(monkeypatch, fresh_process, reruns):
    monkeypatch.setattr(PagesManager, navigation_guard.FLAG, True)
    navigation_guard.leave_old_multipage_mode(rerun=False)
    assert PagesManager.uses_pages_directory is False
    assert reruns == []


def test_flag_already_cleared_needs_no_rerun(monkeypatch, fresh_process, reruns):
    monkeypatch.setattr(PagesManager, navigation_guard.FLAG, False)
    navigation_guard.leave_old_multipage_mode()
    assert PagesManager.uses_pages_directory is False
    assert reruns == []


@pytest.mark.parametrize("how", ["flag deleted", "import fails", "fake PagesManager"])
def test_missing_flag_does_not_raise_and_warns_exactly_once(monkeypatch, fresh_process, reruns, how):
    _break_streamlit(monkeypatch, how)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # so only the guard's own once-logic can hold repeats back
        for rerun in (False, True, True, False):
            navigation_guard.leave_old_multipage_mode(rerun=rerun)
    assert len(_guard_warnings(caught)) == 1
    assert issubclass(_guard_warnings(caught)[0].category, RuntimeWarning)
    assert reruns == []


@pytest.mark.parametrize("how", ["import fails", "fake PagesManager"])
def test_app_loads_home_with_the_guard_unavailable(monkeypatch, fresh_process, how):
    """A fresh server's first visit, then reruns as a live server makes them once st.navigation has run."""
    _break_streamlit(monkeypatch, how)
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        at.run()  # AppTest starts in the old pages/ mode, as a fresh server does
        _assert_home_inside_app_py(at)
        pin_navigation_mode(monkeypatch)
        for _ in range(2):
            at.run()
            _assert_home_inside_app_py(at)
    assert len(_guard_warnings(caught)) == 1


def _assert_home_inside_app_py(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Sparse Autoencoder Playground" in [t.value for t in at.title]
    assert any("Training on" in c.value for c in at.sidebar.caption), "app.py's sidebar is missing"
