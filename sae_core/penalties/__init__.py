"""Sparsity penalties as plugins: one module per penalty (its maths and a `SPEC`), the shared code layers,
the registry.

spec.py       PenaltySpec: what the config, the objective, the pages, figures, Theory, diagnostics, the
              sweep and the CLI read about a penalty
code.py       code layers (the code's activation, top-k), activity thresholds, keep_topk
registry.py   PENALTIES (name -> spec, collected from the modules), get_penalty
kl.py, l1.py, topk.py, none.py, jumprelu.py   the penalties
"""
