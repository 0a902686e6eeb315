"""A figure of this package drawn as plain HTML: a page shows it without loading a chart library.

Why: a fresh Train page's pictures (the filters, the ρ̂ histogram, the training data) are plotly
figures, and the first plotly chart of a page makes the browser fetch and run plotly.js, about 1.4 s of
a fresh page's 3.8 s on a 2-core machine (benchmarks/README.md, "cold Train page"). Before the first
training step nothing on those pictures moves and a tile click has nothing to show, and while training
they change twice a second; so the page draws them with `to_html` then, and with plotly when the run is
paused or has ended, where a tile can be hovered and clicked (pages/train_views.draw_views).

`to_html(figure)` draws the same `go.Figure` the page would hand to plotly, not a second version of
it: its title, axis titles, bars, grey heatmap (as one PNG, pixels square, as plotly draws it with
`scaleanchor`), dashed vertical lines and text notes, with the house template's fonts and grid colour.
It covers what the first screen's figures use and returns None for anything else (a log axis, an arrow,
an outlined tile...), which the page then draws with plotly.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

TITLE_COLOUR, TEXT_COLOUR, GRID_COLOUR = "rgb(49, 51, 63)", "rgba(49, 51, 63, 0.6)", "#e6eaf1"
"""Colours of Streamlit's plotly theme, which the page's charts are drawn with (its own font too): titles
dark and bold, ticks and axis titles grey, light grid lines. The static picture uses the page's font."""
PAD = 0.075
"""Margin around a heatmap that has invisible click targets, as a fraction of its longer side: plotly's
autorange pads the axes for their markers by about this much (measured on the 16- and 196-unit
montages)."""
GREY_SCALES = ((("0.0", "black"), ("1.0", "white")),)
"""Colour scales drawn: low black, high white (figures.training.GREY)."""


def to_html(fig: go.Figure) -> str | None:
    """The figure as an HTML block of its own height, or None where it uses anything not covered."""
    layout = fig.layout
    if not _axes_covered(layout) or not _marks_covered(layout):
        return None
    shown = [t for t in fig.data if not _invisible(t)]
    kinds = {t.type for t in shown}
    if kinds == {"heatmap"} and len(shown) == 1:
        body = _heatmap(shown[0], layout, padded=len(shown) < len(fig.data))
    elif kinds <= {"bar"}:
        body = _bars([t for t in fig.data if t.type == "bar"], layout)
    else:
        return None
    if body is None:
        return None
    height = int(layout.height or 340)
    m = layout.margin
    left, right, top, bottom = (
        int(v if v is not None else d) for v, d in zip((m.l, m.r, m.t, m.b), (80, 80, 100, 80), strict=True)
    )
    title_size = _size(layout.title.font.size, 17)
    title = html.escape(str(layout.title.text or ""))
    font = f"font-size:{_size(layout.font.size, 12)}px"
    title_top = max(0, top // 2 - title_size)
    title_style = f"left:1%;top:{title_top}px;font-size:{title_size}px;font-weight:600;color:{TITLE_COLOUR}"
    return (
        f'<div style="position:relative;height:{height}px;background:white;color:{TEXT_COLOUR};{font};'
        f'overflow:hidden">{_box(title_style, title)}'
        f"{_box(f'left:{left}px;right:{right}px;top:{top}px;bottom:{bottom}px', body)}</div>"
    )


# ----- what is covered ---------------------------------------------------------------------------------
def _axes_covered(layout: Any) -> bool:
    return all(axis.type in (None, "linear", "-") for axis in (layout.xaxis, layout.yaxis))


def _marks_covered(layout: Any) -> bool:
    lines = all(
        s.type == "line" and s.x0 == s.x1 and s.xref in (None, "x") and s.yref == "paper"
        for s in layout.shapes
    )
    notes = all(
        not a.showarrow and a.yref == "paper" and a.xref in (None, "x", "paper") for a in layout.annotations
    )
    return lines and notes


def _invisible(trace: Any) -> bool:
    """The filters' click targets: points drawn fully transparent (nothing to see before plotly)."""
    return trace.type == "scatter" and trace.marker.opacity == 0


def _size(value: Any, default: int) -> int:
    return int(value) if value else default


# ----- a grey heatmap ------------------------------------------------------------------------------------
def _heatmap(trace: Any, layout: Any, padded: bool) -> str | None:
    scale = tuple((str(float(a)), str(b)) for a, b in (trace.colorscale or ()))
    if scale not in GREY_SCALES or trace.zmin is None or trace.zmax is None:
        return None
    z = np.asarray(trace.z, dtype=np.float32)
    if z.ndim != 2 or z.size == 0:
        return None
    lo, hi = float(trace.zmin), float(trace.zmax)
    grey = np.clip((np.nan_to_num(z, nan=lo) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    rgb = np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    background = _rgb(layout.plot_bgcolor or "#ffffff")
    rgb[np.isnan(z)] = background
    if layout.yaxis.autorange != "reversed":  # plotly puts row 0 at the bottom unless told otherwise
        rgb = rgb[::-1]
    if padded:  # plotly's autorange makes room around the picture for the click targets' markers
        pad = round(PAD * max(z.shape))
        rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)))
        rgb[:pad], rgb[-pad:], rgb[:, :pad], rgb[:, -pad:] = background, background, background, background
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    # Square pixels in the largest box of the picture's shape that fits the plot, centred (plotly's
    # scaleanchor with constrain="domain").
    ratio = rgb.shape[1] / rgb.shape[0]
    size = f"width:min(100cqw, 100cqh * {ratio:.5f});height:min(100cqh, 100cqw / {ratio:.5f})"
    return (
        '<div style="position:absolute;inset:0;container-type:size;display:flex;align-items:center;'
        f'justify-content:center"><img src="data:image/png;base64,{data}" alt="" '
        f'style="{size};display:block;image-rendering:pixelated"></div>'
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


# ----- bars, their axes and marks ------------------------------------------------------------------------
def _bars(traces: list[Any], layout: Any) -> str:
    bars = []
    for t in traces:
        x = np.asarray(t.x, dtype=np.float64)
        widths = np.broadcast_to(
            np.asarray(t.width if t.width is not None else 0.8, dtype=np.float64), x.shape
        )
        colours = t.marker.color if isinstance(t.marker.color, (list, tuple)) else [t.marker.color] * x.size
        bars += zip(x - widths / 2, x + widths / 2, np.asarray(t.y, dtype=np.float64), colours, strict=True)
    lines = [float(s.x0) for s in layout.shapes]
    xs = [v for b in bars for v in b[:2]] + lines
    x_lo, x_hi = _range(layout.xaxis.range, (min(xs), max(xs)) if xs else (0.0, 1.0))
    y_top = max([b[2] for b in bars], default=0.0)
    y_lo, y_hi = _range(layout.yaxis.range, (0.0, y_top * 1.05 if y_top > 0 else 1.0))
    x_of = lambda v: 100.0 * (v - x_lo) / (x_hi - x_lo)  # noqa: E731 (percent of the plot's width)
    y_of = lambda v: 100.0 * (v - y_lo) / (y_hi - y_lo)  # noqa: E731
    parts = []
    y_ticks = [] if layout.yaxis.showticklabels is False else nice_ticks(y_lo, y_hi, 5)
    for v in y_ticks:
        y = f"bottom:{y_of(v):.3f}%"
        parts.append(_box(f"left:0;right:0;{y};border-top:1px solid {GRID_COLOUR}"))
        parts.append(_box(f"right:calc(100% + 6px);{y};transform:translateY(50%)", _tick(v)))
    for x0, x1, y, colour in bars:
        if y > 0:
            left, width = x_of(x0), max(x_of(x1) - x_of(x0), 0.2)
            place = f"left:{left:.3f}%;width:{width:.3f}%;bottom:0;height:{min(y_of(y), 100):.3f}%"
            parts.append(_box(f"{place};background:{html.escape(str(colour))}"))
    for x, s in zip(lines, layout.shapes, strict=True):
        dash = "dashed" if s.line.dash in ("dash", "dot", "dashdot") else "solid"
        colour = html.escape(str(s.line.color or TITLE_COLOUR))
        parts.append(
            _box(f"left:{x_of(x):.3f}%;top:0;bottom:0;border-left:{_size(s.line.width, 2)}px {dash} {colour}")
        )
    for v in nice_ticks(x_lo, x_hi, 6):
        parts.append(_box(f"top:calc(100% + 4px);left:{x_of(v):.3f}%;transform:translateX(-50%)", _tick(v)))
    parts += [_note(a, x_of) for a in layout.annotations]
    parts.append(_axis_titles(layout))
    return "".join(parts)


def _box(style: str, inner: str = "") -> str:
    """An absolutely placed block (its text on one line)."""
    return f'<div style="position:absolute;white-space:nowrap;{style}">{inner}</div>'


def _range(given: Any, auto: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(given[0]), float(given[1])) if given is not None else auto
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def nice_ticks(lo: float, hi: float, target: int) -> list[float]:
    """About `target` round tick values (1, 2 or 5 times a power of ten apart) within [lo, hi]."""
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def _tick(v: float) -> str:
    return f"{v:.6g}".replace("-", "−")


def _note(note: Any, x_of: Any) -> str:
    x = 100.0 * float(note.x) if note.xref == "paper" else x_of(float(note.x if note.x is not None else 0))
    anchor = {
        "bottom": "translate(-50%, 0)",
        "middle": "translate(-50%, 50%)",
        "top": "translate(-50%, 100%)",
    }
    place = anchor.get(note.yanchor or "middle", anchor["middle"])
    style = f"color:{html.escape(str(note.font.color))};" if note.font.color else ""
    style += f"font-size:{int(note.font.size)}px;" if note.font.size else ""
    y = 100.0 * float(note.y if note.y is not None else 0.5)
    return _box(f"left:{x:.3f}%;bottom:{y:.3f}%;transform:{place};{style}", html.escape(str(note.text or "")))


def _axis_titles(layout: Any) -> str:
    out = []
    x_title, y_title = layout.xaxis.title, layout.yaxis.title
    if x_title.text:
        size = _size(x_title.font.size, 14)
        place = f"top:calc(100% + 24px);left:50%;transform:translateX(-50%);font-size:{size}px"
        out.append(_box(place, html.escape(str(x_title.text))))
    if y_title.text:
        turn = "transform:translate(50%, -50%) rotate(-90deg)"
        place = f"right:calc(100% + 38px);top:50%;{turn};font-size:{_size(y_title.font.size, 14)}px"
        out.append(_box(place, html.escape(str(y_title.text))))
    return "".join(out)
