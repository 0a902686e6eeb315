"""Reading the plain pictures of sae_core/figures/static.py back in tests (no Streamlit needed)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image


def picture_pixels(html: str) -> np.ndarray:
    """[H, W, 3] uint8: the PNG inside a plain picture's HTML (its data: URI)."""
    match = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert match is not None, "no PNG in the picture"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))).convert("RGB"))
