"""The objective as LaTeX (KaTeX-compatible, for st.latex) with the run's current numbers substituted.

The page shows the formula next to the pictures so the student sees which term each slider moves.
"""

from __future__ import annotations

from sae_core.config.run import ModelConfig, RunConfig
from sae_core.tex import aligned, tex_number

RECONSTRUCTION = r"\frac{1}{2}\cdot\frac{1}{m}\sum_{i=1}^{m}\bigl\lVert \hat{x}^{(i)} - x^{(i)} \bigr\rVert^2"

__all__ = ["RECONSTRUCTION", "objective_latex", "tex_number"]


def _weight_decay(model: ModelConfig) -> str:
    lam = tex_number(model.weight_decay)
    if model.spec.decays_every_layer:  # every layer's weights are decayed, not just two
        return rf"\frac{{{lam}}}{{2}}\sum_{{l}} \lVert W_l \rVert_F^2"
    return rf"\frac{{{lam}}}{{2}}\bigl(\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2\bigr)"


def _sparsity(model: ModelConfig) -> str | None:
    beta = tex_number(model.beta) + model.spec.penalty_factor_tex
    units, j = model.spec.penalty_units(model)
    return model.penalty_spec.term_tex(model, beta, units, j)


def objective_latex(config: RunConfig | ModelConfig) -> str:
    """J(W, b) for this run with ρ, β, λ (and k for top-k) written in as numbers, one term per line.

    The variant's spec supplies what is its own: a reconstruction term that replaces ½·mean‖x̂ − x‖², the
    terms it adds, how many ρ̂ the penalty sums over, and notes under the objective.
    """
    model = config.model if isinstance(config, RunConfig) else config
    spec = model.spec
    terms = [spec.reconstruction_tex(model) or RECONSTRUCTION]
    if model.weight_decay > 0:
        terms.append(_weight_decay(model))
    sparsity = _sparsity(model)
    if sparsity is not None:
        terms.append(sparsity)
    terms += spec.extra_tex(model)
    lines = [r"J(W, b) &= " + terms[0]] + [r"&\quad + " + term for term in terms[1:]]
    lines += model.penalty_spec.code_tex(model)
    lines += spec.notes_tex(model)
    return aligned(lines)
