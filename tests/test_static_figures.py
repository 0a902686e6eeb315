"""Figures drawn as plain HTML (sae_core/figures/static.py): the same numbers the plot would show.

Each test builds a real figure of the package, draws it with `to_html`, and reads the HTML back: the PNG's
pixels against the grey mapping written out here, bar heights against the counts, the target line's place
against ρ, and None for what the drawing does not cover.
"""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest
from picture_helpers import picture_pixels

from sae_core.figures import activity, static
from sae_core.figures import training as figures


def _grey(z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.round(np.clip((np.nan_to_num(z) - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)


def test_a_grey_heatmap_becomes_a_png_of_the_same_values_with_gaps_in_the_background_colour():
    rng = np.random.default_rng(0)
    z = rng.uniform(-1.0, 1.0, size=(5, 7)).astype(np.float32)
    z[2, :] = np.nan  # a gap row, as between montage tiles
    fig = activity.figure(
        [figures.grey_heatmap(z, -1.0, 1.0)],
        "A montage",
        yaxis=figures.IMAGE_Y,
        xaxis=figures.IMAGE_X,
        plot_bgcolor="#35506b",
    )
    pixels = picture_pixels(static.to_html(fig))
    assert pixels.shape == (5, 7, 3)
    ok = ~np.isnan(z)
    np.testing.assert_array_equal(pixels[..., 0][ok], _grey(z, -1.0, 1.0)[ok])  # row 0 at the top
    assert (pixels[2] == (0x35, 0x50, 0x6B)).all()


def test_the_filter_montage_is_padded_as_plotly_pads_it_for_its_click_targets():
    z = np.zeros((37, 37), dtype=np.float32)
    fig = go.Figure([figures.grey_heatmap(z, -1, 1), go.Scatter(x=[1], y=[1], marker={"opacity": 0})])
    fig.update_layout(yaxis={"autorange": "reversed"}, plot_bgcolor="#35506b")
    pixels = picture_pixels(static.to_html(fig))
    pad = round(static.PAD * 37)
    assert pixels.shape == (37 + 2 * pad, 37 + 2 * pad, 3)
    assert (pixels[:pad] == (0x35, 0x50, 0x6B)).all() and (pixels[pad:-pad, pad:-pad] == 128).all()


def _boxes(html: str) -> list[dict[str, str]]:
    """The style of every absolutely placed block, as {property: value}."""
    styles = re.findall(r'<div style="position:absolute;white-space:nowrap;([^"]*)"', html)
    return [dict(p.split(":", 1) for p in s.split(";") if ":" in p) for s in styles]


def test_histogram_bars_are_as_tall_as_their_counts_and_the_target_line_sits_at_rho():
    counts = np.array([0, 3, 6, 1, 0, 0])
    edges = np.linspace(0.0, 0.6, 7)
    bars = activity.histogram_bars(counts, edges, "%{y}")
    line, note = activity.target_line(0.15, "target ρ = 0.15")
    fig = activity.figure(
        [bars], "ρ̂ <of> units", "mean activation", "units", shapes=[line], annotations=[note]
    )
    html = static.to_html(fig)
    assert "ρ̂ &lt;of&gt; units" in html and ">mean activation<" in html and ">units<" in html  # escaped
    boxes = _boxes(html)
    drawn = [b for b in boxes if "background" in b and "height" in b]
    assert len(drawn) == 3  # the empty bins draw nothing
    heights = np.array([float(b["height"].rstrip("%")) for b in drawn])
    top = counts.max() * 1.05  # the y axis runs from 0 to 5 % above the tallest bar
    np.testing.assert_allclose(heights, 100 * counts[counts > 0] / top, atol=1e-3)
    lefts = np.array([float(b["left"].rstrip("%")) for b in drawn])
    np.testing.assert_allclose(lefts, 100 * edges[:-1][counts > 0] / 0.6, atol=1e-3)
    (dashed,) = [b for b in boxes if "border-left" in b]
    assert (
        float(dashed["left"].rstrip("%")) == pytest.approx(100 * 0.15 / 0.6)
        and "dashed" in dashed["border-left"]
    )
    assert "target ρ = 0.15" in html


@pytest.mark.parametrize(
    ("lo", "hi", "target", "ticks"),
    [
        (0.0, 1.0, 5, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.0, 6.3, 5, [0, 2, 4, 6]),
        (0.0, 0.27, 6, [0, 0.05, 0.1, 0.15, 0.2, 0.25]),
    ],
)
def test_nice_ticks_are_round_numbers_inside_the_range(lo, hi, target, ticks):
    assert static.nice_ticks(lo, hi, target) == pytest.approx(ticks)


def test_what_is_not_covered_is_left_to_plotly():
    log = activity.figure([go.Bar(x=[1], y=[1])], "log", yaxis={"type": "log"})
    lines = activity.figure([go.Scatter(x=[0, 1], y=[1, 2], mode="lines")], "a curve")
    bars = activity.histogram_bars(np.array([1, 2]), np.array([0.0, 0.5, 1.0]), "%{y}")
    arrow = activity.figure([bars], "picked", annotations=[activity.highlight_bar(bars, 1, "unit 1", 2)])
    outlined = activity.figure(
        [figures.grey_heatmap(np.zeros((3, 3)), -1, 1)], "tile", shapes=[{"type": "rect", "x0": 0, "x1": 1}]
    )
    for fig in (log, lines, arrow, outlined):
        assert static.to_html(fig) is None
