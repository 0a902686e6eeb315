"""One hidden unit's card (a feature dashboard): what it looks for and draws, how often it fires, the inputs
that drive it hardest and some typical ones, and what the reconstruction loses when it is switched off.

`build_card(model, x, unit)` computes it from a model and inputs x: [N, n_inputs]; `card_figure` draws it
with plotly for the page and `card_image` as one grey numpy picture for `sae unit --out card.png`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import images, metrics

TOP = 9
"""Top-activating inputs shown."""
TYPICAL = 9
"""Random inputs shown, with the unit's activation on each."""
HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class UnitCard:
    """Everything the card shows of hidden unit `unit` on N inputs."""

    unit: int
    units: int
    """How many code units the model has."""
    image_shape: tuple[int, int]
    encoder_filter: np.ndarray | None
    """[H·W] the unit's row of W₁, or None where the first layer's rows are not the code's units."""
    decoder_feature: np.ndarray | None
    """[H·W] the unit's column of W₂ (what it adds to x̂), or None without a linear decoder in pixels."""
    activations: np.ndarray
    """[N] hⱼ on every input."""
    active: np.ndarray
    """[N] bool, where the model counts the unit as active (`Autoencoder.active`: |hⱼ| > its threshold)."""
    threshold: float
    """The model's activity threshold (marked on the histogram)."""
    top_indices: np.ndarray
    """[TOP] inputs with the highest hⱼ, highest first (metrics.top_activating)."""
    top_inputs: np.ndarray
    """[TOP, H·W]."""
    typical_indices: np.ndarray
    """[TYPICAL] random inputs (seeded)."""
    typical_inputs: np.ndarray
    recon_error: float
    """½·mean‖x̂ − x‖² of the model as it is."""
    ablated_recon_error: float
    """The same with hⱼ set to 0 before decoding."""

    @property
    def rho_hat(self) -> float:
        """Mean activation of the unit over the inputs."""
        return float(self.activations.mean())

    @property
    def density(self) -> float:
        """Fraction of the inputs on which the unit is active."""
        return float(self.active.mean())

    @property
    def ablation_increase(self) -> float:
        """How much the reconstruction error rises when the unit is switched off."""
        return self.ablated_recon_error - self.recon_error

    def numbers(self) -> dict[str, float | int]:
        """The card's numbers (what `sae unit` prints and --json writes)."""
        return {
            "unit": self.unit,
            "units": self.units,
            "samples": int(self.activations.size),
            "rho_hat": self.rho_hat,
            "density": self.density,
            "max_activation": float(self.activations.max()),
            "recon_error": self.recon_error,
            "ablated_recon_error": self.ablated_recon_error,
            "ablation_increase": self.ablation_increase,
        }


# ----- computing -------------------------------------------------------------------------------------------
def recon_error(recon: torch.Tensor, x: torch.Tensor) -> float:
    """½ · mean over samples of Σᵢ (x̂ᵢ − xᵢ)², as metrics.summary's recon_error."""
    return float(0.5 * (recon - x).pow(2).sum(dim=1).mean())


@torch.no_grad()
def ablate(model: nn.Module, codes: torch.Tensor, unit: int) -> torch.Tensor:
    """x̂ decoded from the codes [N, units] with column `unit` set to 0. -> [N, n_inputs]."""
    switched_off = codes.clone()
    switched_off[:, unit] = 0.0
    return model.decode(switched_off)


@torch.no_grad()
def codes_of(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The code of every row of x [N, D] with the model in eval mode (no corruption, the VAE's mean)."""
    was_training = model.training
    model.eval()
    codes = torch.cat([model.encode(part) for part in x.split(chunk)])
    model.train(was_training)
    return codes


def _pixel_row(
    weights: torch.Tensor | None, unit: int, units: int, pixels: int, by_row: bool
) -> np.ndarray | None:
    """Row `unit` of [units, pixels] (by_row) or column of [pixels, units]; None when they do not fit."""
    if weights is None:
        return None
    w = weights.detach().cpu().double()
    w = w if by_row else w.T
    if tuple(w.shape) != (units, pixels):
        return None
    return w[unit].numpy().copy()


@torch.no_grad()
def build_card(
    model: nn.Module,
    x: torch.Tensor,
    unit: int,
    image_shape: tuple[int, int],
    top: int = TOP,
    typical: int = TYPICAL,
    seed: int = 0,
) -> UnitCard:
    """The card of code unit `unit` of `model` on inputs x: [N, H·W] (on the model's device).

    The model is put in eval mode for the card and back as it was; both reconstruction errors decode the
    eval-mode code, so the difference is the unit's alone.
    """
    codes = codes_of(model, x)
    units = codes.shape[1]
    if not 0 <= unit < units:
        raise ValueError(f"unit must be in [0, {units - 1}], got {unit}")
    was_training = model.training
    model.eval()
    try:
        base = recon_error(model.decode(codes), x)
        ablated = recon_error(ablate(model, codes, unit), x)
        encoder = _pixel_row(model.filters(), unit, units, x.shape[1], by_row=True)
        decoder = _pixel_row(model.dictionary(), unit, units, x.shape[1], by_row=False)
    finally:
        model.train(was_training)
    top_idx = metrics.top_activating(codes, top)[unit].cpu().numpy()
    rng = np.random.default_rng(seed)
    typical_idx = np.sort(rng.choice(x.shape[0], size=min(typical, x.shape[0]), replace=False))
    inputs = x.detach().cpu().numpy()
    return UnitCard(
        unit=int(unit),
        units=int(units),
        image_shape=tuple(image_shape),
        encoder_filter=encoder,
        decoder_feature=decoder,
        activations=codes[:, unit].detach().cpu().double().numpy(),
        active=model.active(codes)[:, unit].cpu().numpy(),
        threshold=float(model.active_threshold),
        top_indices=top_idx,
        top_inputs=inputs[top_idx],
        typical_indices=typical_idx,
        typical_inputs=inputs[typical_idx],
        recon_error=base,
        ablated_recon_error=ablated,
    )


def histogram(card: UnitCard, bins: int = HISTOGRAM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(counts [bins], edges [bins + 1]) of the unit's finite activations (a diverged model has NaNs)."""
    acts = card.activations[np.isfinite(card.activations)]
    lo, hi = (float(acts.min()), float(acts.max())) if acts.size else (0.0, 1.0)
    return np.histogram(acts, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))


def summary_line(card: UnitCard) -> str:
    n = card.numbers()
    return (
        f"unit {n['unit']} of {n['units']}: ρ̂ = {n['rho_hat']:.4f}, active on {n['density']:.1%} of "
        f"{n['samples']:,} inputs, switching it off raises the reconstruction error by "
        f"{n['ablation_increase']:.4g} ({n['recon_error']:.4g} → {n['ablated_recon_error']:.4g})"
    )


# ----- drawing ---------------------------------------------------------------------------------------------
def card_figure(card: UnitCard):
    """The card as one plotly figure: filter, feature and activation histogram on top; the top-activating
    and typical inputs (with hⱼ under each) below. Each panel is named by its x-axis title, under it."""
    from plotly.subplots import make_subplots

    from .figures import GAP_COLOUR, IMAGE_X, IMAGE_Y, grey_heatmap
    from .figures_activity import histogram_bars, target_line

    h, w = card.image_shape
    specs = [[{}, {}, {}], [{"colspan": 2}, None, {}]]
    fig = make_subplots(rows=2, cols=3, specs=specs, vertical_spacing=0.18, horizontal_spacing=0.08)

    def picture(z: np.ndarray, lo: float, hi: float, hover: str, row: int, col: int, axis: dict) -> None:
        fig.add_trace(grey_heatmap(z, lo, hi, hover), row=row, col=col)
        fig.update_xaxes(axis, row=row, col=col)
        fig.update_yaxes({**IMAGE_Y, "scaleanchor": fig.data[-1].xaxis}, row=row, col=col)

    for col, tile, name in (
        (1, card.encoder_filter, "encoder filter (W₁ row): looks for"),
        (2, card.decoder_feature, "decoder feature (W₂ column): draws"),
    ):
        if tile is None:
            name += " — none for this model"
            tile = np.full(h * w, np.nan)
        z = images.filter_montage(tile[None, :], (h, w), cols=1)
        picture(z, -1, 1, "weight %{z:.2f}", 1, col, {**IMAGE_X, "title": {"text": name}})
    counts, edges = histogram(card)
    bars = histogram_bars(counts, edges, "hⱼ in [%{customdata[0]:.3f}, %{customdata[1]:.3f})<br>%{y} inputs")
    fig.add_trace(bars, row=1, col=3)
    for col, inputs, idx, name in (
        (1, card.top_inputs, card.top_indices, f"the top {card.top_indices.size} inputs, hⱼ under each"),
        (3, card.typical_inputs, card.typical_indices, f"{card.typical_indices.size} random inputs, hⱼ"),
    ):
        row_img = images.montage(np.asarray(inputs, dtype=np.float32), (h, w), cols=len(idx))
        lo, hi = min(0.0, float(np.nanmin(row_img))), max(1.0, float(np.nanmax(row_img)))
        ticks = 1 + np.arange(len(idx)) * (w + 1) + (w - 1) / 2
        labels = [f"{card.activations[i]:.2f}" for i in idx]
        axis = {**IMAGE_X, "showticklabels": True, "tickmode": "array", "tickvals": ticks, "ticktext": labels}
        picture(row_img, lo, hi, "pixel %{z:.2f}", 2, col, {**axis, "title": {"text": name}})
    fig.update_xaxes(
        title_text=f"activation hⱼ on {card.activations.size:,} inputs", showgrid=True, row=1, col=3
    )
    fig.update_yaxes(title_text="inputs (log)", type="log", dtick=1, row=1, col=3)
    white = {"type": "rect", "xref": "x3 domain", "yref": "y3 domain", "x0": 0, "x1": 1, "y0": 0, "y1": 1}
    fig.add_shape({**white, "fillcolor": "white", "line": {"width": 0}, "layer": "below"})
    if card.threshold > 0:  # the activity level that density counts above
        shape, _ = target_line(card.threshold, "")
        fig.add_shape({**shape, "xref": "x3", "yref": "y3 domain"})
    fig.update_layout(
        title={"text": summary_line(card), "x": 0.01, "font": {"size": 13}},
        height=500,
        showlegend=False,
        template="plotly_white",
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 20, "r": 20, "t": 50, "b": 50},
    )
    return fig


def card_image(card: UnitCard, scale: int = 6) -> np.ndarray:
    """The card as one [rows, cols] uint8 grey picture (no text): top row the encoder filter, the decoder
    feature and the activation histogram; then the top-activating inputs; then the typical ones."""
    h, w = card.image_shape
    gap = 2
    blank = np.full((h, w), 0, dtype=np.uint8)

    def tile(vector: np.ndarray | None) -> np.ndarray:
        if vector is None:
            return blank
        return images.to_uint8(_normalised(vector).reshape(h, w), -1.0, 1.0)

    def strip(inputs: np.ndarray) -> np.ndarray:
        row = images.montage(np.asarray(inputs, dtype=np.float32), (h, w), cols=len(inputs), pad=1)
        lo, hi = min(0.0, float(np.nanmin(row))), max(1.0, float(np.nanmax(row)))
        return images.to_uint8(row, lo, hi, background=60)

    top_row = _hstack(
        [tile(card.encoder_filter), tile(card.decoder_feature), _histogram_image(card, h, 3 * w)], gap
    )
    rows = [_up(top_row, scale), _up(strip(card.top_inputs), scale), _up(strip(card.typical_inputs), scale)]
    return _vstack(rows, gap * scale)


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
    padded = []
    for p in parts:
        p = np.pad(p, ((0, height - p.shape[0]), (0, gap)), constant_values=60)
        padded.append(p)
    return np.concatenate(padded, axis=1)[:, :-gap]


def _vstack(parts: list[np.ndarray], gap: int) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    rows = [np.pad(p, ((0, gap), (0, width - p.shape[1])), constant_values=60) for p in parts]
    return np.concatenate(rows, axis=0)[:-gap]


def save_card_png(card: UnitCard, path: str | Path, scale: int = 6) -> Path:
    """Write `card_image` as a PNG under a few lines of text (the card's numbers); returns the path."""
    from PIL import Image, ImageDraw

    picture = card_image(card, scale)
    n = card.numbers()
    lines = [
        f"unit {n['unit']} of {n['units']}   rho_hat {n['rho_hat']:.4f}   density {n['density']:.1%}",
        f"ablation: recon error {n['recon_error']:.4g} -> {n['ablated_recon_error']:.4g} "
        f"(+{n['ablation_increase']:.4g})",
        "filter | feature | histogram of h_j;  top inputs;  random inputs",
    ]
    line_height = 14
    width = max(picture.shape[1], 8 * max(len(t) for t in lines) // 1 + 10)
    canvas = Image.new("L", (width, picture.shape[0] + line_height * len(lines) + 10), color=255)
    canvas.paste(Image.fromarray(picture), (0, line_height * len(lines) + 10))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(lines):
        draw.text((4, 4 + i * line_height), text, fill=0)
    path = Path(path)
    canvas.save(path)
    return path
