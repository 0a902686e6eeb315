"""The command-line interface, `sae` / `python -m sae_core`: one module per group of commands."""
