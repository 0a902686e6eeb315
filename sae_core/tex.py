"""LaTeX helpers shared by the formulas and the variants' own terms (KaTeX-compatible, for st.latex)."""

from __future__ import annotations


def tex_number(x: float) -> str:
    """A number as LaTeX: 0.05 -> '0.05', 1e-4 -> '10^{-4}', 2.5e-5 -> '2.5 \\cdot 10^{-5}'."""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa} \cdot {power}"


def aligned(lines: list[str]) -> str:
    """Lines joined in a KaTeX `aligned` block.

    One term or one note per line, notes of at most 34 characters: every line must fit the Train page's
    ~430 px formula column at KaTeX's default size (the widest renders about 345 px in Chromium), or
    KaTeX clips it at the column's right edge.
    """
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"
