"""The variants' own figures, one module per variant (see `common` for what they share)."""
