"""Make assets/home-picture.png: photo patches in, learned edge filters out (a real UFLDL run).

Trains the "ufldl-natural" preset (full-batch L-BFGS, about a minute on a CPU) and draws, side by side,
25 of the training patches and the 25 filters the hidden units learned. Run from the repository root:

    PYTHONPATH=. python assets/make_home_picture.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sae_core.data import datasets as data
from sae_core.images import filter_montage, montage, to_uint8
from sae_core.presets import get
from sae_core.train.trainer import Trainer

OUT = Path(__file__).resolve().parent / "home-picture.png"
SCALE = 10  # screen pixels per image pixel
BACKGROUND = (255, 255, 255)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default()


def _panel(grid: np.ndarray, lo: float, hi: float) -> Image.Image:
    pixels = to_uint8(grid, lo, hi, background=255)
    img = Image.fromarray(pixels).resize((pixels.shape[1] * SCALE, pixels.shape[0] * SCALE), Image.NEAREST)
    return img.convert("RGB")


def main() -> None:
    cfg = get("ufldl-natural").config
    dataset = data.load(cfg.data)
    trainer = Trainer(cfg, dataset, device="cpu")
    snap = None
    for snap in trainer.run():  # noqa: B007 - only the final snapshot is drawn
        pass
    # Each patch stretched to its own contrast: most photo patches are nearly flat at one common scale.
    shown = dataset.train[:25].numpy()
    shown = shown - shown.mean(axis=1, keepdims=True)
    shown = shown / np.maximum(np.abs(shown).max(axis=1, keepdims=True), 1e-6)
    patches = _panel(montage(shown, (8, 8)), -1.0, 1.0)
    filters = _panel(filter_montage(snap.encoder_weight, (8, 8)), -1.0, 1.0)
    title, label, small = _font(30), _font(24), _font(20)
    gap, top, arrow_w = 40, 95, 160
    width = patches.width + arrow_w + filters.width + 2 * gap
    canvas = Image.new("RGB", (width, top + patches.height + 20), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x0, x1 = gap, gap + patches.width + arrow_w
    canvas.paste(patches, (x0, top))
    canvas.paste(filters, (x1, top))
    draw.text((x0, 15), "Input: 8×8 photo patches", fill=(20, 20, 20), font=title)
    draw.text((x1, 15), "Learned: 25 hidden-unit filters", fill=(20, 20, 20), font=title)
    draw.text((x0, 55), "each shown at its own contrast", fill=(90, 90, 90), font=small)
    draw.text((x1, 55), "encoder weights W₁, one tile per unit", fill=(90, 90, 90), font=small)
    mid_y = top + patches.height // 2
    a0, a1 = x0 + patches.width + 20, x1 - 20
    draw.line((a0, mid_y, a1, mid_y), fill=(200, 60, 50), width=8)
    draw.polygon([(a1, mid_y), (a1 - 28, mid_y - 18), (a1 - 28, mid_y + 18)], fill=(200, 60, 50))
    draw.text((a0 + 8, mid_y + 22), f"ρ = {cfg.model.rho:g}", fill=(20, 20, 20), font=label)
    draw.text((a0 + 8, mid_y + 52), f"β = {cfg.model.beta:g}", fill=(20, 20, 20), font=label)
    canvas.save(OUT, optimize=True)
    print(f"wrote {OUT} after {snap.step} steps, loss {snap.losses['total']:.4f}")


if __name__ == "__main__":
    main()
