"""`python -m sae_core ...` runs the `sae` command line."""

from .cli import main

raise SystemExit(main())
