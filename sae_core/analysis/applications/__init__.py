"""What the learned features are good for: the four classic uses of an autoencoder, as pure functions of a
trained model and a dataset (no Streamlit here; `pages/applications.py` and `sae probe|denoise|anomaly`
are their consumers).

- `probe`: feature learning. A linear probe (logistic regression) on the hidden codes, beside the same
  probe on raw pixels and on PCA with as many dimensions as hidden units; accuracy against the number of
  labelled examples; the UFLDL self-taught split (features learned on some classes, probe on the others).
- `embedding`: dimensionality reduction. A 2-D map (PCA or t-SNE) of the codes beside one of raw pixels.
- `denoise`: PSNR of noisy inputs and of their reconstructions, and its curve against the noise level.
- `anomaly`: reconstruction error as an anomaly score; ROC, AUC, precision and recall at a threshold.

Whatever does not apply (no labels, a model whose input size is not the dataset's) raises
`NotApplicable`, a ValueError whose message is one sentence the page and the CLI show as it is.
"""

from sae_core.analysis.applications.common import (
    NotApplicable,
    check_fits,
    encode_all,
    reconstruct_all,
    weights_key,
)

__all__ = ["NotApplicable", "check_fits", "encode_all", "reconstruct_all", "weights_key"]
