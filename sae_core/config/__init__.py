"""A run's settings: frozen, validated dataclasses assembled from the variants' and penalties' specs, and
the dataset catalogue."""
