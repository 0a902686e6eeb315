"""The class scatter (sae_core/figures/classroom.py): one dot per student with a number, the student's id on
each dot, and a click read back as that id."""

from __future__ import annotations

import math

from sae_core.figures import classroom


def test_each_student_with_numbers_is_one_labelled_dot_carrying_their_id():
    fig = classroom.class_scatter(
        ["Ada", "Bo", "Cy"], [2.0, math.nan, 4.0], [0.5, 0.7, 0.2], ["a", "b", "c"], colour=[1, 3, 10]
    )
    (dots,) = fig.data
    assert list(dots.text) == ["Ada", "Cy"] and list(dots.customdata) == ["a", "c"]  # Bo has no L0 yet
    assert list(dots.x) == [2.0, 4.0] and list(dots.y) == [0.5, 0.2]
    assert list(dots.marker.color) == [1, 10]
    assert fig.layout.xaxis.title.text == classroom.X_AXES["l0"]
    assert "Reconstruction error" in fig.layout.yaxis.title.text


def test_the_picked_student_is_ringed_and_a_click_names_them():
    fig = classroom.class_scatter(
        ["Ada", "Bo"], [1, 2], [3, 4], ["a", "b"], x_axis="mean_rho_hat", picked="b"
    )
    assert len(fig.data) == 2 and list(fig.data[1].x) == [2]
    assert fig.layout.xaxis.title.text == classroom.X_AXES["mean_rho_hat"]
    click = {"selection": {"points": [{"x": 2, "y": 4, "customdata": "b"}]}}
    assert classroom.picked_id(click) == "b"
    assert classroom.picked_id({"selection": {"points": [{"customdata": {"0": "a"}}]}}) == "a"
    assert classroom.picked_id({"selection": {"points": []}}) is None
    assert classroom.picked_id(None) is None
