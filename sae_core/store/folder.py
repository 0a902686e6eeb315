"""The files of a saved model's folder: their names and the bounds a reader checks.

`export` writes such a folder, `model_import` reads one (or a zip of it) safely; both take the names
from here.
"""

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
FILTERS_PNG = "filters.png"
RECONSTRUCTIONS_PNG = "reconstructions.png"
LOSS_CSV = "loss_history.csv"
TEST_LOSS_CSV = "test_loss_history.csv"
SHAPE_KEY = "shape"
"""Top-level key of config.json that is not part of RunConfig: {"n_inputs": D, "image_shape": [H, W]}."""
MAX_INPUTS = 256 * 256
"""Largest input (pixels) a saved model may have: uploads.MAX_FEATURES, the largest the app trains on."""
