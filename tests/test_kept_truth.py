"""A kept run of data with known features keeps its count (issue 21): "Bars found" is in metrics.json and
in the Runs page's comparison, with the number the Train page showed."""

from __future__ import annotations

import json

from sae_core import presets
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.figures.compare import metric_rows
from sae_core.presets import DEFAULT_PRESET
from sae_core.store import runs
from sae_core.train.metrics import features_found
from sae_core.train.trainer import Trainer


def test_bars_found_is_kept_in_metrics_json_and_in_the_comparison(tmp_path):
    flat = {**presets.get(DEFAULT_PRESET).flat, "steps": 600, "device": "cpu"}  # the bars preset, shorter
    cfg = RunConfig.from_flat(flat)
    trainer = Trainer(cfg, data.load(cfg.data))
    snap = list(trainer.run())[-1]
    found = features_found(snap.truth_match)
    assert found >= 8  # trained far enough that the count means something

    store = runs.RunStore(tmp_path)
    kept = store.save_run(trainer.model, snap, owner="me", status="finished").run
    metrics = json.loads((kept.path / "metrics.json").read_text())
    assert (metrics["features_found"], metrics["features_total"]) == (found, 16)

    live_rows = {label: values for label, values, _ in metric_rows([snap])}
    stored_rows = {label: values for label, values, _ in metric_rows([store.load_run(kept.id).snapshot()])}
    assert live_rows["Bars found"] == stored_rows["Bars found"] == [f"{found} / 16"]
