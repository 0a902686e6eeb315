"""Saving and loading models: exact round trips, no unpickling, one-line errors."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.models import build
from sae_core.store import export


def _trained_like_model(cfg: RunConfig, n_inputs: int = 64) -> torch.nn.Module:
    torch.manual_seed(3)
    model = build(cfg.model, n_inputs, (8, 8))
    with torch.no_grad():  # non-trivial biases too, so a round trip that dropped them would show
        for p in model.parameters():
            p.normal_()
    return model


@pytest.fixture
def cfg() -> RunConfig:
    return RunConfig().replace(dataset="bars", hidden=6, k=3, rho=0.1, beta=2.0, steps=77, seed=5)


def test_round_trip_gives_identical_weights_outputs_and_config(tmp_path, cfg):
    model = _trained_like_model(cfg)
    export.save(model, cfg, tmp_path, {"recon_error": 1.25}, image_shape=(8, 8))

    loaded, loaded_cfg, shape = export.load(tmp_path)

    assert loaded_cfg == cfg
    assert shape == (8, 8)
    original = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    x = torch.rand(11, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded(x).recon, model(x).recon)
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert export.load_metrics(tmp_path) == {"recon_error": 1.25}


def test_saved_files_use_the_documented_names_and_shapes(tmp_path, cfg):
    from safetensors.torch import load_file

    export.save(_trained_like_model(cfg), cfg, tmp_path, image_shape=(8, 8))

    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert {k: list(v.shape) for k, v in tensors.items()} == {
        "encoder.weight": [6, 64],
        "encoder.bias": [6],
        "decoder.weight": [64, 6],
        "decoder.bias": [64],
    }
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["shape"] == {"n_inputs": 64, "image_shape": [8, 8]}
    assert doc["model"]["hidden"] == 6 and doc["train"]["steps"] == 77
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_the_weights_file_gets_the_same_permissions_as_the_other_files(tmp_path, cfg, umask):
    """Every file of the folder is created 0666 less the umask, model.safetensors included (safetensors'
    own save_file makes it 0600, so a run shared with a group or served to others lost just its weights)."""
    previous = os.umask(umask)
    try:
        export.save(_trained_like_model(cfg), cfg, tmp_path, {"recon_error": 1.0}, image_shape=(8, 8))
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("model.safetensors", "config.json", "metrics.json"), 0o666 & ~umask)


def test_topk_model_round_trips_with_its_k(tmp_path, cfg):
    topk = cfg.replace(penalty="topk", k=2)
    model = _trained_like_model(topk)
    export.save(model, topk, tmp_path, image_shape=(8, 8))
    loaded, _, _ = export.load(tmp_path)
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(1))
    codes = loaded.encode(x)
    assert ((codes != 0).sum(dim=1) == 2).all()
    assert torch.equal(codes, model.encode(x))


def test_image_shape_defaults_to_a_square(tmp_path, cfg):
    export.save(_trained_like_model(cfg), cfg, tmp_path)
    assert export.load(tmp_path)[2] == (8, 8)
    assert export.guess_image_shape(10) == (1, 10)


def test_loading_a_pickle_named_safetensors_is_refused_without_running_it(tmp_path, cfg):
    class Payload:
        def __init__(self, path):
            self.path = str(path)

        def __reduce__(self):
            return (os.mkdir, (self.path,))

    # The payload is live: unpickling it does run os.mkdir.
    pickle.loads(pickle.dumps(Payload(tmp_path / "probe")))
    assert (tmp_path / "probe").is_dir()
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(marker))
    export.save(_trained_like_model(cfg), cfg, tmp_path, image_shape=(8, 8))
    (tmp_path / "model.safetensors").write_bytes(payload)

    with pytest.raises(ValueError, match="not a valid safetensors file"):
        export.load(tmp_path)
    assert not marker.exists()


def test_a_torch_save_file_is_refused(tmp_path, cfg):
    model = _trained_like_model(cfg)
    export.save(model, cfg, tmp_path, image_shape=(8, 8))
    torch.save(model.state_dict(), tmp_path / "model.safetensors")  # zip + pickle, torch's own format
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        export.load(tmp_path)


def test_truncated_weights_file_is_a_clear_error(tmp_path, cfg):
    export.save(_trained_like_model(cfg), cfg, tmp_path, image_shape=(8, 8))
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a valid safetensors file") as info:
        export.load(tmp_path)
    assert "\n" not in str(info.value)


def test_weights_that_do_not_fit_the_config_are_a_clear_error(tmp_path, cfg):
    export.save(_trained_like_model(cfg), cfg, tmp_path, image_shape=(8, 8))
    doc = json.loads((tmp_path / "config.json").read_text())
    doc["model"]["hidden"] = 7
    (tmp_path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"encoder\.weight has shape \[6, 64\]; the config needs \[7, 64\]"):
        export.load(tmp_path)


def test_missing_folder_and_files_raise_file_not_found(tmp_path, cfg):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.load(tmp_path / "nowhere")
    export.save(_trained_like_model(cfg), cfg, tmp_path, image_shape=(8, 8))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        export.load(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        export.load(tmp_path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda doc: doc.pop("shape"), 'needs "shape"'),
        (lambda doc: doc["shape"].update(n_inputs=65), "does not equal"),
        (lambda doc: doc["model"].update(rho=2.0), "rho must be in"),
        (lambda doc: doc["model"].update(colour="red"), "unknown ModelConfig field"),
    ],
)
def test_bad_config_json_is_a_clear_error(tmp_path, cfg, edit, message):
    export.save(_trained_like_model(cfg), cfg, tmp_path, image_shape=(8, 8))
    doc = json.loads((tmp_path / "config.json").read_text())
    edit(doc)
    (tmp_path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        export.load(tmp_path)


# ----- the app's download --------------------------------------------------------------------------------
def test_the_app_download_holds_pictures_loss_history_and_step_count(tmp_path, tiny_digits):
    import csv
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    from pages.train_views import model_zip
    from sae_core.serve.jobs import TrainingJob

    cfg = RunConfig().replace(hidden=5, steps=100, batch_size=32, device="cpu", seed=2)
    job = TrainingJob(cfg, tiny_digits)
    for _ in range(3):
        job.step_once()
    snap = job.latest()
    with zipfile.ZipFile(io.BytesIO(model_zip(job))) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path)
    assert names == {
        "model.safetensors",
        "config.json",
        "metrics.json",
        "filters.png",
        "reconstructions.png",
        "loss_history.csv",
        "test_loss_history.csv",
    }
    summary = export.load_metrics(tmp_path)
    assert summary["steps"] == 3 and summary["total_steps"] == 100
    assert summary["recon_error"] == snap.metrics["recon_error"]
    assert summary["test_recon_error"] == snap.test_metrics["recon_error"]

    with (tmp_path / "loss_history.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "reconstruction", "sparsity", "weight_decay", "total"]
    assert [int(r[0]) for r in rows[1:]] == [1, 2, 3]
    for j, term in enumerate(rows[0][1:], start=1):
        assert [float(r[j]) for r in rows[1:]] == snap.history[term].tolist()  # exact
    with (tmp_path / "test_loss_history.csv").open() as f:
        test_rows = list(csv.reader(f))
    assert test_rows[0] == ["step", "reconstruction", "total"]
    assert [int(r[0]) for r in test_rows[1:]] == [0, 1, 2, 3]  # the ready snapshot, then each step

    # filters.png: tile 0 is unit 0's weights, normalised and scaled to [-1, 1] -> [0, 255] (UFLDL).
    pixels = np.asarray(Image.open(tmp_path / "filters.png"))[::4, ::4].astype(int)
    w = job.trainer.model.encoder.weight.detach().numpy().astype(np.float64)[0]
    w = w / np.linalg.norm(w)
    expected = np.round((w / np.abs(w).max() + 1) / 2 * 255).reshape(8, 8)
    assert np.abs(pixels[1:9, 1:9] - expected).max() <= 1
    assert Image.open(tmp_path / "reconstructions.png").size == ((10 * 9 + 1) * 4, (2 * 9 + 1) * 4)
    loaded, _, _ = export.load(tmp_path)
    assert torch.equal(loaded.encoder.weight, job.trainer.model.encoder.weight.detach())
    job.stop()


def test_save_png_writes_the_image_enlarged_without_loss(tmp_path):
    """The PNG holds exactly to_uint8 of the image, each pixel a scale × scale block (NaN gaps black)."""
    from PIL import Image

    from sae_core import images

    img = np.array([[-1.0, 0.0], [np.nan, 1.0]])
    images.save_png(img, tmp_path / "a.png", lo=-1, hi=1, scale=3)
    with Image.open(tmp_path / "a.png") as png:
        read = np.asarray(png)
    expected = np.kron(np.array([[0, 128], [0, 255]], dtype=np.uint8), np.ones((3, 3), dtype=np.uint8))
    np.testing.assert_array_equal(read, expected)
