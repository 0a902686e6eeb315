"""The runs folder (sae_core.store.runs) and the comparison built on it (sae_core.figures.compare).

Runs are tiny (8×8 digits, 4 units, a few dozen steps); each test has its own folder.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest
import torch

from sae_core.figures import compare
from sae_core.figures import training as figures
from sae_core.store import export, runs
from sae_core.store.stored_run import read_history_csv


@pytest.fixture
def trained(trained_run):
    """make(**changes) -> (model, snapshot) of a finished tiny run (conftest.trained_run)."""
    return trained_run


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_kept_run_loads_back_with_the_same_weights_settings_numbers_and_history(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path)
    result = store.save_run(model, snap, owner="browser:a", status="finished")
    assert result.pruned == []
    info = result.run
    assert (info.status, info.steps, info.dataset, info.hidden) == ("finished", 30, "digits", 4)
    assert info.title == "digits · 4 units · ρ 0.05 · β 3 · step 30"
    assert info.recon_error == pytest.approx(snap.metrics["recon_error"])

    stored = store.load_run(info.id, "browser:a")
    for name, tensor in _weights(model).items():
        assert torch.equal(stored.model.state_dict()[name], tensor), name
    assert stored.config == snap.config and stored.image_shape == snap.image_shape
    assert stored.metrics["recon_error"] == snap.metrics["recon_error"]
    np.testing.assert_array_equal(stored.history_steps, snap.history_steps)
    for term, values in snap.history.items():
        np.testing.assert_array_equal(stored.history[term], values)  # repr() floats read back exactly
    np.testing.assert_allclose(stored.rho_hat, snap.rho_hat, rtol=1e-6)
    np.testing.assert_array_equal(stored.density, snap.density)


def test_the_kept_snapshot_draws_the_numbers_the_train_page_showed(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path)
    kept = store.load_run(store.save_run(model, snap, owner="o", status="stopped").run.id).snapshot()
    assert figures.metrics_row(kept) == figures.metrics_row(snap)
    np.testing.assert_allclose(kept.encoder_weight, snap.encoder_weight, rtol=1e-6)
    assert (
        figures.density_histogram(kept).to_dict()["data"] == figures.density_histogram(snap).to_dict()["data"]
    )


def test_each_owner_lists_only_its_own_runs_newest_first_and_only_a_hash_is_written(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path)
    a1 = store.save_run(model, snap, owner="browser:secret-a", status="finished").run
    b1 = store.save_run(model, snap, owner="browser:secret-b", status="finished").run
    a2 = store.save_run(model, snap, owner="browser:secret-a", status="downloaded").run
    assert [r.id for r in store.list_runs("browser:secret-a")] == [a2.id, a1.id]
    assert [r.id for r in store.list_runs("browser:secret-b")] == [b1.id]
    assert {r.id for r in store.list_runs(None)} == {a1.id, a2.id, b1.id}
    assert store.list_runs("browser:nobody") == []
    for folder in tmp_path.iterdir():
        for path in folder.glob("*.json"):
            assert "secret" not in path.read_text(), path
    assert json.loads((a1.path / runs.INFO_FILE).read_text())["owner"] == runs.owner_key("browser:secret-a")
    with pytest.raises(KeyError):
        store.load_run(a1.id, "browser:secret-b")
    with pytest.raises(KeyError):
        store.delete_run(a1.id, "browser:secret-b")
    assert store.delete_run(a1.id, "browser:secret-a").id == a1.id
    assert not a1.path.exists() and [r.id for r in store.list_runs("browser:secret-a")] == [a2.id]


def test_pruning_deletes_the_keepers_own_oldest_runs_first_and_reports_them(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path, max_runs=3)
    saved = [store.save_run(model, snap, owner=f"browser:{i % 2}", status="finished") for i in range(3)]
    assert all(r.pruned == [] for r in saved)
    fourth = store.save_run(model, snap, owner="browser:1", status="finished")
    assert [p.id for p in fourth.pruned] == [saved[1].run.id]  # its own, though browser:0's is older
    fifth = store.save_run(model, snap, owner="browser:0", status="finished")
    assert [p.id for p in fifth.pruned] == [saved[0].run.id]  # its own oldest
    left = {r.id for r in store.list_runs(None)}
    assert left == {saved[2].run.id, fourth.run.id, fifth.run.id}


def test_one_browser_keeping_big_runs_cannot_wipe_another_browsers_runs(tmp_path, trained):
    """The issue's case: with room for about three runs, B keeps (imports) big models again and again;
    A's only run stays, B's older ones go, and the folder stays within its bound."""
    model, snap = trained()
    big, _ = trained(hidden=64)
    size = runs.RunStore(tmp_path / "probe").save_run(big, snap, owner="o", status="imported").run.size_bytes
    store = runs.RunStore(tmp_path / "runs", max_mb=2.2 * size / runs.MB)
    mine = store.save_run(model, snap, owner="browser:A", status="finished").run
    for _ in range(4):
        result = store.save_run(big, snap, owner="browser:B", status="imported")
        assert all(p.owner == runs.owner_key("browser:B") for p in result.pruned)
        assert sum(r.size_bytes for r in store.list_runs(None)) <= store.max_bytes
    assert [r.id for r in store.list_runs("browser:A")] == [mine.id]


def test_when_the_keeper_has_nothing_to_give_up_owners_over_their_share_go_first(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path, max_runs=4)  # three owners: a share of 4/3 runs each
    a = store.save_run(model, snap, owner="browser:A", status="finished").run
    b = [store.save_run(model, snap, owner="browser:B", status="finished").run for _ in range(3)]
    c = store.save_run(model, snap, owner="browser:C", status="finished")
    # C's first run: the folder is over by one. A's run is the oldest, but B holds three, over its share.
    assert [p.id for p in c.pruned] == [b[0].id]
    assert {r.id for r in store.list_runs(None)} == {a.id, b[1].id, b[2].id, c.run.id}


def test_a_browser_whose_runs_another_browser_pruned_is_told_once_which_and_why(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path, max_runs=4)  # three owners: a share of 4/3 runs each
    store.save_run(model, snap, owner="browser:A", status="finished")
    b = [store.save_run(model, snap, owner="browser:B", status="finished").run for _ in range(3)]
    c = store.save_run(model, snap, owner="browser:C", status="finished")
    assert [p.id for p in c.pruned] == [b[0].id]
    assert store.take_pruned_notes("browser:A") == [] and store.take_pruned_notes("browser:C") == []
    notes = store.take_pruned_notes("browser:B")
    assert [(n.run_id, n.title, n.saved) for n in notes] == [(b[0].id, b[0].title, b[0].saved)]
    assert "another browser kept a run while yours took more than your share" in notes[0].reason
    assert "4 runs" in notes[0].reason and "3 browsers" in notes[0].reason
    assert store.take_pruned_notes("browser:B") == []  # told once
    again = runs.RunStore(tmp_path, max_runs=4)  # the notes live in the folder: a restart keeps them
    again.save_run(model, snap, owner="browser:D", status="finished")  # prunes B's next oldest
    assert [n.run_id for n in again.take_pruned_notes("browser:B")] == [b[1].id]
    assert not any(".pruned" in str(r.path) for r in again.list_runs(None))


def test_the_keepers_own_pruned_runs_leave_no_note_it_is_told_at_once(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path, max_runs=2)
    first = store.save_run(model, snap, owner="browser:A", status="finished").run
    store.save_run(model, snap, owner="browser:A", status="finished")
    third = store.save_run(model, snap, owner="browser:A", status="finished")
    assert [p.id for p in third.pruned] == [first.id]
    assert store.take_pruned_notes("browser:A") == []


def test_pruning_by_size_keeps_the_folder_under_its_bound_and_never_the_run_just_kept(tmp_path, trained):
    model, snap = trained()
    size = (
        runs.RunStore(tmp_path / "probe").save_run(model, snap, owner="o", status="finished").run.size_bytes
    )
    store = runs.RunStore(tmp_path / "runs", max_mb=2.5 * size / runs.MB)  # room for two runs
    first, second, third = (store.save_run(model, snap, owner="o", status="finished") for _ in range(3))
    assert third.pruned and third.pruned[0].id == first.run.id
    assert sum(r.size_bytes for r in store.list_runs(None)) <= store.max_bytes
    assert [r.id for r in store.list_runs("o")] == [third.run.id, second.run.id]
    tiny = runs.RunStore(tmp_path / "tiny", max_mb=size / 10 / runs.MB)  # smaller than one run
    only = tiny.save_run(model, snap, owner="o", status="finished")
    assert only.pruned == [] and [r.id for r in tiny.list_runs("o")] == [only.run.id]


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "/etc",
        "..",
        "",
        "20250101-120000-1a2b3c4",
        "20250101-120000-1a2b3c4g",
        "x/../20250101-120000-1a2b3c4d",
    ],
)
def test_names_that_are_not_run_ids_are_refused(tmp_path, bad):
    store = runs.RunStore(tmp_path)
    for call in (store.get, store.load_run, store.delete_run):
        with pytest.raises(ValueError, match="not a run id"):
            call(bad)


def test_a_well_formed_id_that_was_never_kept_is_a_key_error(tmp_path):
    with pytest.raises(KeyError):
        runs.RunStore(tmp_path).load_run("20250101-120000-1a2b3c4d")


def test_keeping_the_same_run_again_rewrites_it_in_place(tmp_path, trained):
    model, snap = trained()
    later_model, later = trained(steps=40)
    store = runs.RunStore(tmp_path)
    first = store.save_run(model, snap, owner="o", status="downloaded").run
    again = store.save_run(later_model, later, owner="o", status="finished", replace=first.id).run
    assert (again.id, again.created, again.steps, again.status) == (first.id, first.created, 40, "finished")
    assert again.saved >= first.saved and len(store.list_runs("o")) == 1
    assert store.load_run(first.id).info.steps == 40
    other = store.save_run(model, snap, owner="p", status="finished", replace=first.id).run  # not p's: new
    assert other.id != first.id and store.load_run(first.id).info.steps == 40


def test_concurrent_saves_keep_every_run_whole(tmp_path, trained):
    model, snap = trained()
    store = runs.RunStore(tmp_path, max_runs=10)
    results, errors = [], []

    def keep(i: int) -> None:
        try:
            for _ in range(3):
                results.append(
                    runs.RunStore(tmp_path, max_runs=10).save_run(
                        model, snap, owner=f"o{i}", status="finished"
                    )
                )
        except Exception as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=keep, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(results) == 18
    kept = store.list_runs(None)
    pruned = {p.id for r in results for p in r.pruned}
    assert len(kept) == 10 and len(pruned) == 8 and not pruned & {r.id for r in kept}
    for info in kept:
        stored = store.load_run(info.id)
        assert torch.equal(stored.model.state_dict()["encoder.weight"], model.state_dict()["encoder.weight"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".tmp", ".trash"))] == []


def test_the_folder_comes_from_the_argument_the_flag_the_environment_or_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SAE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(runs.ENV_DIR, raising=False)
    assert runs.resolve_root() == tmp_path / "data" / "runs"
    monkeypatch.setenv(runs.ENV_DIR, str(tmp_path / "env"))
    assert runs.resolve_root() == tmp_path / "env"
    assert runs.resolve_root(args=["--runs-dir", str(tmp_path / "flag")]) == tmp_path / "flag"
    assert runs.resolve_root(args=[f"--runs-dir={tmp_path / 'eq'}"]) == tmp_path / "eq"
    assert runs.resolve_root(tmp_path / "arg", args=["--runs-dir", "x"]) == tmp_path / "arg"
    assert runs.runs_dir_from_args(["--other", "1"]) is None


def test_the_loss_history_csv_reads_back_exactly(tmp_path):
    steps = np.array([0, 5, 10])
    history = {"total": np.array([1.0, 0.1 + 0.2, 1e-300]), "reconstruction": np.array([0.5, 1 / 3, 2.0])}
    export.write_history_csv(tmp_path / "h.csv", steps, history)
    got_steps, got = read_history_csv(tmp_path / "h.csv")
    np.testing.assert_array_equal(got_steps, steps)
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in history.items()}


# ----- the comparison -------------------------------------------------------------------------------------
def test_the_settings_table_marks_exactly_the_settings_that_differ(trained):
    (_, a), (_, b) = trained(), trained(rho=0.1, beta=1.0)
    rows = {row.name: row for row in compare.setting_rows([a.config, b.config, a.config])}
    assert {name for name, row in rows.items() if row.differs} == {"rho", "beta"}
    assert rows["rho"].values == ["0.05", "0.1", "0.05"]
    assert "upload" not in rows and "data_dir" not in rows


def test_the_metrics_table_has_one_value_per_run_and_the_loss_chart_one_line_per_run(trained):
    (_, a), (_, b) = trained(), trained(steps=40)
    rows = {label: values for label, values, _ in compare.metric_rows([a, b])}
    assert rows["Steps"] == ["30", "40"]
    assert rows["Reconstruction error"] == [
        f"{a.metrics['recon_error']:.4g}",
        f"{b.metrics['recon_error']:.4g}",
    ]
    assert compare.loss_terms([a, b])[0] == "total"
    fig = compare.loss_overlay_figure(["1. a", "2. b"], [a, b], "total", log_y=False)
    assert [t.name for t in fig.data] == ["1. a", "2. b"]
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "total loss"
    np.testing.assert_array_equal(fig.data[1].y, b.history["total"])


def test_short_labels_keep_only_what_sets_each_run_apart():
    titles = ["digits · 25 units · ρ 0.2 · β 0.5 · step 600", "digits · 25 units · ρ 0.05 · β 3 · step 600"]
    assert compare.short_labels(titles) == ["1. ρ 0.2 · β 0.5", "2. ρ 0.05 · β 3"]
    assert compare.short_labels(titles[:1] * 2) == ["1.", "2."]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"penalty": "kl", "rho": 0.05, "beta": 3.0}, "· ρ 0.05 · β 3 ·"),
        ({"penalty": "l1", "beta": 0.01}, "· L1 β 0.01 ·"),
        ({"penalty": "topk", "k": 3}, "· top-3 ·"),
        ({"penalty": "jumprelu", "beta": 0.05}, "· JumpReLU β 0.05 ·"),
        ({"penalty": "none"}, "· 4 units · step"),
    ],
    ids=["kl", "l1", "topk", "jumprelu", "none"],
)
def test_a_run_title_names_its_penalty_settings_as_the_penalty_describes_them(trained, changes, named):
    _, snap = trained()
    titled = dataclasses.replace(snap, config=snap.config.replace(**changes))
    title = runs.run_title(titled)
    assert named in title and title.startswith("digits · 4 units") and title.endswith("step 30")
