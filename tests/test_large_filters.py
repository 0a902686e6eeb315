"""The large filter view (issue 21): the most active units' tiles, numbered, for the back of a room."""

from __future__ import annotations

import dataclasses

import numpy as np

from sae_core.config.run import RunConfig
from sae_core.figures.large_filters import large_filters_figure, most_active_units
from sae_core.images import normalize_filters
from sae_core.train.trainer import Trainer


def test_the_large_view_shows_the_most_active_units_tiles_with_their_numbers(tiny_digits):
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 25, "steps": 30, "device": "cpu"})
    snap = list(Trainer(cfg, tiny_digits).run())[-1]
    density = np.linspace(0.0, 0.96, 25)[::-1].copy()  # unit 0 the most active, unit 24 the least
    density[[3, 17]] = 0.99, 0.98  # then 3 and 17 lead
    snap = dataclasses.replace(snap, density=density)

    units = most_active_units(snap, 16)
    assert list(units) == [3, 17] + [u for u in range(25) if u not in (3, 17)][:14]

    fig = large_filters_figure(snap, "encoder", 16)
    z = np.asarray(fig.data[0].z, dtype=np.float64)
    assert z.shape == (4 * 9 + 1, 4 * 9 + 1)  # 4 × 4 tiles of 8×8 with 1-pixel gaps
    first = normalize_filters(np.asarray(snap.encoder_weight, dtype=np.float32))[3]
    expected = first / np.abs(first).max()
    np.testing.assert_allclose(z[1:9, 1:9], expected.reshape(8, 8), rtol=1e-5, atol=1e-6)
    assert [a.text for a in fig.layout.annotations] == [f"<b>{u}</b>" for u in units]
    assert "16 most active of 25 units" in fig.layout.title.text
