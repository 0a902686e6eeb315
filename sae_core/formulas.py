"""The objective as LaTeX (KaTeX-compatible, for st.latex) with the run's current numbers substituted.

The page shows the formula next to the pictures so the student sees which term each slider moves.
"""

from __future__ import annotations

from .config import ModelConfig, RunConfig
from .losses import EPS


def tex_number(x: float) -> str:
    """A number as LaTeX: 0.05 -> '0.05', 1e-4 -> '10^{-4}', 2.5e-5 -> '2.5 \\cdot 10^{-5}'."""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa} \cdot {power}"


RECONSTRUCTION = r"\frac{1}{2}\cdot\frac{1}{m}\sum_{i=1}^{m}\bigl\lVert \hat{x}^{(i)} - x^{(i)} \bigr\rVert^2"
BERNOULLI = r"-\frac{1}{m}\sum_{i=1}^{m}\log p\bigl(x^{(i)} \mid z^{(i)}\bigr)"
"""The VAE's reconstruction term with a sigmoid output: Bernoulli negative log-likelihood."""


def _weight_decay(model: ModelConfig) -> str:
    lam = tex_number(model.weight_decay)
    if model.variant in ("deep", "vae"):  # every layer's weights are decayed, not just two
        return rf"\frac{{{lam}}}{{2}}\sum_{{l}} \lVert W_l \rVert_F^2"
    return rf"\frac{{{lam}}}{{2}}\bigl(\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2\bigr)"


def _sparsity(model: ModelConfig) -> str | None:
    beta = tex_number(model.beta)
    # The convolutional variant's penalty acts per kernel map (ρ̂ₖ averages over samples and positions).
    units, j = (model.kernels, "k") if model.variant == "conv" else (model.hidden, "j")
    if model.effective_penalty == "kl":
        rho = tex_number(model.rho)
        return rf"{beta}\sum_{{{j}=1}}^{{{units}}} \mathrm{{KL}}\bigl({rho} \,\big\|\, \hat\rho_{j}\bigr)"
    if model.effective_penalty == "l1":
        per_sample = rf"\sum_{{{j}=1}}^{{{units}}} \bigl|h_{j}^{{(i)}}\bigr|"
        return rf"{beta}\cdot\frac{{1}}{{m}}\sum_{{i=1}}^{{m}}" + per_sample
    return None


def _variant_terms(model: ModelConfig) -> list[str]:
    """Extra terms some variants add to the objective."""
    if model.variant == "contractive":
        return [
            rf"{tex_number(model.contraction)}\,\Bigl\lVert \frac{{\partial h}}{{\partial x}} \Bigr\rVert_F^2"
        ]
    if model.variant == "vae":
        return [r"\mathrm{KL}\bigl(q(z \mid x) \,\big\|\, \mathcal{N}(0, I)\bigr)"]
    return []


def _aligned(lines: list[str]) -> str:
    """Lines joined in a KaTeX `aligned` block.

    One term or one note per line, notes of at most 34 characters: every line must fit the Train page's
    ~430 px formula column at KaTeX's default size (the widest renders about 345 px in Chromium), or
    KaTeX clips it at the column's right edge.
    """
    return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"


def objective_latex(config: RunConfig | ModelConfig) -> str:
    """J(W, b) for this run with ρ, β, λ (and k for top-k) written in as numbers, one term per line."""
    model = config.model if isinstance(config, RunConfig) else config
    terms = [BERNOULLI if model.variant == "vae" and model.output == "sigmoid" else RECONSTRUCTION]
    if model.weight_decay > 0:
        terms.append(_weight_decay(model))
    sparsity = _sparsity(model)
    if sparsity is not None:
        terms.append(sparsity)
    terms += _variant_terms(model)
    lines = [r"J(W, b) &= " + terms[0]] + [r"&\quad + " + term for term in terms[1:]]
    if model.uses_topk and model.variant != "vae":
        k = model.k
        lines.append(rf"h &= \mathrm{{top}}_{{{k}}}(W_1 x + b_1)")
        lines.append(rf"&\quad \text{{keep the {k} largest, zero the rest}}")
    if model.variant == "denoising":
        lines += [r"&\text{where } \hat{x} \text{ is decoded}", r"&\text{from a corrupted copy } \tilde{x}"]
    return _aligned(lines)


def kl_latex(rho: float) -> str:
    """The Bernoulli KL divergence, in symbols and with ρ substituted, and the definition of ρ̂ⱼ."""
    r, one_minus, eps = tex_number(rho), tex_number(1.0 - rho), tex_number(EPS)
    return _aligned(
        [
            r"\mathrm{KL}(\rho \,\|\, \hat\rho_j) &= \rho \log\frac{\rho}{\hat\rho_j}"
            r" + (1-\rho)\log\frac{1-\rho}{1-\hat\rho_j}",
            rf"&= {r}\log\frac{{{r}}}{{\hat\rho_j}} + {one_minus}\log\frac{{{one_minus}}}{{1-\hat\rho_j}}",
            r"\hat\rho_j &= \frac{1}{m}\sum_{i=1}^{m} h_j\bigl(x^{(i)}\bigr)",
            rf"&\quad \text{{clamped to }} [{eps},\, 1 - {eps}]",
        ]
    )
