"""Datasets: shapes, value ranges, known answers, the torchvision path and upload validation. All offline."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.data import torchvision_sets as torchvision_data
from sae_core.data.datasets import DataUnavailableError, UploadError, load, load_upload_bytes


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Never read or write the real ~/.cache, never try the network."""
    monkeypatch.setenv("SAE_DATA_DIR", str(tmp_path_factory.mktemp("sae-data")))
    monkeypatch.setenv("SAE_OFFLINE", "1")


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format by hand: magic (0x08 = uint8, then ndim), big-endian int32 dims, raw bytes."""
    magic = 0x0800 + array.ndim  # 2049 for labels [N], 2051 for images [N, H, W]
    header = struct.pack(">" + "i" * (1 + array.ndim), magic, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist_root(root: Path, folder: str = "MNIST", n: int = 20, gz: bool = False) -> tuple:
    """A tiny dataset in torchvision's layout root/<folder>/raw; returns (images, labels) of train."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, count in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        out[split] = (images, labels)
    if gz:
        for f in list(raw.iterdir()):
            with open(f, "rb") as src, gzip.open(f"{f}.gz", "wb") as dst:
                dst.write(src.read())
            f.unlink()
    return out["train"]


# ---- offline datasets ------------------------------------------------------------------------


def test_digits_are_8x8_in_unit_range_with_a_seeded_80_20_split():
    d = load(DataConfig(dataset="digits"))
    assert d.image_shape == (8, 8) and d.n_inputs == 64
    assert len(d.train) + len(d.test) == 1797 and len(d.test) == round(0.2 * 1797)
    assert d.train.dtype == torch.float32 and 0 <= d.train.min() and d.train.max() == 1.0
    assert set(d.train_labels.tolist()) == set(range(10)) and d.train_labels.dtype == torch.int64
    # Pixel counts are 0..16, so every value is a multiple of 1/16.
    assert torch.allclose(d.train * 16, (d.train * 16).round())
    again = load(DataConfig(dataset="digits"))
    assert torch.equal(d.train, again.train)
    other = load(DataConfig(dataset="digits", data_seed=1))
    assert not torch.equal(d.train, other.train)


def test_max_samples_keeps_a_seeded_subset_with_matching_labels():
    full = load(DataConfig(dataset="digits"))
    d = load(DataConfig(dataset="digits", max_samples=100))
    assert d.train.shape == (100, 64) and d.train_labels.shape == (100,)
    # Each kept row is one of the full rows, with that row's label.
    match = (d.train[:, None, :] == full.train[None, :, :]).all(dim=2).float().argmax(dim=1)
    assert torch.equal(full.train[match], d.train) and torch.equal(full.train_labels[match], d.train_labels)
    assert torch.equal(d.test, full.test)


def test_normalize_patches_matches_the_ufldl_formula():
    patches = torch.zeros(20, 4)
    patches[0] = torch.tensor([0.0, 0.0, 0.0, 100.0])  # an outlier far beyond 3σ
    patches[1] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    patches[2] = torch.tensor([5.0, 5.0, 5.0, 5.0])  # flat: lands exactly in the middle, 0.5
    x = patches.numpy().astype(np.float64)
    centred = x - x.mean(axis=1, keepdims=True)
    s = 3 * centred.std(ddof=1)
    expected = (np.clip(centred, -s, s) / s + 1) * 0.4 + 0.1
    got = data.normalize_patches(patches)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert got.min() >= 0.1 - 1e-6 and got.max() <= 0.9 + 1e-6
    assert got[0, 3] == pytest.approx(0.9)  # clipped to the top of the range
    assert got[0, :3].gt(0.1).all() and torch.allclose(got[2], torch.tensor(0.5))


def test_natural_patches_are_normalized_patches_of_the_sample_photos():
    d = load(DataConfig(dataset="natural-patches", n_patches=2000, patch_size=6))
    assert d.image_shape == (6, 6) and d.train.shape == (1800, 36) and d.test.shape == (200, 36)
    everything = torch.cat([d.train, d.test])
    assert everything.min() >= 0.1 - 1e-6 and everything.max() <= 0.9 + 1e-6
    # Mean removal maps each patch's mean to the centre of [0.1, 0.9] (up to the rare clipped pixel).
    assert (everything.mean(dim=1) - 0.5).abs().median() < 1e-6
    assert d.train_labels is None
    # Patches are real image content: neighbouring pixels are correlated (shuffled pixels give ≈ -1/35).
    img = everything.reshape(-1, 6, 6) - 0.5
    corr = (img[:, :, :-1] * img[:, :, 1:]).sum() / (img[:, :, :-1] ** 2).sum()
    assert corr > 0.3
    again = load(DataConfig(dataset="natural-patches", n_patches=2000, patch_size=6))
    assert torch.equal(d.train, again.train)


def correlated_samples(n: int = 4000, d: int = 6, seed: int = 0) -> np.ndarray:
    """[n, d] Gaussian samples mixed by a random matrix: strongly correlated pixels, known spectrum."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


@pytest.mark.parametrize("epsilon", [1e-6, 0.05])
def test_zca_whitened_patches_have_the_identity_covariance_up_to_the_epsilon_shrinkage(epsilon):
    x = correlated_samples()
    white = data.zca_whiten(torch.from_numpy(x), epsilon).numpy()
    cov = np.cov(white, rowvar=False)  # numpy's own covariance, normaliser n − 1
    lam, u = np.linalg.eigh(np.cov(x, rowvar=False))
    shrink = lam / (lam + epsilon * lam.mean())  # what ε leaves of each direction's unit variance
    np.testing.assert_allclose(cov, (u * shrink) @ u.T, atol=1e-10)
    np.testing.assert_allclose(cov, np.eye(6), atol=2 * epsilon * lam.mean() / lam.min())
    if epsilon < 1e-3:
        np.testing.assert_allclose(cov, np.eye(6), atol=1e-4)
    assert abs(np.cov(x, rowvar=False) - np.eye(6)).max() > 0.5  # the input was far from white
    # ZCA, not PCA: the whitening matrix is symmetric (the result stays in pixel space)
    centred = x - x.mean(axis=0)
    w, *_ = np.linalg.lstsq(centred, white, rcond=None)
    np.testing.assert_allclose(w, w.T, atol=1e-8)


def test_whitened_natural_patches_have_uncorrelated_pixels_and_stay_in_range():
    """UFLDL's photographs were whitened; with whiten the bundled ones are ZCA-whitened before the same
    normalisation, so neighbouring pixels no longer correlate (raw patches: above 0.3, see above)."""
    cfg = DataConfig(dataset="natural-patches", n_patches=4000, patch_size=6, whiten=True)
    d = load(cfg)
    everything = torch.cat([d.train, d.test]).double()
    assert everything.min() >= 0.1 - 1e-6 and everything.max() <= 0.9 + 1e-6
    corr = np.corrcoef(everything.numpy(), rowvar=False)
    off_diagonal = corr[~np.eye(36, dtype=bool)]
    # Each patch's own mean is removed first, which leaves every pair at −1/35 in theory; clipping at 3σ
    # and ε move that by a few hundredths. Raw patches reach 0.6 and more.
    assert np.abs(off_diagonal).max() < 0.15, np.abs(off_diagonal).max()
    plain = load(DataConfig(dataset="natural-patches", n_patches=4000, patch_size=6))
    raw = torch.cat([plain.train, plain.test])
    assert np.abs(np.corrcoef(raw.numpy(), rowvar=False)[~np.eye(36, dtype=bool)]).max() > 0.5
    with pytest.raises(ValueError, match="zca_epsilon must be > 0"):
        DataConfig(dataset="natural-patches", whiten=True, zca_epsilon=0.0)


def test_sample_patches_cuts_exact_windows_of_the_image():
    image = np.arange(20 * 30, dtype=np.float64).reshape(20, 30)
    patches = data.sample_patches((image,), 50, 4, torch.Generator().manual_seed(0)).numpy()
    top_left = patches[:, 0]
    rows, cols = (top_left // 30).astype(int), (top_left % 30).astype(int)
    for p, r, c in zip(patches, rows, cols, strict=True):
        np.testing.assert_array_equal(p.reshape(4, 4), image[r : r + 4, c : c + 4])


def test_bars_images_are_the_or_of_their_bars():
    images, truth, present = data.bars_images(500, 0.2, torch.Generator().manual_seed(0))
    for image, bars in zip(images, present, strict=True):
        expected = torch.zeros(8, 8)
        for b in bars.nonzero().flatten().tolist():
            if b < 8:
                expected[b, :] = 1  # horizontal bar in row b
            else:
                expected[:, b - 8] = 1  # vertical bar in column b - 8
        assert torch.equal(image.reshape(8, 8), expected)
    assert set(images.unique().tolist()) <= {0.0, 1.0}


def test_bar_frequency_matches_the_probability():
    prob, n = 0.125, 20000
    _, _, present = data.bars_images(n, prob, torch.Generator().manual_seed(1))
    freq = present.float().mean(dim=0)
    sigma = (prob * (1 - prob) / n) ** 0.5
    assert ((freq - prob).abs() < 5 * sigma).all()


def test_bars_dataset_ground_truth_is_16_distinct_single_bars():
    d = load(DataConfig(dataset="bars", n_bars=1000, bar_prob=0.3))
    gt = d.ground_truth
    assert gt.shape == (16, 64) and len(torch.unique(gt, dim=0)) == 16
    assert (gt.sum(dim=1) == 8).all()  # each bar is one full row or column of an 8×8 image
    assert d.train.shape == (900, 64) and d.test.shape == (100, 64)
    assert torch.equal(d.train, load(DataConfig(dataset="bars", n_bars=1000, bar_prob=0.3)).train)


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*digits.*natural-patches"):
        load(DataConfig(dataset="nope"))


def test_datasets_table_is_ordered_and_marks_offline_ones():
    assert list(data.DATASETS) == [
        "digits", "natural-patches", "bars", "superposition", "fashion-mnist", "mnist", "kmnist", "cifar10",
        "upload",
    ]  # fmt: skip
    offline = [n for n, i in data.DATASETS.items() if i.offline]
    assert offline == ["digits", "natural-patches", "bars", "superposition", "upload"]
    assert tuple(offline) == torchvision_data.OFFLINE_DATASETS  # the names a missing-files error suggests


# ---- torchvision path ------------------------------------------------------------------------


def test_mnist_reads_idx_files_through_torchvision(tmp_path):
    images, labels = make_mnist_root(tmp_path)
    d = load(DataConfig(dataset="mnist", data_dir=str(tmp_path)))
    assert d.image_shape == (28, 28) and d.train.shape == (20, 784) and d.test.shape == (10, 784)
    np.testing.assert_array_equal(d.train.numpy(), images.reshape(20, 784).astype(np.float32) / 255)
    assert d.train_labels.tolist() == labels.tolist()
    assert d.train_labels.dtype == torch.int64


def test_gzipped_idx_files_are_unpacked_in_place(tmp_path):
    images, _ = make_mnist_root(tmp_path, folder="KMNIST", gz=True)
    d = load(DataConfig(dataset="kmnist", data_dir=str(tmp_path), max_samples=5))
    assert d.train.shape == (5, 784)
    assert (tmp_path / "KMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    full = load(DataConfig(dataset="kmnist", data_dir=str(tmp_path)))
    np.testing.assert_array_equal(full.train.numpy() * 255, images.reshape(20, 784).astype(np.float32))


def test_cifar10_batches_are_read_through_torchvision_and_made_grey(tmp_path, monkeypatch):
    import pickle

    from torchvision.datasets import cifar

    # torchvision checks each batch's md5, which a hand-made batch cannot match.
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for f, _ in cifar.CIFAR10.train_list + cifar.CIFAR10.test_list:
        batches[f] = {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": [7, 8, 9]}
        (folder / f).write_bytes(pickle.dumps(batches[f]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    d = load(DataConfig(dataset="cifar10", data_dir=str(tmp_path)))
    assert d.image_shape == (32, 32) and d.train.shape == (15, 1024) and d.test.shape == (3, 1024)
    rgb = batches["data_batch_1"]["data"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)
    grey = np.rint(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255
    np.testing.assert_allclose(d.train[:3].numpy(), grey.reshape(3, 1024), atol=1e-6)
    assert d.train_labels[:3].tolist() == [7, 8, 9]


def test_missing_files_raise_an_error_naming_the_folder_and_offline_datasets(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        load(DataConfig(dataset="kmnist", data_dir=str(tmp_path)))
    message = str(err.value)
    assert str(tmp_path / "KMNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "digits" in message and "bars" in message


def test_missing_fashion_mnist_suggests_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision_data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load(DataConfig(dataset="fashion-mnist", data_dir=str(tmp_path)))


@pytest.mark.skipif(
    not torchvision_data.DEBIAN_FASHION_MNIST.exists(), reason="dataset-fashion-mnist not installed"
)
def test_debian_fashion_mnist_is_read_as_torchvision_reads_it(tmp_path):
    d = load(DataConfig(dataset="fashion-mnist", data_dir=str(tmp_path)))
    assert d.train.shape == (60000, 784) and d.test.shape == (10000, 784)
    assert set(d.train_labels.unique().tolist()) == set(range(10))
    assert d.train.min() == 0.0 and d.train.max() == 1.0
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    from torchvision.datasets import FashionMNIST  # the reference reader

    for train in (True, False):
        ours = torchvision_data._read_split("fashion-mnist", str(tmp_path), train)
        theirs = FashionMNIST(str(tmp_path), train=train, download=False)
        assert torch.equal(ours[0], theirs.data) and ours[0].dtype == torch.uint8
        assert torch.equal(ours[1], theirs.targets) and ours[1].dtype == torch.int64


def test_an_mnist_format_set_loads_without_importing_torchvision(tmp_path):
    make_mnist_root(tmp_path, "KMNIST")
    code = (
        "import sys\n"
        "from sae_core.config.run import DataConfig\n"
        "from sae_core.data.datasets import load\n"
        f"d = load(DataConfig(dataset='kmnist', data_dir={str(tmp_path)!r}))\n"
        "print(d.train.shape[1], 'torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["784", "False"]


def test_a_damaged_idx_file_is_a_clear_error(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "ok", images)
    read = torchvision_data.read_idx(tmp_path / "ok")
    assert read.shape == (2, 3, 4) and np.array_equal(read, images) and read.flags.writeable
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-5])
    with pytest.raises(DataUnavailableError, match="partial download"):
        torchvision_data.read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataUnavailableError, match="not an IDX file"):
        torchvision_data.read_idx(tmp_path / "text")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DataUnavailableError, match="not an IDX file"):
        torchvision_data.read_idx(tmp_path / "empty")


def test_availability_looks_at_the_disk_only(tmp_path):
    for name in ("digits", "natural-patches", "bars", "superposition", "upload"):
        assert data.availability(name)[0] is True
    ok, reason = data.availability("mnist", str(tmp_path))
    assert ok is False and str(tmp_path / "MNIST" / "raw") in reason
    make_mnist_root(tmp_path)
    ok, reason = data.availability("mnist", str(tmp_path))
    assert ok is True and "found" in reason


# ---- uploads ---------------------------------------------------------------------------------


def npy_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def png_zip(sizes: list[tuple[int, int]]) -> tuple[bytes, list[np.ndarray]]:
    """A zip of grey PNGs and a macOS resource fork; the same bytes on every call (entries dated 1980, not
    now), because one of them is a parameter and so part of a test's id, which xdist's workers must share."""
    buffer, pixels = io.BytesIO(), []
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, (w, h) in enumerate(sizes):
            grey = (np.arange(w * h).reshape(h, w) * (i + 1) % 256).astype(np.uint8)
            image = io.BytesIO()
            Image.fromarray(grey).save(image, format="PNG")
            archive.writestr(zipfile.ZipInfo(f"img{i:02d}.png"), image.getvalue())
            pixels.append(grey)
        archive.writestr(zipfile.ZipInfo("__MACOSX/._img00.png"), b"resource fork, not an image")
    return buffer.getvalue(), pixels


def test_upload_2d_array_in_unit_range_is_kept_and_square_d_becomes_an_image():
    x = np.random.default_rng(0).random((10, 16))
    got, shape = load_upload_bytes(npy_bytes(x), "x.npy")
    assert shape == (4, 4) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), x, rtol=1e-6)
    _, shape = load_upload_bytes(npy_bytes(x[:, :10]), "x.npy")
    assert shape == (1, 10)


def test_upload_other_ranges_are_min_max_scaled():
    x = np.array([[-2.0, 0.0], [2.0, 6.0]])
    got, _ = load_upload_bytes(npy_bytes(x), "x.npy")
    np.testing.assert_allclose(got.numpy(), (x + 2) / 8)


def test_upload_3d_array_and_rgb_uint8_become_grey_in_unit_range():
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    got, shape = load_upload_bytes(npy_bytes(x), "x.npy")
    assert shape == (3, 4)
    np.testing.assert_allclose(got.numpy(), x.reshape(5, 12) / 255, rtol=1e-6)
    rgba = np.zeros((4, 2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7  # pure red, alpha ignored
    got, shape = load_upload_bytes(npy_bytes(rgba), "x.npy")
    assert shape == (2, 2)
    np.testing.assert_allclose(got.numpy(), 0.299, rtol=1e-6)


def test_upload_npz_prefers_the_x_key():
    buffer = io.BytesIO()
    np.savez(buffer, labels=np.arange(3), x=np.full((3, 4), 0.25))
    got, shape = load_upload_bytes(buffer.getvalue(), "d.npz")
    assert got.shape == (3, 4) and shape == (2, 2) and (got == 0.25).all()


def test_upload_zip_of_pngs_is_read_as_grey_images_in_name_order():
    blob, pixels = png_zip([(5, 3)] * 3)
    got, shape = load_upload_bytes(blob, "images.zip")
    assert shape == (3, 5) and got.shape == (3, 15)
    np.testing.assert_allclose(got.numpy(), np.stack(pixels).reshape(3, 15) / 255, rtol=1e-6)


@pytest.mark.parametrize(
    ("payload", "filename", "message"),
    [
        (npy_bytes(np.array([[0.0, np.nan], [1.0, 2.0]])), "nan.npy", "nan.npy: .*NaN or infinite"),
        (npy_bytes(np.array([[1, "a"]], dtype=object), allow_pickle=True), "obj.npy", "object arrays"),
        (npy_bytes(np.array([["a", "b"], ["c", "d"]])), "str.npy", "dtype <U1; a numeric array"),
        (npy_bytes(np.arange(5.0)), "flat.npy", r"shape \(5,\); expected \[N, D\]"),
        (npy_bytes(np.zeros((1, 4))), "one.npy", "at least 2 samples, got 1"),
        (npy_bytes(np.zeros((0, 4))), "none.npy", "the array is empty"),
        (npy_bytes(np.zeros((2, 3, 3, 2))), "ch.npy", "1, 3 or 4 channels"),
        (npy_bytes(np.zeros((4, 4)))[:-7], "cut.npy", "cut.npy: not a valid .npy file"),
        (b"this is not numpy", "junk.npy", "junk.npy: not a valid .npy file"),
        (b"PK\x03\x04 truncated zip", "junk.npz", "junk.npz: not a valid .npz archive"),
        (b"garbage", "junk.zip", "junk.zip: not a valid .zip archive"),
        (png_zip([(4, 4), (5, 4)])[0], "mixed.zip", "same size; img00.png is 4×4 but img01.png is 5×4"),
        (b"", "empty.npy", "empty.npy: the file is empty"),
        (b"1,2,3", "table.csv", r"unsupported file type \.csv"),
    ],
)
def test_bad_uploads_raise_upload_error_with_a_clear_message(payload, filename, message):
    with pytest.raises(UploadError, match=message):
        load_upload_bytes(payload, filename)


def test_zip_with_a_corrupt_image_names_the_entry():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", b"not a png")
    with pytest.raises(UploadError, match="cannot read image a.png"):
        load_upload_bytes(buffer.getvalue(), "bad.zip")


def test_upload_dataset_loads_a_file_path(tmp_path):
    path = tmp_path / "mine.npy"
    path.write_bytes(npy_bytes(np.random.default_rng(0).integers(0, 256, (30, 6, 6), dtype=np.uint8)))
    d = load(DataConfig(dataset="upload", upload=str(path), max_samples=12))
    assert d.name == "upload" and d.image_shape == (6, 6) and d.train.shape == (12, 36) and d.test is None
    with pytest.raises(UploadError, match="no such file"):
        load(DataConfig(dataset="upload", upload=str(tmp_path / "missing.npy")))
    with pytest.raises(UploadError, match="needs a file"):
        load(DataConfig(dataset="upload"))


def test_digits_read_from_scikit_learns_file_equal_its_load_digits():
    from sklearn.datasets import load_digits

    pixels, labels = data.digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)
