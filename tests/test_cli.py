"""The `sae` command line, run in-process through main([...]) with tiny settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from sae_core.cli.main import main
from sae_core.config.run import FIELD_SECTION
from sae_core.data import datasets as data
from sae_core.models import REGISTRY, VARIANTS, build
from sae_core.penalties.registry import PENALTY_NAMES
from sae_core.store import export
from sae_core.train import gradcheck, metrics

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--hidden", "9", "--steps", "60", "--batch-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One tiny training run shared by the tests that read its files."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--rho", "0.1", "--seed", "4", "--quiet", "--out", str(out)]) == 0
    return out


def test_train_writes_model_config_metrics_and_figures(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert names >= {"model.safetensors", "config.json", "metrics.json", "filters.png", "reconstructions.png"}
    model, cfg, shape = export.load(run_dir)
    assert (cfg.model.hidden, cfg.model.rho, cfg.train.steps, cfg.train.seed, shape) == (
        9,
        0.1,
        60,
        4,
        (8, 8),
    )


def test_metrics_json_matches_an_evaluation_of_the_reloaded_model(run_dir):
    summary = json.loads((run_dir / "metrics.json").read_text())
    model, cfg, _ = export.load(run_dir)
    train = data.load(cfg.data).train

    expected = metrics.evaluate(model, train)
    for key in ("recon_error", "mse", "fve", "mean_activation", "l0", "dead_fraction"):
        assert summary[key] == pytest.approx(expected[key], abs=1e-5), key
    # recon_error against the objective's formula written out here: ½·mean over samples of Σ (x̂ − x)².
    with torch.no_grad():
        recon = model(train).recon
    assert summary["recon_error"] == pytest.approx(
        float(0.5 * ((recon - train) ** 2).sum(1).mean()), abs=1e-5
    )
    assert summary["steps"] == 60 and summary["device"] == "cpu" and summary["status"] == "done"
    assert summary["seconds"] > 0 and summary["samples_per_second"] > 0
    terms = ("loss_reconstruction", "loss_sparsity", "loss_weight_decay")
    assert summary["loss_total"] == pytest.approx(sum(summary[t] for t in terms), rel=1e-5)


def _unscaled(path: Path, scale: int = 4) -> np.ndarray:
    """The PNG's pixels with the nearest-neighbour enlargement undone."""
    pixels = np.asarray(Image.open(path))
    return pixels[::scale, ::scale]


def test_filters_png_is_the_ufldl_normalised_grid(run_dir):
    image = Image.open(run_dir / "filters.png")
    assert image.mode == "L"
    assert image.size == ((3 * 9 + 1) * 4, (3 * 9 + 1) * 4)  # 9 units -> 3×3 tiles of 8×8, 1-pixel gaps
    pixels = _unscaled(run_dir / "filters.png")
    w = load_file(str(run_dir / "model.safetensors"))["encoder.weight"].numpy().astype(np.float64)
    for unit in (0, 4, 8):
        r, c = divmod(unit, 3)
        tile = pixels[1 + 9 * r : 9 + 9 * r, 1 + 9 * c : 9 + 9 * c].astype(int)
        unit_w = w[unit] / np.linalg.norm(w[unit])
        unit_w /= np.abs(unit_w).max()  # each tile spans [-1, 1] -> [0, 255]
        expected = np.round((unit_w.reshape(8, 8) + 1) / 2 * 255)
        assert np.abs(tile - expected).max() <= 1, unit


def test_reconstructions_png_shows_inputs_above_reconstructions(run_dir):
    image = Image.open(run_dir / "reconstructions.png")
    assert image.size == ((10 * 9 + 1) * 4, (2 * 9 + 1) * 4)  # 10 columns, 2 rows of 8×8 tiles
    pixels = _unscaled(run_dir / "reconstructions.png").astype(int)
    model, cfg, _ = export.load(run_dir)
    shown = data.load(cfg.data).test[:10]
    with torch.no_grad():
        recon = model(shown).recon
    for col in (0, 9):
        top = pixels[1:9, 1 + 9 * col : 9 + 9 * col]
        bottom = pixels[10:18, 1 + 9 * col : 9 + 9 * col]
        assert np.abs(top - np.round(shown[col].numpy().reshape(8, 8) * 255)).max() <= 1
        assert np.abs(bottom - np.round(recon[col].numpy().reshape(8, 8) * 255)).max() <= 1


def test_same_seed_gives_identical_weights_and_progress_goes_to_stderr(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["train", *TINY, "--seed", "7", "--out", str(tmp_path / name)]) == 0
    captured = capsys.readouterr()
    assert "step 60/60" in captured.err and "samples/s" in captured.err
    assert "recon_error=" in captured.out
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(["train", *TINY, "--seed", "8", "--quiet", "--out", str(tmp_path / "c")]) == 0
    c = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert not torch.equal(a["encoder.weight"], c["encoder.weight"])


def test_diverged_run_saves_restored_weights_and_exits_3(tmp_path, capsys):
    out = tmp_path / "div"
    code = main(["train", "--dataset", "bars", "--hidden", "5", "--steps", "30", "--optimizer", "sgd"]
                + ["--lr", "1e30", "--device", "cpu", "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 3
    assert "diverged" in capsys.readouterr().err
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["status"] == "diverged"
    model, cfg, _ = export.load(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # Restored to step 0: the seeded initial weights.
    torch.manual_seed(0)
    initial = build(model_cfg := cfg.model, 64, (8, 8))
    assert model_cfg.hidden == 5
    assert torch.equal(model.encoder.weight, initial.encoder.weight)


@pytest.mark.parametrize("dataset, lr", [("bars", "1e30"), ("digits", "1e38")])
def test_an_lbfgs_step_past_floats_range_is_a_divergence_not_a_traceback(tmp_path, capsys, dataset, lr):
    # L-BFGS's line search steps t·lr past float32's range: torch raises "value cannot be converted to
    # type float without overflow" from inside the optimizer. The run must end as any divergence does.
    out = tmp_path / "lbfgs"
    flags = ["--hidden", "16", "--optimizer", "lbfgs", "--lr", lr, "--batch-size", "0", "--steps", "50"]
    code = main(["train", "--dataset", dataset, *flags, "--device", "cpu", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3
    assert "Training diverged at step 1" in err and "smaller learning rate" in err
    assert json.loads((out / "metrics.json").read_text())["status"] == "diverged"
    model, _, _ = export.load(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_train_help_has_a_flag_for_every_config_field(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    for name in FIELD_SECTION:
        assert "--" + name.replace("_", "-") in text, name
    assert "{" + ",".join(PENALTY_NAMES) + "}" in text


# ----- encode -------------------------------------------------------------------------------------


def test_encode_writes_the_models_codes(run_dir, tmp_path, capsys):
    model, cfg, _ = export.load(run_dir)
    x = data.load(cfg.data).test[:25]
    np.save(tmp_path / "x.npy", x.numpy())
    assert main(["encode", "--model", str(run_dir), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "h.npy")]) == 0  # fmt: skip
    codes = np.load(tmp_path / "h.npy")
    assert codes.shape == (25, 9) and codes.dtype == np.float32
    with torch.no_grad():
        assert np.array_equal(codes, model.encode(x).numpy())


def test_encode_accepts_uint8_images(run_dir, tmp_path):
    model, _, _ = export.load(run_dir)
    images = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    args = [
        "encode",
        "--model",
        str(run_dir),
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "h"),
    ]
    assert main(args) == 0
    expected = model.encode(torch.from_numpy(images.reshape(6, 64) / 255.0).float()).detach().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "h.npy"), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape, message", [((4, 63), r"expects \[N, 64\]"), ((4, 7, 9), "7×9 images")])
def test_encode_rejects_inputs_of_the_wrong_size(run_dir, tmp_path, capsys, shape, message):
    np.save(tmp_path / "x.npy", np.zeros(shape, dtype=np.float32))
    args = [
        "encode",
        "--model",
        str(run_dir),
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "h"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.startswith("sae: error:")
    assert not (tmp_path / "h.npy").exists()


# ----- gradcheck ----------------------------------------------------------------------------------


GRADCHECK_ROW = r"^(\S+)\s+(" + "|".join(PENALTY_NAMES) + r")\s+(\S+)\s+(\S+)$"


@pytest.mark.slow
def test_gradcheck_passes_and_prints_small_errors_for_every_variant_and_penalty(capsys):
    assert main(["gradcheck"]) == 0
    rows = re.findall(GRADCHECK_ROW, capsys.readouterr().out, re.MULTILINE)
    assert all(0 <= float(r[3]) < 1e-7 for r in rows)
    checked = {(r[0], r[1]) for r in rows}
    expected = set()
    for name, spec in REGISTRY.items():
        expected |= {(name, p) for p in ((spec.fixed_penalty,) if spec.fixed_penalty else spec.penalties)}
    assert checked == expected
    assert ("sparse", "topk") in checked and ("contractive", "topk") not in checked  # it refuses top-k
    # every parameter tensor of each model has its row
    for variant, penalty in checked:
        model, _, _ = gradcheck.tiny_problem(penalty, variant=variant)
        names = {r[2] for r in rows if (r[0], r[1]) == (variant, penalty)}
        assert names == {n for n, _ in model.named_parameters()}


def test_gradcheck_variant_flag_checks_that_variant_only(capsys):
    assert main(["gradcheck", "--variant", "conv"]) == 0
    rows = re.findall(GRADCHECK_ROW, capsys.readouterr().out, re.MULTILINE)
    assert {r[0] for r in rows} == {"conv"} and {r[1] for r in rows} == set(PENALTY_NAMES)
    assert main(["gradcheck", "--variant", "nonsense"]) == 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck_of_each_variant_catches_a_gradient_ten_percent_off(variant):
    """A hook scales one tensor's autograd gradient by 1.1: the check must flag that tensor and only it."""
    penalty = gradcheck.penalties_of(variant)[0]
    model, x, cfg = gradcheck.tiny_problem(penalty, variant=variant)
    assert max(gradcheck.check_gradients(model, x, cfg).values()) < gradcheck.TOLERANCE
    name, first = next(iter(model.named_parameters()))
    first.register_hook(lambda g: g * 1.1)
    errors = gradcheck.check_gradients(model, x, cfg)
    assert errors[name] > 1e-3  # ‖0.1·g‖ / ‖2.1·g‖ ≈ 0.048
    assert all(err < gradcheck.TOLERANCE for n, err in errors.items() if n != name)


class _SigmoidWithWrongBackward(torch.autograd.Function):
    """σ forward, but a backward 10% too large: the kind of bug a gradient check must catch."""

    @staticmethod
    def forward(ctx, z):
        s = torch.sigmoid(z)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s) * 1.1


def test_gradient_checker_catches_a_wrong_backward():
    model, x, cfg = gradcheck.tiny_problem("kl")
    assert max(gradcheck.check_gradients(model, x, cfg).values()) < 1e-7
    model.code_layer._act = _SigmoidWithWrongBackward.apply

    errors = gradcheck.check_gradients(model, x, cfg)

    assert errors["encoder.weight"] > 1e-3 and errors["encoder.bias"] > 1e-3
    assert errors["decoder.weight"] < 1e-7  # the decoder's gradient does not pass through the bad backward


def test_numeric_grad_matches_a_known_derivative():
    p = torch.tensor([0.3, -1.2], dtype=torch.float64)
    (g,) = gradcheck.numeric_grad(lambda: (p**3).sum() + p[0] * p[1], [p], eps=1e-6)
    expected = torch.tensor([3 * 0.3**2 - 1.2, 3 * 1.2**2 + 0.3], dtype=torch.float64)
    assert torch.allclose(g, expected, atol=1e-8)
    assert torch.equal(p, torch.tensor([0.3, -1.2], dtype=torch.float64))  # restored after perturbing


@pytest.mark.slow
def test_gradcheck_exits_nonzero_when_the_tolerance_is_not_met(capsys):
    assert main(["gradcheck", "--tol", "1e-15"]) == 1
    assert "FAILED" in capsys.readouterr().out


# ----- datasets and errors ------------------------------------------------------------------------


def test_datasets_lists_every_dataset_with_its_availability(tmp_path, capsys):
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert set(by_name) == set(data.DATASETS)
    assert re.match(r"digits\s+8×8\s+yes", by_name["digits"])
    assert re.match(r"mnist\s+28×28\s+no\s", by_name["mnist"]) and str(tmp_path) in by_name["mnist"]
    assert re.match(r"upload\s+any\s+yes", by_name["upload"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--rho", "1.5"], "rho must be in (0, 1), got 1.5"),
        (["train", "--hidden", "many"], "hidden must be of type int, got 'many'"),
        (["train", "--penalty", "l2"], f"penalty must be one of {', '.join(PENALTY_NAMES)}, got 'l2'"),
        (["train", "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--dataset", "mnist", "--data-dir", "{tmp}"], "mnist is not available"),
        (["train", "--dataset", "upload", "--upload", "{tmp}/bad.npy"], "bad.npy"),
        (["train", "--steps", "-1"], "steps must be >= 0 (0 = until paused), got -1"),
        (["train", "--steps", "0"], "--steps 0 means 'until paused', which only the app can do"),
        (["encode", "--model", "{tmp}/none", "--input", "x.npy", "--output", "h.npy"], "does not exist"),
        (["encode", "--model", "{tmp}"], "required: --input, --output"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("SAE_OFFLINE", "1")
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae: error: "), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_a_clear_error(capsys):
    assert main(["train", *TINY[:-2], "--device", "cuda"]) == 2
    assert capsys.readouterr().err.startswith("sae: error: device cuda was asked for but no CUDA GPU")


@pytest.mark.slow
def test_python_dash_m_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "sae_core", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in ("train", "encode", "gradcheck", "datasets"))
