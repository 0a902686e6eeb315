"""Loading data into tensors: bundled and generated datasets, torchvision's files, the user's uploads."""
