"""Shared fixtures: small, seeded datasets built directly from scikit-learn (no sae_core.data.datasets
involved)."""

from __future__ import annotations

import os
import types

import pytest
import torch

from sae_core.data.datasets import Dataset

# The suite's models are tiny: intra-op threads only add hand-offs between cores, and on a busy 2-core
# machine (CI, or several test runs at once) they made the training tests over ten times slower.
torch.set_num_threads(1)


def make_digits(n_train: int = 300, n_test: int = 60, seed: int = 0) -> Dataset:
    """scikit-learn's 8×8 digits scaled to [0, 1], a seeded random subset split into train and test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data / 16.0).float()
    y = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return Dataset("digits", x[train], x[test], y[train], y[test], (8, 8))


# Test tiers (pyproject.toml's markers) that follow from what a test module uses, so that a new test file
# lands in the right tier without remembering a mark: the quick tier is `-m "not apptest and not browser
# and not slow"`.
TIER_SOURCES = {
    "apptest": ("streamlit.testing", "apptest_helpers"),
    "browser": ("playwright",),
}


def _draws_on(module: types.ModuleType, sources: tuple[str, ...]) -> bool:
    """Whether a module-level name of `module` is one of `sources` (a module, or something defined in one)."""
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and any(name == s or name.startswith(s + ".") for s in sources):
            return True
    return False


def pytest_collection_modifyitems(config, items):
    tiers: dict[types.ModuleType, list[str]] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        if module not in tiers:
            tiers[module] = [tier for tier, sources in TIER_SOURCES.items() if _draws_on(module, sources)]
        for tier in tiers[module]:
            item.add_marker(tier)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker("browser")
    if hasattr(config, "workerinput"):
        _longest_first(items)


def _longest_first(items) -> None:
    """Order the modules of an xdist run so that the long ones (browser, slow, then AppTest) start first.

    scripts/test.sh hands out whole modules (`--dist loadfile --no-loadscope-reorder`, so that a module's
    server and trained models are made once); a browser module left to the end would run alone while the
    other workers idle. Tests keep their order within a module, and every worker sorts alike.
    """
    rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        if item.get_closest_marker("browser") or item.get_closest_marker("slow"):
            rank[module] = 0
        elif item.get_closest_marker("apptest"):
            rank[module] = min(rank.get(module, 1), 1)
        else:
            rank.setdefault(module, 2)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])


@pytest.fixture(scope="session", autouse=True)
def runs_folder(tmp_path_factory):
    """The runs the app keeps during the tests (pages/runs_store.py) go to a temporary folder, never to
    the user's own ($SAE_RUNS_DIR or ~/.cache): the AppTests and the servers the browser tests start
    read $SAE_RUNS_DIR from this process."""
    before = os.environ.get("SAE_RUNS_DIR")
    os.environ["SAE_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    yield os.environ["SAE_RUNS_DIR"]
    if before is None:
        os.environ.pop("SAE_RUNS_DIR", None)
    else:
        os.environ["SAE_RUNS_DIR"] = before


@pytest.fixture(scope="session", autouse=True)
def classes_db(tmp_path_factory):
    """The classes the app keeps (pages/class_state.py) go to a temporary SQLite file, never to the user's
    own ($SAE_CLASSES_DB or ~/.cache): every Train page looks there once for the browser's class."""
    before = os.environ.get("SAE_CLASSES_DB")
    os.environ["SAE_CLASSES_DB"] = str(tmp_path_factory.mktemp("classes") / "classes.sqlite3")
    yield os.environ["SAE_CLASSES_DB"]
    if before is None:
        os.environ.pop("SAE_CLASSES_DB", None)
    else:
        os.environ["SAE_CLASSES_DB"] = before


@pytest.fixture
def threads_restored():
    """Put torch's thread count back after a test that sets it (sae_core.train.threads)."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_digits() -> Dataset:
    """300 training and 60 test digits, [N, 64] float32 in [0, 1]."""
    return make_digits()


@pytest.fixture(scope="session")
def digits_full_train() -> Dataset:
    """1500 training digits: enough for the sparsity target to be reached on the data, still fast."""
    return make_digits(n_train=1500, n_test=100)


TINY_RUN = {"dataset": "digits", "hidden": 4, "steps": 30, "batch_size": 32}
"""The tiny run the kept-runs tests (test_runs, test_runs_page) train: `trained_run(**changes)`."""


@pytest.fixture(scope="session")
def trained_run(tiny_digits):
    """make(**changes) -> (model, final snapshot) of TINY_RUN with changes, trained once per setting."""
    from sae_core.config.run import RunConfig
    from sae_core.train.trainer import Trainer

    made: dict[tuple, tuple] = {}

    def make(**changes):
        key = tuple(sorted(changes.items()))
        if key not in made:
            trainer = Trainer(RunConfig.from_flat({**TINY_RUN, **changes}), tiny_digits)
            for _ in trainer.run():
                pass
            made[key] = (trainer.model, trainer.snapshot("done"))
        return made[key]

    return make


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) per browser-test module; those modules skip without it."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    from browser_helpers import launch_chromium

    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()
