"""The class store (sae_core/serve/classes.py): creating a class, joining it, its bounds and lifetime, the
teacher's token, and one class seen by two processes through the same SQLite file."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sae_core.config.run import RunConfig
from sae_core.data import datasets
from sae_core.images import grid_shape
from sae_core.models import REGISTRY
from sae_core.presets import load_presets
from sae_core.serve import class_summary, classes
from sae_core.serve.class_summary import RunSummary
from sae_core.train.trainer import Trainer


def _summary(step: int = 10, rho: float = 0.1) -> RunSummary:
    return RunSummary(
        step=step,
        total_steps=100,
        status="running",
        dataset="bars",
        variant="sparse",
        penalty="KL",
        rho=rho,
        beta=3.0,
        hidden=16,
        recon_error=0.5,
        l0=2.5,
        mean_rho_hat=0.12,
        dead=1,
        fve=0.8,
        found=12,
        found_total=16,
    )


@pytest.fixture
def store(tmp_path):
    return classes.ClassStore(tmp_path / "classes.sqlite3")


def test_a_student_joins_with_the_code_and_publishes_a_run_the_class_sees(store):
    info, token = store.create_class("Lecture 4", minutes=60, now=1000.0)
    assert len(info.code) == classes.CODE_LENGTH and info.expires == 1000.0 + 3600
    member = store.join(info.code.lower(), "Ada", owner="browser-a", now=1001.0)
    store.publish(member, _summary(), b"png", now=1002.0)
    (student,) = store.students(info.code)
    assert (student.nickname, student.run, student.montage, student.last_seen) == (
        "Ada",
        _summary(),
        b"png",
        1002.0,
    )
    store.leave(member)
    assert store.students(info.code) == []


def test_the_teacher_token_is_checked_and_only_its_hash_is_stored(store):
    info, token = store.create_class("x")
    assert store.is_teacher(info.code, token)
    for wrong in (None, "", token + "x", token[:-1], "a" * len(token)):
        assert not store.is_teacher(info.code, wrong)
    assert not store.is_teacher("NOSUCH", token)
    raw = store.path.read_bytes()
    assert token.encode() not in raw
    with pytest.raises(classes.ClassError, match="teacher"):
        store.push_setting(info.code, "wrong", "bars", {"preset": "bars"})
    with pytest.raises(classes.ClassError, match="teacher"):
        store.end_class(info.code, None)
    store.push_setting(info.code, token, "Bars", {"preset": "bars", "rho": "0.05"})
    assert store.info(info.code).pushed == {"label": "Bars", "query": {"preset": "bars", "rho": "0.05"}}


def test_a_nickname_is_one_student_until_its_student_is_away(store):
    info, _ = store.create_class("x", now=0.0)
    first = store.join(info.code, "Bo", owner="a", now=1.0)
    assert store.join(info.code, "Bo", owner="a", now=2.0) == first  # a reload of the same browser
    with pytest.raises(classes.ClassError, match="already called"):
        store.join(info.code, "bo", owner="b", now=3.0)
    assert store.join(info.code, "Bo", owner="b", now=3.0 + classes.AWAY_S + 1) == first


@pytest.mark.parametrize("bad", ["", " ", "<script>", "a" * 21, "-dash", "a\x00b", "Ünï", "a*b"])
def test_a_bad_nickname_is_refused_with_the_rule(store, bad):
    info, _ = store.create_class("x")
    with pytest.raises(classes.ClassError, match="letters, digits"):
        store.join(info.code, bad, owner="a")


def test_a_class_admits_at_most_its_bound_of_students(store, monkeypatch):
    monkeypatch.setattr(classes, "MAX_STUDENTS", 3)
    info, _ = store.create_class("x")
    members = [store.join(info.code, f"s{i}", owner=f"o{i}") for i in range(3)]
    with pytest.raises(classes.ClassError, match="full"):
        store.join(info.code, "late", owner="late")
    store.leave(members[0])
    store.join(info.code, "late", owner="late")


def test_a_server_runs_at_most_its_bound_of_open_classes(store, monkeypatch):
    monkeypatch.setattr(classes, "MAX_OPEN_CLASSES", 2)
    first, token = store.create_class("a", now=0.0)
    store.create_class("b", now=0.0)
    with pytest.raises(classes.ClassError, match="most at once"):
        store.create_class("c", now=1.0)
    store.end_class(first.code, token)
    store.create_class("c", now=1.0)
    with pytest.raises(classes.ClassError, match="most at once"):
        store.create_class("d", now=2.0)
    store.create_class("d", now=1.0 + 60 * classes.MAX_MINUTES)  # the others expired by then


def test_an_ended_or_expired_class_takes_no_one(store):
    info, token = store.create_class("x", minutes=10, now=0.0)
    with pytest.raises(classes.ClassError, match="ended"):
        store.join(info.code, "late", owner="a", now=601.0)
    assert store.membership("a", now=1.0) is None
    member = store.join(info.code, "early", owner="a", now=1.0)
    assert store.membership("a", now=2.0) == (info.code, member, "early")
    assert store.membership("a", now=601.0) is None
    store.end_class(info.code, token, now=2.0)
    assert not store.info(info.code).is_open(now=3.0)
    with pytest.raises(classes.ClassError, match="ended"):
        store.join(info.code, "other", owner="b", now=3.0)
    with pytest.raises(classes.ClassError, match="no class"):
        store.join("ZZZZZZ", "x", owner="b")
    with pytest.raises(classes.ClassError, match="minutes"):
        store.create_class("x", minutes=5)


CHILD = """
import sys
from sae_core.serve import classes
store = classes.ClassStore(sys.argv[1])
member = store.join(sys.argv[2], "Other-process", owner="child")
print(member)
"""


def test_another_process_on_the_same_file_is_the_same_class(store):
    info, token = store.create_class("x")
    store.set_spotlight(info.code, token, "nobody")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(store.path), info.code], capture_output=True, text=True, check=True
    )
    member = out.stdout.strip()
    assert [s.nickname for s in store.students(info.code)] == ["Other-process"]
    assert store.students(info.code)[0].member == member


def test_a_summary_says_the_snapshot_numbers_and_survives_json():
    cfg = RunConfig.from_flat({**load_presets()["bars"].flat, "steps": 30, "seed": 0})
    trainer = Trainer(cfg, datasets.load(cfg.data))
    snap = list(trainer.run())[-1]
    summary = class_summary.summarize(snap)
    assert summary.step == snap.step == 30
    assert summary.rho == cfg.model.rho and summary.beta == cfg.model.beta and summary.penalty == "KL"
    assert summary.l0 == pytest.approx(snap.metrics["l0"])
    assert summary.mean_rho_hat == pytest.approx(float(snap.rho_hat.mean()))
    assert summary.found_total == 16 and 0 <= summary.found <= 16
    assert RunSummary.from_json(summary.to_json()) == summary
    nan = RunSummary.from_json(_summary().__class__(**{**_summary().__dict__, "l0": math.nan}).to_json())
    assert math.isnan(nan.l0)
    png = class_summary.montage_png(snap)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


TINY = {"dataset": "digits", "max_samples": 200, "hidden": 6, "layers": (8,), "kernels": 3, "kernel_size": 3}
TINY.update(latent=2, k=3, batch_size=32, steps=6, device="cpu")


@pytest.mark.parametrize("variant", list(REGISTRY))
def test_every_variants_run_makes_a_card(variant):
    """A student may train any variant: its summary has the run's numbers and its picture one tile per
    unit (the first MONTAGE_UNITS) of the filter's shape."""
    cfg = RunConfig.from_flat({**TINY, "variant": variant})
    snap = list(Trainer(cfg, datasets.load(cfg.data)).run())[-1]
    summary = class_summary.summarize(snap)
    assert summary.variant == variant and summary.step == 6
    assert summary.hidden == np.asarray(snap.rho_hat).size
    picture = np.asarray(Image.open(io.BytesIO(class_summary.montage_png(snap))))
    h, w = snap.filter_shape
    units = min(len(snap.encoder_weight), class_summary.MONTAGE_UNITS)
    rows, cols = grid_shape(units)
    assert picture.shape == (rows * (h + 1) + 1, cols * (w + 1) + 1)
