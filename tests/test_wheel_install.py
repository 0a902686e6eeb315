"""A non-editable install works: build the wheel, install it in a fresh venv, train and load the presets.

The venv reuses this interpreter's site-packages (torch and friends) but must import sae_core from the
wheel, not from this checkout: every command runs from an empty folder and checks where sae_core lives.
Nothing is downloaded (no build isolation, --no-deps, --no-index). The suite may itself run in a venv.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "sae_core")
"""What the wheel is built from, copied so that the build writes nothing into the checkout."""

pytestmark = pytest.mark.slow


def run(args: list, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """{'wheel', 'python', 'bin', 'cwd', 'env'} of a venv holding only the built wheel of sae_core."""
    root = tmp_path_factory.mktemp("wheel-install")
    src = root / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         root / "dist", src], cwd=root)  # fmt: skip
    (wheel,) = (root / "dist").glob("sae_playground-*.whl")

    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=root)
    see_this_venvs_packages(venv)
    python = venv / "bin" / "python"
    # Without the checkout on PYTHONPATH: pip would take its sae_playground.egg-info (left by an editable
    # install) for an installed sae-playground 0.1.0 and install nothing.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # pip, seen through --system-site-packages (or the .pth file), installs into the venv that runs it.
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=root, env=env)
    cwd = root / "elsewhere"
    cwd.mkdir()
    env.update(SAE_OFFLINE="1", SAE_DATA_DIR=str(root / "data"), OMP_NUM_THREADS="1")
    return {"wheel": wheel, "python": python, "bin": venv / "bin", "cwd": cwd, "env": env, "venv": venv}


def see_this_venvs_packages(venv: Path) -> None:
    """Let `venv` import what this interpreter imports, when this interpreter runs in a venv of its own.

    --system-site-packages shares the *base* interpreter's site-packages, and a venv made from inside a venv
    has the base interpreter as its own: torch installed in the running venv would be missing. A .pth file
    in the new venv lists the running interpreter's site-packages folders; they come after the new venv's
    own, so the wheel's sae_core still wins, and their .pth files (an editable sae_core among them) are
    not read.
    """
    if sys.prefix == sys.base_prefix:
        return
    (own,) = (venv / "lib").glob("python3*/site-packages")
    (own / "running_venv.pth").write_text("".join(f"{folder}\n" for folder in site.getsitepackages()))


def test_wheel_ships_the_presets_file(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "sae_core/presets.json" in names and "sae_core/data/torchvision_sets.py" in names


def test_installed_package_is_imported_from_the_venv_not_the_checkout(installed):
    where = run([installed["python"], "-c", "import sae_core; print(sae_core.__file__)"],
                installed["cwd"], installed["env"]).strip()  # fmt: skip
    assert Path(where).resolve().is_relative_to(installed["venv"].resolve()), where
    assert not Path(where).resolve().is_relative_to(REPO), where


def test_installed_sae_train_writes_a_run_with_finite_metrics(installed):
    out = installed["cwd"] / "run"
    run([installed["bin"] / "sae", "train", "--dataset", "digits", "--hidden", "4", "--steps", "5",
         "--quiet", "--out", out], installed["cwd"], installed["env"])  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert names >= {"model.safetensors", "config.json", "metrics.json", "filters.png", "reconstructions.png"}
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == 5 and summary["status"] == "done"
    for key in ("recon_error", "fve", "mean_activation", "l0", "loss_total"):
        assert math.isfinite(summary[key]), key
    assert json.loads((out / "config.json").read_text())["model"]["hidden"] == 4


def test_installed_presets_load_from_package_data_and_validate(installed):
    script = (
        "import json; from sae_core import presets\n"
        "loaded = presets.load_presets()\n"
        "for p in loaded.values(): p.config\n"  # validates; load_presets did too, this is the public path
        "print(json.dumps({'file': str(presets.PRESETS_FILE), 'names': list(loaded),"
        " 'datasets': [p.config.data.dataset for p in loaded.values()]}))"
    )
    got = json.loads(run([installed["python"], "-c", script], installed["cwd"], installed["env"]))
    assert Path(got["file"]).resolve().is_relative_to(installed["venv"].resolve()), got["file"]
    in_repo = json.loads((REPO / "sae_core" / "presets.json").read_text(encoding="utf-8"))
    assert got["names"] == list(in_repo)
    assert got["datasets"] == [entry["config"]["dataset"] for entry in in_repo.values()]
