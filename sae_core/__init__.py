"""Sparse Autoencoder Playground: the library behind the app and the `sae` CLI (no Streamlit here)."""

__version__ = "0.1.0"
