"""`python -m sae_core ...` runs the `sae` command line."""

from sae_core.cli.main import main

raise SystemExit(main())
