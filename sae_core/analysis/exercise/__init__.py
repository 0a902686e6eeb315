"""The UFLDL exercise, live: a student types the KL penalty and its derivative; the app parses the formula
safely, checks it against the true one, says where it differs, and trains a model with it.

formula.py   the safe parser (an allow-list walk over Python's `ast`) and its evaluator (numpy or torch)
check.py     the comparison with KL(ρ‖ρ̂) or ∂KL/∂ρ̂ on a grid, and the diagnostics behind each hint
runs.py      a small run on the bars with the student's penalty, and the same run with the built-in one
"""
