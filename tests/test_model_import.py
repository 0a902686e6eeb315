"""Importing a saved model (a zip or a folder): exact round trips, and every bad file refused with its line.

The refusals are checked by their message text, since the message is what the user gets. The zips are built
in memory from a tiny model; the Train page's import is driven through AppTest's file uploader.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_helpers import open_train_page, pin_navigation_mode, stop_jobs
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sae_core.cli.main import main
from sae_core.config.run import RunConfig
from sae_core.models import build
from sae_core.serve.jobs import TrainingJob
from sae_core.store import export, model_import
from sae_core.store.model_import import ModelImportError, load_archive, load_model_path

CFG = RunConfig().replace(dataset="digits", hidden=5, steps=100, batch_size=32, device="cpu", seed=2)


@pytest.fixture(scope="module")
def job(tiny_digits):
    """A run three steps in, as the Train page holds it."""
    job = TrainingJob(CFG, tiny_digits)
    for _ in range(3):
        job.step_once()
    yield job
    job.stop()


@pytest.fixture(scope="module")
def download(job) -> bytes:
    """The Train page's download of `job` (pages.train_views.model_zip, without importing a page)."""
    snap = job.latest()
    metrics = export.snapshot_metrics(snap)
    return export.zip_bytes(job.trainer.model, job.config, metrics, image_shape=(8, 8), snapshot=snap)


def _members(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(members: dict[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    """A deflated zip of (name, body) pairs, in order; a list may name a member twice."""
    pairs = members.items() if isinstance(members, dict) else members
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name; one test wants one
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, body in pairs:
                zf.writestr(name, body)
    return buf.getvalue()


MEMBER_NAMES = {
    "model": export.MODEL_FILE,
    "config": export.CONFIG_FILE,
    "metrics": export.METRICS_FILE,
    "history": export.LOSS_CSV,
}


def _edited(download: bytes, **replace: bytes | None) -> bytes:
    """The download with members replaced (by their MEMBER_NAMES key) or left out (None)."""
    members = _members(download)
    for key, body in replace.items():
        if body is None:
            del members[MEMBER_NAMES[key]]
        else:
            members[MEMBER_NAMES[key]] = body
    return _zip(members)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


# ----- round trips ----------------------------------------------------------------------------------------
def test_the_download_imports_with_its_weights_config_metrics_step_and_loss_history(job, download):
    snap = job.latest()

    got = load_archive(download, "sae-model.zip")

    assert got.config == CFG and got.image_shape == (8, 8)
    assert _same_weights(got.model, job.trainer.model)
    assert not got.model.training and next(got.model.parameters()).device.type == "cpu"
    assert got.metrics == json.loads(json.dumps(export.snapshot_metrics(snap)))
    assert got.start_step == 3 == got.metrics["steps"]
    assert got.history.steps.tolist() == [1, 2, 3]
    assert set(got.history.terms) == set(snap.history)
    for term, values in snap.history.items():
        assert got.history.terms[term].tolist() == values.tolist(), term  # exact, as the CSV holds them
    x = job.trainer.x[:7].cpu()
    with torch.no_grad():
        assert torch.equal(got.model.encode(x), job.trainer.model.encode(x))


def test_a_zipped_run_folder_imports_like_the_folder_itself(job, download, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    members = _members(download)
    for name, body in members.items():
        (folder / name).write_bytes(body)
    zipped = [("run/", b"")] + [(f"run/{n}", b) for n, b in members.items()]
    zipped.append(("__MACOSX/run/._model.safetensors", b"\0\5\26\7"))  # what macOS adds; not ours, not read
    (tmp_path / "run.zip").write_bytes(_zip(zipped))

    from_folder = load_model_path(folder)
    from_zip = load_model_path(tmp_path / "run.zip")
    from_bytes = load_archive((tmp_path / "run.zip").read_bytes(), "run.zip")

    for got in (from_folder, from_zip, from_bytes):
        assert _same_weights(got.model, job.trainer.model)
        assert got.config == CFG and got.start_step == 3 and got.history is not None
    assert export.load(folder)[1] == CFG  # export.load reads folders through the same checks


def test_a_zip_without_metrics_or_history_starts_at_step_0(download):
    got = load_archive(_edited(download, metrics=None, history=None), "bare.zip")
    assert got.metrics == {} and got.start_step == 0 and got.history is None


def test_a_malformed_loss_history_is_dropped_not_fatal(download):
    got = load_archive(_edited(download, history=b"step,total\n1,0.5\nthree,0.4\n"), "m.zip")
    assert got.history is None and got.start_step == 3


# ----- refusals, each with its message ---------------------------------------------------------------------
class _Payload:
    """A pickle that runs os.mkdir(path) when unpickled: the import must never get that far."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickles_are_refused_without_being_unpickled(job, download, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    state = io.BytesIO()
    torch.save(job.trainer.model.state_dict(), state)
    cases = {
        "model.pt": state.getvalue(),  # torch.save's own zip, holding archive/data.pkl
        "model.pkl": payload,  # a bare pickle
        "in_zip.zip": _zip({"weights.pth": state.getvalue(), "config.json": b"{}"}),
        "renamed.zip": _edited(download, model=state.getvalue()),
        "payload.zip": _edited(download, model=payload),
    }
    for name, raw in cases.items():
        with pytest.raises(ModelImportError, match="looks like a pickled PyTorch file") as info:
            load_archive(raw, name)
        message = str(info.value)
        assert "never unpickles" in message and "`sae train --out`" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: b"hello, not a zip", "notes.zip is not a zip file"),
        (lambda d: b"", "notes.zip is not a zip file"),
        (lambda d: d[: len(d) // 2], "notes.zip is not a zip file, or it is cut short"),
        (lambda d: _edited(d, model=None), "notes.zip holds no model.safetensors"),
        (lambda d: _edited(d, config=None), "notes.zip holds no config.json"),
    ],
    ids=["not-a-zip", "empty", "truncated-zip", "no-weights", "no-config"],
)
def test_files_that_are_not_model_zips_are_refused(download, make, message):
    with pytest.raises(ModelImportError, match=message):
        load_archive(make(download), "notes.zip")


def test_truncated_weights_inside_a_valid_zip_are_refused(download):
    weights = _members(download)[export.MODEL_FILE]
    with pytest.raises(
        ModelImportError, match=r"m\.zip: model\.safetensors is not a valid safetensors file \("
    ):
        load_archive(_edited(download, model=weights[:100]), "m.zip")


def _weights(download: bytes) -> dict[str, torch.Tensor]:
    return load_safetensors(_members(download)[export.MODEL_FILE])


def test_weights_with_a_wrong_name_are_refused_naming_both(download):
    tensors = _weights(download)
    tensors["encoder.W"] = tensors.pop("encoder.weight")
    with pytest.raises(ModelImportError, match=r"missing \['encoder.weight'\], unexpected \['encoder.W'\]"):
        load_archive(_edited(download, model=save_safetensors(tensors)), "m.zip")


def test_weights_of_another_shape_are_refused_naming_the_key_and_both_shapes(download):
    doc = json.loads(_members(download)[export.CONFIG_FILE])
    doc["model"]["hidden"] = 6
    with pytest.raises(
        ModelImportError, match=r"encoder\.weight has shape \[5, 64\]; the config needs \[6, 64\]"
    ):
        load_archive(_edited(download, config=json.dumps(doc).encode()), "m.zip")


@pytest.mark.parametrize(
    "value, message",
    [(float("nan"), "holds NaN or infinite values"), (float("inf"), "holds NaN or infinite")],
)
def test_non_finite_weights_are_refused(download, value, message):
    tensors = _weights(download)
    tensors["decoder.bias"][3] = value
    with pytest.raises(ModelImportError, match=f"m.zip: model.safetensors: decoder.bias {message}"):
        load_archive(_edited(download, model=save_safetensors(tensors)), "m.zip")


def test_integer_weights_are_refused_rather_than_cast(download):
    tensors = {k: v.to(torch.int32) for k, v in _weights(download).items()}
    with pytest.raises(ModelImportError, match="has dtype torch.int32; weights must be floats"):
        load_archive(_edited(download, model=save_safetensors(tensors)), "m.zip")


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda doc: doc["model"].update(rho=1.5),
            r"m\.zip: config\.json: rho must be in \(0, 1\), got 1\.5",
        ),
        (lambda doc: doc["model"].update(colour="red"), "unknown ModelConfig field"),
        (lambda doc: doc.pop("shape"), 'needs "shape"'),
        (lambda doc: doc["shape"].update(n_inputs="many"), "n_inputs many does not equal"),
    ],
)
def test_a_config_that_does_not_validate_is_refused_naming_the_field(download, edit, message):
    doc = json.loads(_members(download)[export.CONFIG_FILE])
    edit(doc)
    with pytest.raises(ModelImportError, match=message):
        load_archive(_edited(download, config=json.dumps(doc).encode()), "m.zip")


def test_config_and_metrics_that_are_not_json_objects_are_refused(download):
    with pytest.raises(ModelImportError, match="m.zip: config.json is not valid JSON"):
        load_archive(_edited(download, config=b"{nope"), "m.zip")
    with pytest.raises(ModelImportError, match='m.zip: metrics.json: "steps" must be a whole number >= 0'):
        load_archive(_edited(download, metrics=b'{"steps": -4}'), "m.zip")
    with pytest.raises(ModelImportError, match="m.zip: metrics.json must hold a JSON object"):
        load_archive(_edited(download, metrics=b"[1, 2]"), "m.zip")


def _declaring(raw: bytes, member: str, declared: int) -> bytes:
    """raw with `member`'s uncompressed size, in its local and central headers, set to `declared`."""
    blob = bytearray(raw)
    # (signature, offset of the uncompressed size, of the name's length, of the name) in each header
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        at = blob.find(signature)
        while at >= 0:
            (length,) = struct.unpack_from("<H", blob, at + length_at)
            if blob[at + name_at : at + name_at + length] == member.encode():
                struct.pack_into("<I", blob, at + size_at, declared)
            at = blob.find(signature, at + 4)
    return bytes(blob)


def test_a_zip_declaring_gigabytes_is_refused_before_anything_is_unpacked(download, monkeypatch):
    bomb = _declaring(download, export.MODEL_FILE, 3 * 2**30)
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:  # the test's zip does declare 3 GB
        assert zf.getinfo(export.MODEL_FILE).file_size == 3 * 2**30
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    with pytest.raises(ModelImportError, match=r"bomb.zip declares \d+ MB of unpacked files; at most 200 MB"):
        load_archive(bomb, "bomb.zip")
    assert not opened


def test_a_member_that_inflates_past_its_cap_is_cut_off_while_streaming(download):
    huge = b"{" + b" " * (4 * 2**20) + b"}"  # 4 MB of spaces deflate to a few KB; config.json's cap is 1 MB
    with pytest.raises(ModelImportError, match="m.zip: config.json inflates to more than 1 MB"):
        load_archive(_edited(download, config=huge), "m.zip")
    lying = _declaring(_edited(download, config=huge), export.CONFIG_FILE, 10)  # says 10 bytes
    with pytest.raises(ModelImportError, match="m.zip: cannot read file config.json"):
        load_archive(lying, "m.zip")


def test_an_upload_larger_than_the_cap_is_refused_unread(download, monkeypatch):
    monkeypatch.setattr(model_import, "MAX_ARCHIVE_BYTES", len(download) - 1)
    with pytest.raises(ModelImportError, match="big.zip is larger than"):
        load_archive(download, "big.zip")


@pytest.mark.parametrize(
    "member", ["../evil", "run/../../evil", "/etc/evil", "C:/evil", "run\\..\\evil", "a/../../b"]
)
def test_names_that_could_escape_a_folder_are_refused(download, member):
    raw = _zip([*_members(download).items(), (member, b"x")])
    with pytest.raises(ModelImportError, match=f"m.zip: refused the entry {member!r}".replace("\\", "\\\\")):
        load_archive(raw, "m.zip")


def test_files_in_a_sub_folder_and_twice_named_files_are_refused(download):
    nested = _zip([(f"run/{n}", b) for n, b in _members(download).items()] + [("run/sub/x.png", b"")])
    with pytest.raises(ModelImportError, match="run/sub/x.png is inside a sub-folder"):
        load_archive(nested, "m.zip")
    twice = _zip([*_members(download).items(), ("config.json", b"{}")])
    with pytest.raises(ModelImportError, match="m.zip holds config.json twice"):
        load_archive(twice, "m.zip")


def test_a_zip_with_too_many_entries_is_refused_from_its_end_record(download, monkeypatch):
    raw = _zip([*_members(download).items(), *((f"{i}.png", b"") for i in range(60))])
    monkeypatch.setattr(zipfile, "ZipFile", None)  # never reached: the end record is read first
    with pytest.raises(ModelImportError, match="m.zip: the zip lists 67 entries .* at most 64 entries"):
        load_archive(raw, "m.zip")


def test_a_model_over_the_memory_budget_is_refused_before_its_weights_are_read(download, monkeypatch):
    monkeypatch.setenv("SAE_RUN_MEMORY_MB", "0.001")
    with pytest.raises(ModelImportError, match="more than the memory budget of 0.001 MB"):
        load_archive(download, "m.zip")


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ModelImportError, match="does not exist; give a model folder or a model .zip"):
        load_model_path(tmp_path / "nowhere.zip")


# ----- the CLI reads zips too -----------------------------------------------------------------------------
def test_sae_encode_gives_the_same_codes_from_the_zip_as_from_the_folder(download, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    for name, body in _members(download).items():
        (folder / name).write_bytes(body)
    (tmp_path / "run.zip").write_bytes(download)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((9, 64), dtype=np.float32))
    for model, out in ((folder, "h_folder.npy"), (tmp_path / "run.zip", "h_zip.npy")):
        argv = ["encode", "--model", str(model), "--input", str(tmp_path / "x.npy")]
        assert main([*argv, "--output", str(tmp_path / out)]) == 0
    from_folder, from_zip = np.load(tmp_path / "h_folder.npy"), np.load(tmp_path / "h_zip.npy")
    assert from_zip.shape == (9, 5) and np.array_equal(from_zip, from_folder)

    (tmp_path / "bad.zip").write_bytes(download[:500])
    argv = ["encode", "--model", str(tmp_path / "bad.zip"), "--input", str(tmp_path / "x.npy")]
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "h.npy")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("sae: error: ")
        and err.count("\n") == 1
        and "is not a zip file, or it is cut short" in err
    )


# ----- the Train page -------------------------------------------------------------------------------------
TINY = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}


@pytest.fixture
def train_page(monkeypatch):
    pin_navigation_mode(monkeypatch)
    made = []
    yield lambda: open_train_page(TINY, 60, made)
    for at in made:
        stop_jobs(at)


def _saved_zip(cfg: RunConfig, steps: int) -> tuple[bytes, torch.nn.Module]:
    torch.manual_seed(7)
    model = build(cfg.model, 64, (8, 8))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return export.zip_bytes(model, cfg, {"steps": steps}, image_shape=(8, 8)), model


def _import(at, name: str, raw: bytes) -> None:
    at.file_uploader(key="model_zip").set_value((name, raw, "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]


def test_importing_a_zip_on_train_makes_it_the_run_at_its_step_and_keeps_the_old_one(train_page):
    at = train_page()
    at.button(key="step").click().run()
    old = at.session_state["job"]
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 3, "rho": 0.2, "steps": 500})
    raw, model = _saved_zip(cfg, steps=123)

    _import(at, "mine.zip", raw)

    job = at.session_state["job"]
    assert job is not old and at.session_state["previous_job"] is old
    assert job.step_count == 123 and job.config.model.hidden == 3 and job.config.model.rho == 0.2
    assert _same_weights(job.trainer.model, model)
    assert at.number_input(key="hidden").value == 3  # the sidebar shows the imported settings
    notices = " ".join(e.value for e in at.info)
    assert "Opened imported `mine.zip`" in notices and "from step 123" in notices
    assert "step 123" in at.get("progress")[0].proto.text
    at.run()  # the uploader still holds the file: it is not imported again
    assert at.session_state["job"] is job and at.session_state["previous_job"] is old
    at.button(key="step").click().run()
    assert job.step_count == 124  # it trains on from there
    from pages import runs_store  # kept as it came, on this browser's Runs page at once

    kept = [r for r in runs_store.store().list_runs(None) if r.status == "imported"]
    assert len(kept) == 1 and kept[0].steps == 123, kept


def test_a_bad_zip_on_train_shows_why_and_keeps_the_run(train_page):
    at = train_page()
    at.button(key="step").click().run()
    old = at.session_state["job"]

    _import(at, "bad.zip", b"PK\x03\x04 cut short")

    assert at.session_state["job"] is old and old.step_count == 1
    errors = " ".join(e.value for e in at.error)
    assert "Not imported:" in errors and "bad.zip is not a zip file, or it is cut short" in errors

    cfg = RunConfig.from_flat({"dataset": "upload", "upload": "0" * 32 + ".npy", "hidden": 3})
    _import(at, "theirs.zip", _saved_zip(cfg, steps=5)[0])
    assert at.session_state["job"] is old
    errors = " ".join(e.value for e in at.error)
    assert "theirs.zip was trained on an uploaded data file, which a model zip does not hold" in errors
    assert "upload images of 8×8 pixels" in errors
