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
