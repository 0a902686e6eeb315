"""Drawing one unit's card (sae_core.analysis.unit_card): a plotly figure for the Train page (`card_figure`)
and a
labelled PNG for `sae unit --out card.png` (`save_card_png`), which a teacher can put on a slide as it is.

Both show the same panels: the encoder filter and the decoder feature (or the effective pictures, named as
such), the activation histogram, the inputs that drive the unit hardest and some random ones, with the
unit's activation under each input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sae_core import images
from sae_core.analysis.unit_card import UnitCard, histogram, summary_line


def picture_titles(card: UnitCard) -> tuple[str, str]:
    """What the filter and the feature pictures are, as the figure names them (two lines each)."""
    k, (fh, fw), (dh, dw) = card.unit, card.filter_shape, card.feature_shape
    sym = card.activation_name if card.positions == 1 else f"({card.activation_name})"
    encoder = {
        "row": f"encoder filter: W₁ row {k}<br>what the unit looks for",
        "kernel": f"encoder kernel {k} ({fh}×{fw})<br>what it looks for at each place",
        "gradient": f"what raises {sym}: mean ∂{sym}/∂x<br>over its top {card.top_indices.size} inputs",
    }[card.encoder_kind]
    decoder = {
        "column": f"decoder feature: W₂ column {k}<br>what the unit draws",
        "kernel": f"decoder kernel {k} ({dh}×{dw})<br>what it paints at each place",
        "step": f"what it draws: decode(a·e) − decode(0)<br>a = {card.step_size:.3g}, its mean on top inputs",
    }[card.decoder_kind]
    return encoder, decoder


# ----- drawing ---------------------------------------------------------------------------------------------
def card_figure(card: UnitCard):
    """The card as one plotly figure: filter, feature and activation histogram on top; the top-activating
    and typical inputs (with the activation under each) below. Each panel is named by its x-axis title,
    under it; the two pictures say which they are (the unit's own weights, or effective pictures)."""
    from plotly.subplots import make_subplots

    from sae_core.figures.activity import histogram_bars, target_line
    from sae_core.figures.training import GAP_COLOUR, IMAGE_X, IMAGE_Y, grey_heatmap

    h, w = card.image_shape
    specs = [[{}, {}, {}], [{"colspan": 2}, None, {}]]
    fig = make_subplots(rows=2, cols=3, specs=specs, vertical_spacing=0.2, horizontal_spacing=0.08)

    def picture(z: np.ndarray, lo: float, hi: float, hover: str, row: int, col: int, axis: dict) -> None:
        fig.add_trace(grey_heatmap(z, lo, hi, hover), row=row, col=col)
        fig.update_xaxes(axis, row=row, col=col)
        fig.update_yaxes({**IMAGE_Y, "scaleanchor": fig.data[-1].xaxis}, row=row, col=col)

    exact = {"row", "column", "kernel"}
    for col, tile, shape, kind, name in zip(
        (1, 2),
        (card.encoder_filter, card.decoder_feature),
        (card.filter_shape, card.feature_shape),
        (card.encoder_kind, card.decoder_kind),
        picture_titles(card),
        strict=True,
    ):
        z = images.filter_montage(tile[None, :], shape, cols=1)
        hover = "weight %{z:.2f} of its largest" if kind in exact else "%{z:.2f} of its largest |value|"
        picture(z, -1, 1, hover, 1, col, {**IMAGE_X, "title": {"text": name, "font": {"size": 12}}})
    counts, edges = histogram(card)
    what = card.activation_name
    bars = histogram_bars(
        counts, edges, f"{what} in [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}})<br>%{{y}} inputs"
    )
    fig.add_trace(bars, row=1, col=3)
    for col, inputs, idx, name in (
        (1, card.top_inputs, card.top_indices, f"the top {card.top_indices.size} inputs, {what} under each"),
        (3, card.typical_inputs, card.typical_indices, f"{card.typical_indices.size} random inputs, {what}"),
    ):
        row_img = images.montage(np.asarray(inputs, dtype=np.float32), (h, w), cols=len(idx))
        lo, hi = min(0.0, float(np.nanmin(row_img))), max(1.0, float(np.nanmax(row_img)))
        ticks = 1 + np.arange(len(idx)) * (w + 1) + (w - 1) / 2
        labels = [f"{card.activations[i]:.2f}" for i in idx]
        axis = {**IMAGE_X, "showticklabels": True, "tickmode": "array", "tickvals": ticks, "ticktext": labels}
        if col == 3:  # the narrow strip: signed codes (−0.89) would tilt and overlap its title
            axis.update(tickangle=0, tickfont={"size": 10})
        picture(row_img, lo, hi, "pixel %{z:.2f}", 2, col, {**axis, "title": {"text": name}})
    over = " over positions,<br>" if card.positions > 1 else " "
    fig.update_xaxes(
        title_text=f"activation {what}{over}on {card.activations.size:,} inputs", showgrid=True, row=1, col=3
    )
    fig.update_yaxes(title_text="inputs (log)", type="log", dtick=1, row=1, col=3)
    white = {"type": "rect", "xref": "x3 domain", "yref": "y3 domain", "x0": 0, "x1": 1, "y0": 0, "y1": 1}
    fig.add_shape({**white, "fillcolor": "white", "line": {"width": 0}, "layer": "below"})
    if card.threshold > 0:  # the activity level that density counts above
        shape, _ = target_line(card.threshold, "")
        fig.add_shape({**shape, "xref": "x3", "yref": "y3 domain"})
    fig.update_layout(
        title={"text": summary_line(card, ";<br>"), "x": 0.01, "font": {"size": 13}},
        height=480,
        showlegend=False,
        template="plotly_white",
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 20, "r": 20, "t": 70, "b": 50},
    )
    return fig


def _scale(card: UnitCard) -> int:
    """Pixels per input pixel: 8×8 digits at 6, 28×28 images at 3 (an input tile 48-84 px)."""
    return int(np.clip(round(84 / max(card.image_shape)), 2, 6))


def _picture_rows(card: UnitCard, scale: int):
    """(pictures row, top strip, typical strip) as uint8 arrays at `scale`."""
    h, w = card.image_shape
    gap = 2

    def tile(vector: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        grow = max(1, round(min(h / shape[0], w / shape[1])))
        return _up(images.to_uint8(_normalised(vector).reshape(shape), -1.0, 1.0), grow)

    def strip(inputs: np.ndarray) -> np.ndarray:
        row = images.montage(np.asarray(inputs, dtype=np.float32), (h, w), cols=len(inputs), pad=1)
        lo, hi = min(0.0, float(np.nanmin(row))), max(1.0, float(np.nanmax(row)))
        return images.to_uint8(row, lo, hi, background=60)

    pictures = [tile(card.encoder_filter, card.filter_shape), tile(card.decoder_feature, card.feature_shape)]
    top_row = _up(_hstack([*pictures, _histogram_image(card, h, 3 * w)], gap), scale)
    top, typical = _up(strip(card.top_inputs), scale), _up(strip(card.typical_inputs), scale)
    return top_row, top, typical


def _normalised(vector: np.ndarray) -> np.ndarray:
    """UFLDL display of one filter: divided by its norm, then by its largest |value| (so in [−1, 1])."""
    v = images.normalize_filters(np.asarray(vector, dtype=np.float64)[None, :])[0]
    return v / max(float(np.abs(v).max()), 1e-12)


def _histogram_image(card: UnitCard, height: int, width: int) -> np.ndarray:
    """The activation histogram as a [height, width] picture of white bars on black (log counts)."""
    counts, _ = histogram(card, bins=width)
    level = np.log1p(counts) / max(np.log1p(counts).max(), 1e-12)
    bars = np.arange(height)[::-1, None] < np.round(level * height)[None, :]
    return np.where(bars, 255, 30).astype(np.uint8)


def _up(img: np.ndarray, scale: int) -> np.ndarray:
    return np.kron(img, np.ones((scale, scale), dtype=np.uint8))


def _hstack(parts: list[np.ndarray], gap: int) -> np.ndarray:
    height = max(p.shape[0] for p in parts)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, gap)), constant_values=60) for p in parts]
    return np.concatenate(padded, axis=1)[:, :-gap]


PNG_FONT_SIZE = 15
PNG_MARGIN = 12
PNG_ASCII = {
    **{"ρ̂": "rho_hat", "ₖ": "_k", "ⱼ": "_j", "₁": "1", "₂": "2"},
    **{"→": "->", "×": "x", "∂": "d", "−": "-", "·": "*"},
}
"""What Pillow's built-in font cannot draw, spelled out (it has no Greek, subscripts or arrows)."""


def _ascii(text: str) -> str:
    for symbol, spelled in PNG_ASCII.items():
        text = text.replace(symbol, spelled)
    return text


def save_card_png(card: UnitCard, path: str | Path, scale: int | None = None) -> Path:
    """Write the card as a PNG: its numbers on top, then each row of pictures under a line saying what it
    is, with the unit's activation under every input. Returns the path."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=PNG_FONT_SIZE)
    line = PNG_FONT_SIZE + 6
    scale = scale or _scale(card)
    h, w = card.image_shape
    pictures, top, typical = _picture_rows(card, scale)
    n = card.numbers()
    what = card.activation_name if card.positions == 1 else f"max of map {card.unit} over its positions"
    where = " (over inputs and positions)" if card.positions > 1 else ""
    header = [
        f"{card.noun} {n['unit']} of {n['units']}:  ρ̂ = {n['rho_hat']:.4f},  "
        f"density {n['density']:.1%}{where}",
        f"switched off, the reconstruction error rises by {n['ablation_increase']:.4g} "
        f"({n['recon_error']:.4g} → {n['ablated_recon_error']:.4g})",
    ]
    encoder, decoder = (t.replace("<br>", ", ") for t in picture_titles(card))
    header = [_ascii(t) for t in header]
    named = [f"left: {encoder}", f"middle: {decoder}", f"right: histogram of {what} (log counts)"]
    top_name = f"the top {card.top_indices.size} inputs, {card.activation_name} under each"
    blocks = [
        ([_ascii(t) for t in named], pictures, None),
        ([_ascii(top_name)], top, card.top_indices),
        ([f"{card.typical_indices.size} random inputs"], typical, card.typical_indices),
    ]
    text_w = max(int(font.getlength(t)) for t in header + [t for b in blocks for t in b[0]])
    width = max(text_w, *(b[1].shape[1] for b in blocks)) + 2 * PNG_MARGIN
    height = PNG_MARGIN + line * (len(header) + 1)
    for lines, img, idx in blocks:
        height += line * len(lines) + img.shape[0] + (line if idx is not None else 0) + line
    canvas = Image.new("L", (width, height), color=255)
    draw = ImageDraw.Draw(canvas)
    y = PNG_MARGIN
    for text in header:
        draw.text((PNG_MARGIN, y), text, fill=0, font=font)
        y += line
    y += line
    tile_w = (w + 1) * scale
    for lines, img, idx in blocks:
        for text in lines:
            draw.text((PNG_MARGIN, y), text, fill=90, font=font)
            y += line
        canvas.paste(Image.fromarray(img), (PNG_MARGIN, y))
        y += img.shape[0]
        if idx is not None:  # the activation under each input tile, centred on it
            for i, sample in enumerate(idx):
                label = f"{card.activations[sample]:.2f}"
                x = PNG_MARGIN + i * tile_w + (tile_w - font.getlength(label)) / 2
                draw.text((x, y + 2), label, fill=0, font=font)
            y += line
        y += line
    path = Path(path)
    canvas.save(path)
    return path
