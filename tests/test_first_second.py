"""The first second of a fresh server (issue 21): the Train page's dataset menu asks every dataset whether
it is installed, and that answer must not import torchvision.datasets (seconds on a cold 2-core machine);
the file names written out for it must be torchvision's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sae_core.data import torchvision_sets

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(torchvision_sets.TV_FILES))
def test_the_written_out_folders_and_files_are_torchvisions(name):
    datasets = pytest.importorskip("torchvision.datasets")
    classes = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10"}
    cls = getattr(datasets, classes[name])
    if name == "cifar10":
        folder, files = (
            cls.base_folder,
            [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]],
        )
    else:
        folder, files = f"{cls.__name__}/raw", [f.removesuffix(".gz") for f, _ in cls.resources]
    assert torchvision_sets.TV_FILES[name] == (folder, files)


@pytest.mark.slow
def test_asking_which_datasets_are_installed_does_not_import_torchvision():
    script = (
        "import sys\n"
        "from sae_core.data import datasets as data\n"
        "answers = [data.availability(name) for name in data.DATASETS]\n"
        "print(len(answers), 'torchvision' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    count, imported = out.stdout.split()
    assert int(count) > 4 and imported == "False", out.stdout + out.stderr
