"""Inputs a careless or hostile student can send a shared class server (issue 9, part A): each is refused
with a one-line message naming the input, before it costs memory.

Sizes in the config, the per-run memory budget, uploads that lie about their size, the loss history of a
long run, server paths and Markdown in links, and the CLI's error lines. All offline and seeded.
"""

from __future__ import annotations

import gc
import io
import json
import re
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_helpers import open_train_page, pin_navigation_mode, stop_jobs
from PIL import Image
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest

from sae_core.cli.main import main
from sae_core.config.run import RunConfig
from sae_core.config.sections import DECLARED, SIZE_LIMITS
from sae_core.data import datasets as data
from sae_core.data import uploads
from sae_core.data.datasets import DataConfig
from sae_core.data.uploads import UploadError, load_upload_bytes
from sae_core.serve.upload_store import SessionUploads
from sae_core.store import model_import
from sae_core.sweep.spec import SweepSpec
from sae_core.train import budget
from sae_core.train.history import LossHistory
from sae_core.train.trainer import Trainer

TINY = ["--dataset", "digits", "--hidden", "9", "--steps", "30", "--batch-size", "64", "--device", "cpu"]
EVIL = "[click](http://evil)"


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# ----- every size in the config is bounded, in one table ---------------------------------------------------
def _over(field: str) -> object:
    limit = SIZE_LIMITS[field]
    if field == "layers":
        return f"{limit + 1}"
    return limit * 10 if isinstance(limit, float) or field == "epochs" else limit + 1


@pytest.mark.parametrize("field", sorted(SIZE_LIMITS))
def test_every_size_field_is_bounded_and_the_error_names_field_and_limit(field):
    with pytest.raises(ValueError) as info:
        RunConfig.from_flat({field: _over(field)})
    message = str(info.value)
    assert message.startswith(f"{field} must be"), message
    assert str(SIZE_LIMITS[field]) in message, message
    at_limit = f"{SIZE_LIMITS[field]}" if field == "layers" else SIZE_LIMITS[field]
    # the bound itself is allowed (with what it must stay below: superposition's n_dims < n_features)
    companions = {"n_dims": {"n_features": SIZE_LIMITS["n_features"]}}.get(field, {})
    assert RunConfig.from_flat({field: at_limit, **companions}).flat()[field] is not None


def test_too_many_layers_are_refused_with_a_short_message():
    with pytest.raises(
        ValueError, match=rf"^layers must be at most {DECLARED['layers'].max_items} sizes"
    ) as info:
        RunConfig.from_flat({"layers": ",".join(["4"] * 10_000)})
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("field", ["seed", "data_seed"])
@pytest.mark.parametrize("value", [2**70, -1])
def test_a_seed_out_of_range_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be an integer in \[0, 2\*\*63 - 1\], got {value}"):
        RunConfig.from_flat({field: str(value)})


@pytest.mark.parametrize("value", ["inf", "nan", "1e300"])
def test_epochs_must_be_finite_and_bounded(value):
    with pytest.raises(ValueError, match="^epochs must be"):
        RunConfig.from_flat({"epochs": value})


def test_an_unknown_dataset_is_refused_by_the_config_itself():
    with pytest.raises(ValueError, match="unknown dataset '\\[click\\]"):
        DataConfig(dataset=EVIL)


# ----- the per-run memory budget ----------------------------------------------------------------------------
def test_parameter_bytes_are_counted_without_allocating_and_match_the_formula():
    """Sparse autoencoder: W₁ [h, D], b₁ [h], W₂ [D, h], b₂ [D], float32. Sizes far beyond the budget are
    measured on the meta device, so this costs nothing."""
    for hidden, shape in ((25, (8, 8)), (16384, (256, 256))):
        d = shape[0] * shape[1]
        cfg = RunConfig().replace(hidden=hidden)
        assert budget.model_bytes(cfg.model, shape) == 4 * (2 * hidden * d + hidden + d)


def test_the_estimate_covers_the_data_a_small_run_really_holds():
    cfg = RunConfig().replace(dataset="bars", n_bars=3000, hidden=16, batch_size=100)
    need = budget.estimate(cfg)
    dataset = data.load(cfg.data)
    held = sum(t.numel() * t.element_size() for t in (dataset.train, dataset.test))
    assert held <= need.data
    trainer = Trainer(cfg, dataset, device="cpu")
    weights = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    assert need.model >= 2 * weights and need.optimizer >= 2 * weights  # Adam: two moments


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # 2·16384·4096 weights: the model and Adam's state alone are over; only fewer units help.
        ({"dataset": "natural-patches", "patch_size": "64", "hidden": "16384"}, {"hidden"}),
        # A full batch of 900000 images: fewer images or smaller batches help, fewer units cannot.
        (
            {"dataset": "bars", "n_bars": "1000000", "hidden": "16", "batch_size": "0"},
            {"n_bars", "batch_size"},
        ),
    ],
)
def test_a_run_over_the_budget_is_refused_before_any_data_is_made_and_says_what_fits(
    monkeypatch, capsys, flags, expected
):
    def no_load(cfg):
        raise AssertionError("data.load was called for a run over the budget")

    monkeypatch.setattr(data, "load", no_load)
    argv = [a for k, v in flags.items() for a in ("--" + k.replace("_", "-"), v)]
    assert main(["train", *argv, "--steps", "1", "--device", "cpu"]) == 2
    line = _error_line(capsys)
    assert "more than the per-run memory budget of 2048 MB (set by SAE_RUN_MEMORY_MB)" in line
    fits = dict(re.findall(r"(\w+) ≤ (\d+)", line))
    assert set(fits) == expected, line
    cfg = RunConfig.from_flat(flags)
    limit = budget.DEFAULT_RUN_MEMORY_MB * 2**20
    for name, value in fits.items():  # each suggestion really fits, and is not far below what would
        assert budget.estimate(cfg.replace(**{name: int(value)})).total <= limit
        bigger = min(int(int(value) * 1.5), SIZE_LIMITS[name])
        assert budget.estimate(cfg.replace(**{name: bigger})).total > limit


def test_the_budget_comes_from_the_environment_or_the_flag(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(budget.ENV_VAR, "1")
    assert main(["train", *TINY, "--quiet"]) == 2
    assert "budget of 1 MB (set by SAE_RUN_MEMORY_MB)" in _error_line(capsys)
    assert main(["train", *TINY, "--quiet", "--memory-mb", "512"]) == 0
    monkeypatch.setenv(budget.ENV_VAR, "lots")
    assert main(["train", *TINY, "--quiet"]) == 2
    assert "SAE_RUN_MEMORY_MB must be a positive number of MB, got 'lots'" in _error_line(capsys)


# ----- uploads: declared sizes are checked before they are read ---------------------------------------------
def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def _png(width: int, height: int) -> bytes:
    """A PNG whose header says width × height: 8-bit grey, with a tiny (wrong-sized) IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _real_png(side: int = 4, value: int = 0) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((side, side), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_npy_header_claiming_a_trillion_values_is_refused_before_reading():
    payload = _npy_header((1_000_000, 1_000_000)) + b"\0" * 64
    with pytest.raises(UploadError, match=r"huge\.npy: shape \[1000000, 1000000\] .* 1000000000000 values"):
        load_upload_bytes(payload, "huge.npy")
    npz = _zip({"x.npy": payload})  # the same inside an .npz: refused from the member's header
    with pytest.raises(UploadError, match=r"huge\.npz: shape \[1000000, 1000000\]"):
        load_upload_bytes(npz, "huge.npz")


def test_npy_whose_data_is_shorter_than_its_header_is_a_clear_error():
    payload = _npy_header((100, 64)) + b"\0" * 100
    with pytest.raises(UploadError, match="short.npy: not a valid .npy file .*6400 values"):
        load_upload_bytes(payload, "short.npy")


def test_npz_member_that_is_not_a_npy_is_a_clear_error():
    with pytest.raises(UploadError, match=r"bad\.npz: member x\.npy is not a \.npy array"):
        load_upload_bytes(_zip({"x.npy": b"hello, not an array"}), "bad.npz")
    with pytest.raises(UploadError, match=r"notes\.npz: .* holds no \.npy arrays \(found notes\.txt\)"):
        load_upload_bytes(_zip({"notes.txt": b"just text"}), "notes.npz")
    array = io.BytesIO()
    np.save(array, np.full((3, 4), 0.5))
    got, _ = load_upload_bytes(_zip({"notes.txt": b"text", "x.npy": array.getvalue()}), "ok.npz")
    assert got.shape == (3, 4)  # the text member is skipped, never read


def test_a_png_decompression_bomb_is_refused_with_a_message():
    with pytest.raises(UploadError, match=r"bomb\.zip: big\.png is refused: .*decompression bomb"):
        load_upload_bytes(_zip({"big.png": _png(30000, 30000)}), "bomb.zip")
    with pytest.raises(UploadError, match=r"wide\.png is 9000×9000; images may have at most 65536 pixels"):
        load_upload_bytes(_zip({"wide.png": _png(9000, 9000)}), "wide.zip")


def test_the_number_of_images_is_capped_before_any_is_decoded(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_IMAGES", 3)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    blob = _zip({f"{i}.png": _real_png() for i in range(5)})
    with pytest.raises(UploadError, match="many.zip: the zip holds 5 images; at most 3 allowed"):
        load_upload_bytes(blob, "many.zip")
    assert opened == []


def test_images_times_pixels_are_capped_after_the_first_header(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_ELEMENTS", 50)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    with pytest.raises(UploadError, match="5 images of 4×4 are 80 values; at most 50 allowed"):
        load_upload_bytes(_zip({f"{i}.png": _real_png() for i in range(5)}), "pixels.zip")
    assert len(opened) == 1


def test_a_zip_directory_listing_more_entries_than_allowed_is_refused_before_parsing(monkeypatch):
    blob = _zip({f"{i}.png": b"" for i in range(11)}, zipfile.ZIP_STORED)
    monkeypatch.setattr(uploads, "MAX_ZIP_ENTRIES", 10)
    monkeypatch.setattr(zipfile, "ZipFile", None)  # never reached: the end record is read first
    with pytest.raises(UploadError, match="lists 11 entries .* at most 10 entries"):
        load_upload_bytes(blob, "long.zip")


def _lying_zip(real: bytes, declared: int) -> bytes:
    """A zip of one member `a.png` whose directory (local and central headers) says it inflates to
    `declared` bytes, while its deflate stream really inflates to len(real)."""
    blob = bytearray(_zip({"a.png": real}))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = blob.find(signature)
        struct.pack_into("<I", blob, at + offset, declared)
    return bytes(blob)


def _peak_traced(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    except (UploadError, zipfile.BadZipFile):  # the peak before the refusal is what counts
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_a_zip_that_lies_about_sizes_never_inflates_much_more_than_the_caps():
    real = _real_png() + b"\0" * (60 * 2**20)  # 60 MB of zeros deflate to about 60 KB
    blob = _lying_zip(real, declared=100)
    with pytest.raises(UploadError, match="lying.zip: cannot read image a.png"):
        load_upload_bytes(blob, "lying.zip")
    assert _peak_traced(lambda: load_upload_bytes(blob, "lying.zip")) < 4 * 2**20

    def naive() -> None:  # what reading a member whole does: one inflate call of everything
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            archive.read("a.png")

    assert _peak_traced(naive) > 50 * 2**20  # the test can tell the difference

    honest = _zip({"a.png": real})  # declares its 60 MB: cut off at MAX_IMAGE_BYTES while streaming
    with pytest.raises(UploadError, match="a.png inflates to more than 8 MB"):
        load_upload_bytes(honest, "big.zip")
    assert _peak_traced(lambda: load_upload_bytes(honest, "big.zip")) < 3 * uploads.MAX_IMAGE_BYTES


def test_uploads_are_converted_to_float32_once_after_their_size_is_checked(monkeypatch):
    x = np.random.default_rng(0).normal(size=(1000, 1000))  # float64 needing min-max scaling: 8 MB
    payload = io.BytesIO()
    np.save(payload, x)
    raw = payload.getvalue()
    got = {}
    peak = _peak_traced(lambda: got.setdefault("x", load_upload_bytes(raw, "x.npy")))
    assert got["x"][0].dtype == torch.float32
    np.testing.assert_allclose(got["x"][0].numpy(), (x - x.min()) / (x.max() - x.min()), rtol=1e-5, atol=1e-6)
    assert peak < 6 * 2**20  # one float32 copy (4 MB); a float64 copy alone would be 8 MB
    monkeypatch.setattr(uploads, "MAX_ELEMENTS", 999_999)
    with pytest.raises(UploadError, match="1000000 values; at most 999999 values"):
        load_upload_bytes(raw, "x.npy")


# ----- uploads are the session's, by id ---------------------------------------------------------------------
def _npy(array: np.ndarray, **kwargs) -> bytes:
    out = io.BytesIO()
    np.save(out, array, **kwargs)
    return out.getvalue()


class _Payload:
    """Unpickling this runs code: it writes the file `path` (what a hostile pickle would do instead)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('pwned')",))


def _hostile_uploads(tmp_path: Path) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, what the message must say) of uploads a hostile or careless student may send."""
    good = _npy(np.full((20, 16), 0.5, dtype=np.float32))
    npz = io.BytesIO()
    np.savez_compressed(npz, x=np.full((20, 16), 0.5))
    pickled = _npy(np.array([_Payload(tmp_path / "npy-ran")] * 3, dtype=object), allow_pickle=True)
    pickled_npz = _zip(
        {"x.npy": _npy(np.array([_Payload(tmp_path / "npz-ran")], dtype=object), allow_pickle=True)}
    )
    images = _zip({f"{i}.png": _real_png() for i in range(3)})
    return [
        ("complex.npy", _npy(np.ones((20, 16), dtype=np.complex64)), "dtype complex64; a numeric array"),
        ("text.npy", _npy(np.array([["a"] * 16] * 20)), "a numeric array is needed"),
        ("dates.npy", _npy(np.zeros((20, 16), dtype="datetime64[s]")), "a numeric array is needed"),
        ("record.npy", _npy(np.zeros(20, dtype=[("a", "f4"), ("b", "f4")])), "a numeric array is needed"),
        ("pickle.npy", pickled, "object arrays are not supported"),
        ("pickle.npz", pickled_npz, "object arrays are not supported"),
        ("nan.npy", _npy(np.where(np.eye(16, dtype=bool), np.nan, 0.5)), "NaN or infinite values"),
        ("inf.npy", _npy(np.full((20, 16), -np.inf)), "NaN or infinite values"),
        ("far.npy", _npy(np.array([[0.0, 1e300], [1.0, 2.0]])), "values beyond ±3.4e+38"),
        ("flat.npy", _npy(np.zeros(16, dtype=np.float32)), "expected [N, D], [N, H, W] or [N, H, W, C]"),
        ("deep.npy", _npy(np.zeros((2, 2, 2, 2, 2), dtype=np.float32)), "expected [N, D]"),
        ("none.npy", _npy(np.zeros((0, 16), dtype=np.float32)), "the array is empty"),
        ("one.npy", _npy(np.zeros((1, 16), dtype=np.float32)), "need at least 2 samples"),
        ("wide.npy", _npy(np.zeros((2, 300 * 300), dtype=np.uint8)), "at most 65536 allowed"),
        ("huge.npy", _npy_header((10**9, 784)) + b"\0" * 64, "at most 50000000 values"),
        ("cut.npy", good[: len(good) // 2], "not a valid .npy file"),
        ("cut-header.npy", good[:40], "not a valid .npy file"),
        ("cut.npz", npz.getvalue()[:200], "not a valid .npz archive"),
        ("cut.zip", images[: len(images) // 2], "not a valid .zip archive"),
        ("empty.npy", b"", "the file is empty"),
        ("renamed.npy", images, "not a valid .npy file"),
    ]


def test_hostile_and_corrupt_uploads_are_one_line_naming_the_file_and_run_no_code(tmp_path):
    for name, payload, message in _hostile_uploads(tmp_path):
        with pytest.raises(UploadError) as err:
            load_upload_bytes(payload, name)
        text = str(err.value)
        assert text.startswith(f"{name}: ") and message in text and "\n" not in text, (name, text)
    assert not (tmp_path / "npy-ran").exists() and not (tmp_path / "npz-ran").exists()  # never unpickled


def test_data_spanning_float32s_whole_range_scales_into_the_unit_interval():
    big = float(np.finfo(np.float32).max)
    x = np.array([[-big, 0.0], [big, big / 2]], dtype=np.float32)
    got, _ = load_upload_bytes(_npy(x), "wide-range.npy")
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.5], [1.0, 0.75]]))


def test_a_hostile_upload_through_the_session_store_leaves_nothing_behind(tmp_path):
    uploads_dir = tmp_path / "uploads"
    store = SessionUploads(folder=uploads_dir)
    for name, payload, _ in _hostile_uploads(tmp_path):
        with pytest.raises(UploadError):
            x, shape = load_upload_bytes(payload, name)
            store.put(payload, name, len(x), shape)  # never reached: refused before it is written
    assert not uploads_dir.exists() or list(uploads_dir.iterdir()) == []


# ----- sweeps: hostile grids are refused before anything is built -------------------------------------------
SWEEP_BASE = {"dataset": "digits", "hidden": 4, "steps": 20, "batch_size": 32, "device": "cpu"}


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"rhos": tuple(0.01 * (i + 1) for i in range(13))}, "rhos may hold at most 12 values"),
        ({"betas": tuple(float(i) for i in range(100))}, "betas may hold at most 12 values"),
        (
            {
                "rhos": tuple(0.01 * (i + 1) for i in range(12)),
                "betas": tuple(float(i) for i in range(12)),
                "axis": "seed",
                "axis_values": tuple(range(8)),
            },
            "the grid has 1152 cells; a sweep may have at most 256",
        ),
        ({"rhos": (float("nan"),)}, "rhos must hold finite numbers"),
        ({"betas": (float("inf"),)}, "betas must hold finite numbers"),
        ({"rhos": (0.0,)}, "rho must be in (0, 1), got 0.0"),
        ({"betas": (-1.0,)}, "beta must be >= 0"),
        ({"rhos": ("0.05; rm -rf /",)}, "rhos must be a list of float values"),
        ({"rhos": (0.05, 0.05)}, "rhos holds a value twice"),
        ({"axis": "hidden", "axis_values": (10**9,)}, "hidden must be <= 16384"),
        ({"axis": "hidden", "axis_values": (0,)}, "hidden must be >= 1"),
        ({"axis": "seed", "axis_values": (-1,)}, "seed must be an integer in [0, 2**63 - 1]"),
        ({"axis": "weight_decay", "axis_values": (float("nan"),)}, "axis_values must hold finite numbers"),
        ({"axis": "__class__", "axis_values": (1,)}, "axis must be one of"),
    ],
)
def test_a_hostile_sweep_grid_is_one_line_naming_the_field(grid, message):
    args = {"rhos": (0.05,), "betas": (3.0,), **grid}
    with pytest.raises(ValueError) as err:
        SweepSpec(RunConfig().replace(**SWEEP_BASE), **args)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_sweep_memory_bomb_is_refused_before_any_cell_is_built(monkeypatch):
    """256 cells of 16,384 units on 28×28 images: tens of GB. Refused from the estimate, which builds the
    model on the meta device only; no Trainer, block or dataset is ever made."""
    from sae_core.sweep import trainer as sweep_trainer

    def no_blocks(*args, **kwargs):
        raise AssertionError("a block was built")

    monkeypatch.setattr(sweep_trainer, "BlockTrainer", no_blocks)
    monkeypatch.setattr(data, "load", lambda cfg: pytest.fail("data was loaded"))
    grid = {
        "rhos": tuple(0.01 * (i + 1) for i in range(8)),
        "betas": tuple(float(i) for i in range(8)),
        "axis": "hidden",
        "axis_values": (4096, 8192, 12288, 16384),
    }
    base = RunConfig().replace(dataset="fashion-mnist", hidden=4, steps=20, device="cpu")
    with pytest.raises(budget.BudgetError):  # once first: what the estimate imports is not the bomb
        SweepSpec(base, **grid)
    tracemalloc.start()
    try:
        with pytest.raises(
            budget.BudgetError, match=r"this sweep of 256 cells would need .* at most \d+ cells"
        ):
            SweepSpec(base, **grid)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak


def test_a_sweep_of_valid_but_hostile_values_ends_with_its_cells_diverged_not_an_exception():
    from sae_core.sweep.trainer import SweepTrainer

    spec = SweepSpec(RunConfig().replace(**{**SWEEP_BASE, "lr": 1e30}), rhos=(0.05,), betas=(0.0, 1e30))
    sweeper = SweepTrainer(spec, data.load(DataConfig(dataset="digits")))
    assert sweeper.advance() == "done"
    cells = sweeper.snapshot().cells
    assert all(c.status == "diverged" and c.message for c in cells), [(c.status, c.message) for c in cells]
    for c in cells:
        assert all(torch.isfinite(v).all() for v in sweeper.cell_state(c.index).values())


def test_a_hostile_sweep_on_the_cli_is_one_line(tmp_path, capsys):
    rc = main(
        [
            "sweep",
            "--rho",
            ",".join(["0.05"] * 3),
            "--beta",
            "nan",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("sae: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_session_uploads_resolve_only_their_own_ids_and_delete_replaced_files(tmp_path):
    store, other = SessionUploads(tmp_path), SessionUploads(tmp_path)
    first = store.put(b"one", "a.npy", 2, (1, 4))
    assert store.path(first).read_bytes() == b"one" and store.shape(first) == (2, (1, 4))
    theirs = other.put(b"theirs", "b.npy", 3, (2, 2))
    for foreign in (theirs, "/etc/passwd", "../" + first, first.upper(), str(store.path(first))):
        with pytest.raises(UploadError, match="no longer on the server; upload it again"):
            store.path(foreign)
    second = store.put(b"two", "c.zip", 5, (3, 3))
    assert not (tmp_path / first).exists() and (tmp_path / second).exists()  # the replaced file is gone
    store.close()
    assert not (tmp_path / second).exists()
    assert (tmp_path / theirs).exists()
    del other  # a session's state is dropped when the session ends
    gc.collect()
    assert list(tmp_path.iterdir()) == []


# ----- the loss history is bounded --------------------------------------------------------------------------
def test_loss_history_keeps_at_most_cap_evenly_spread_points_from_first_to_last():
    history = LossHistory(cap=16)
    rng = np.random.default_rng(0)
    step = 1
    while step <= 100_000:
        n = int(rng.integers(1, 5000))
        steps = np.arange(step, min(step + n, 100_001))
        history.extend(steps, {"total": steps * 0.5})
        step = int(steps[-1]) + 1
        kept = history.steps()
        assert len(kept) <= 16 and kept[0] == 1 and kept[-1] == steps[-1]
        np.testing.assert_array_equal(history.values()["total"], kept * 0.5)  # each value is its step's
    gaps = np.diff(kept[:-1])
    assert len(set(gaps.tolist())) == 1 and gaps[0] == history.stride  # an even spread


def test_trainer_history_stays_bounded_and_spans_the_run_with_the_true_losses():
    cfg = RunConfig().replace(hidden=4, batch_size=16, steps=3000, snapshot_every=500, device="cpu")
    dataset = data.load(cfg.data)
    bounded, full = Trainer(cfg, dataset, device="cpu"), Trainer(cfg, dataset, device="cpu")
    bounded.losses_log = LossHistory(cap=64)
    full.losses_log = LossHistory(cap=10**6)
    sizes = [len(s.history_steps) for s in bounded.run()]
    snap = bounded.snapshot()
    list(full.run())
    assert max(sizes) <= 64 and sizes[-1] > 32  # constant per-snapshot cost, not one entry per step
    assert snap.history_steps[0] == 1 and snap.history_steps[-1] == 3000
    reference = dict(zip(full.history_steps.tolist(), full.history["total"].tolist(), strict=True))
    assert len(reference) == 3000
    np.testing.assert_array_equal(snap.history["total"], [reference[s] for s in snap.history_steps])


# ----- the web page: links cannot allocate, name server files or inject Markdown ----------------------------
@pytest.fixture
def page(monkeypatch):
    pin_navigation_mode(monkeypatch)
    loads: list[DataConfig] = []
    real_load = data.load

    def load(cfg):
        loads.append(cfg)
        return real_load(cfg)

    monkeypatch.setattr(data, "load", load)
    made: list[AppTest] = []

    def open_train(query: dict[str, str]) -> AppTest:
        return open_train_page(query, 60, made)

    open_train.loads = loads
    yield open_train
    for at in made:
        stop_jobs(at)


def _code_spans(markdown: str) -> tuple[list[str], str]:
    """(contents of the code spans, the text outside them), by CommonMark's rule: a span runs from a
    backtick run to the next run of the same length; one space on each side is stripped."""
    spans, outside, i = [], [], 0
    for m in re.finditer(r"`+", markdown):
        if m.start() < i:
            continue
        close = re.compile(rf"(?<!`){m.group()}(?!`)").search(markdown, m.end())
        if close is None:
            continue
        outside.append(markdown[i : m.start()])
        body = markdown[m.end() : close.start()]
        spans.append(body[1:-1] if body.startswith(" ") and body.endswith(" ") and body.strip() else body)
        i = close.end()
    outside.append(markdown[i:])
    return spans, "".join(outside)


def test_markdown_in_a_link_is_shown_literally(page):
    at = page({EVIL: "1", "rho": "[x](http://evil)", "dataset": "digits", "hidden": "4"})
    notices = [i.value for i in at.info]
    errors = [e.value for e in at.error]
    for shown, literal in ((notices, EVIL), (errors, "'[x](http://evil)'")):
        spans = [s for text in shown for s in _code_spans(text)[0]]
        assert any(literal in s for s in spans), shown
        assert all("](" not in _code_spans(text)[1] and "http" not in _code_spans(text)[1] for text in shown)


def test_a_huge_size_in_a_link_is_refused_in_a_notice_without_making_data(page):
    at = page({"dataset": "bars", "n_bars": "1000000000"})
    assert any(
        "The number of bar images must be at most 1000000 (you asked for `1000000000`)" in i.value
        for i in at.info
    )
    assert at.session_state["job"].config.data.n_bars == DataConfig().n_bars
    assert all(cfg.n_bars <= SIZE_LIMITS["n_bars"] for cfg in page.loads)


def test_a_link_over_the_memory_budget_says_what_fits_and_builds_nothing(page):
    at = page({"dataset": "natural-patches", "patch_size": "64", "hidden": "16384"})
    assert any("per-run memory budget" in e.value and "hidden ≤" in e.value for e in at.error)
    assert at.session_state["job"] is None if "job" in at.session_state else True
    assert all(cfg.patch_size != 64 for cfg in page.loads)


def test_upload_and_data_dir_are_not_taken_from_a_link(page):
    at = page({"dataset": "upload", "upload": "/etc/passwd.npy", "data_dir": "/etc"})
    settings = at.session_state["settings"]
    assert settings.get("upload") is None and settings.get("data_dir") is None
    assert any("a link cannot name files on the server" in i.value for i in at.info)
    assert "upload" not in at.query_params and "data_dir" not in at.query_params
    assert not [cfg for cfg in page.loads if cfg.dataset == "upload"]


# ----- the CLI: one line naming the input -------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--quiet", "--out", str(out)]) == 0
    return out


def test_epochs_inf_and_a_huge_seed_are_one_line_naming_the_flag(capsys):
    assert main(["train", *TINY, "--epochs", "inf"]) == 2
    assert "epochs must be <= 100000 (the size limit), got inf" in _error_line(capsys)
    assert main(["train", *TINY, "--seed", str(2**70)]) == 2
    assert f"seed must be an integer in [0, 2**63 - 1], got {2**70}" in _error_line(capsys)


def test_encode_of_an_npz_says_it_needs_a_npy(model_dir, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 64)))
    assert (
        main(["encode", "--model", str(model_dir), "--input", str(tmp_path / "x.npz"), "--output", "h"]) == 2
    )
    assert "x.npz is a .npz archive; encode reads one .npy array" in _error_line(capsys)


def test_encode_of_an_empty_array_or_a_lying_header_is_one_line(model_dir, tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), dtype=np.float32))
    (tmp_path / "huge.npy").write_bytes(_npy_header((1_000_000, 1_000_000)) + b"\0" * 64)
    out = str(tmp_path / "h.npy")
    assert (
        main(["encode", "--model", str(model_dir), "--input", str(tmp_path / "empty.npy"), "--output", out])
        == 2
    )
    assert "empty.npy holds no samples (shape [0, 64])" in _error_line(capsys)
    assert (
        main(["encode", "--model", str(model_dir), "--input", str(tmp_path / "huge.npy"), "--output", out])
        == 2
    )
    assert "huge.npy is not a readable .npy array" in _error_line(capsys)


def test_encode_refuses_a_folder_as_output_and_names_the_file_it_writes(model_dir, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 64), dtype=np.float32))
    args = ["encode", "--model", str(model_dir), "--input", str(tmp_path / "x.npy"), "--output"]
    assert main([*args, str(tmp_path)]) == 2
    assert f"--output {tmp_path} is a folder" in _error_line(capsys)
    assert main([*args, str(tmp_path / "codes")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'codes.npy'}: 3 codes")
    assert np.load(tmp_path / "codes.npy").shape == (3, 9)


def test_encode_refuses_nan_weights(model_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(broken / "model.safetensors"))
    tensors["encoder.weight"][0, 0] = float("nan")
    save_file(tensors, str(broken / "model.safetensors"))
    np.save(tmp_path / "x.npy", np.zeros((3, 64), dtype=np.float32))
    args = ["--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "h.npy")]
    assert main(["encode", "--model", str(broken), *args]) == 2
    assert "encoder.weight holds NaN or infinite values" in _error_line(capsys)
    assert not (tmp_path / "h.npy").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda doc: doc["model"].update(hidden=10**9), "hidden must be <= 16384 (the size limit)"),
        (lambda doc: doc["shape"].update(image_shape=[10**5, 10**5], n_inputs=10**10), "at most 65536"),
        (
            lambda doc: (
                doc["model"].update(hidden=16384),
                doc["shape"].update(image_shape=[256, 256], n_inputs=256 * 256),
            ),
            "more than the memory budget of 2048 MB",
        ),
    ],
)
def test_a_config_json_asking_for_a_huge_model_fails_before_building_it(
    model_dir, tmp_path, monkeypatch, capsys, edit, message
):
    folder = tmp_path / "huge"
    folder.mkdir()
    for f in model_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    doc = json.loads((folder / "config.json").read_text())
    edit(doc)
    (folder / "config.json").write_text(json.dumps(doc))

    def no_build(*args):
        raise AssertionError("the model was built")

    monkeypatch.setattr(model_import, "build", no_build)  # where export.load builds a model now
    np.save(tmp_path / "x.npy", np.zeros((3, 64), dtype=np.float32))
    args = ["--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "h.npy")]
    assert main(["encode", "--model", str(folder), *args]) == 2
    assert message in _error_line(capsys)


def test_out_does_not_overwrite_a_saved_run_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--quiet", "--out", str(out)]) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", *TINY, "--quiet", "--seed", "1", "--out", str(out)]) == 2
    assert "already holds a run (model.safetensors, config.json); add --force" in _error_line(capsys)
    assert (out / "model.safetensors").read_bytes() == before
    assert main(["train", *TINY, "--quiet", "--seed", "1", "--out", str(out), "--force"]) == 0
    assert (out / "model.safetensors").read_bytes() != before
