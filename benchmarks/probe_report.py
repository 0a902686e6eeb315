"""What `sae probe --self-taught` spends its time on, before and after the probe's speed-ups, in one run.

The report is the linear probe (codes, raw pixels, PCA; each on all labels and on 50 / 100 / 500) on the
model's dataset, then the same on the self-taught split after training a copy of the model's config on
classes 5-9. Both arms compose that report from the same pieces and the same logistic regression
(`probe.probe_sets`); they differ only where the code changed:

- `before`: the copy is trained with `Trainer.run()`, one snapshot every `snapshot_every` steps (as
  `common.train_model` did), and the PCA baseline uses scikit-learn's "auto" solver;
- `after`: `common.train_model` and `probe.baseline_features` as they are now;
- `after, 2 threads`: the same with torch's default of two threads on 2 cores, which is what `sae probe`
  ran with before the command line took the app's one-thread policy (sae_core.train.threads).

Arms alternate round by round (the order reversed every other round) so a busy machine slows all alike;
every phase is timed in CPU seconds of this process and in wall seconds, with the load average. The
accuracies of the two arms are printed side by side: the changes must not move them beyond noise.

    PYTHONPATH=. python benchmarks/probe_report.py --model runs/fashion [--rounds 2] [--json out.json]

--model is a saved run (`sae train --preset fashion-fast --out runs/fashion` is the issue's case: 10 000
Fashion-MNIST images, 196 units, a 1 200-step copy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.common import machine_info
from sae_core.analysis.applications import probe
from sae_core.analysis.applications.common import copy_steps, one_blas_thread, train_model
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.store import model_import
from sae_core.train.trainer import Trainer


def old_train(config: RunConfig, dataset: data.Dataset, steps: int) -> torch.nn.Module:
    """common.train_model before: Trainer.run(), with its snapshots."""
    trainer = Trainer(config.replace(steps=steps, epochs=None), dataset, device="cpu")
    for _ in trainer.run():
        pass
    return trainer.model.eval()


def old_baselines(dataset: data.Dataset, n_components: int) -> dict:
    """probe.baseline_features before: PCA with scikit-learn's default solver choice."""
    from sklearn.decomposition import PCA

    train, test = dataset.train.numpy(), dataset.test.numpy()
    with one_blas_thread():
        pca = PCA(n_components=min(n_components, *train.shape), random_state=0).fit(train)
        return {"pixels": (train, test), "pca": (pca.transform(train), pca.transform(test))}


class Clock:
    """CPU and wall seconds per named phase."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, work: Callable):
        c, w = time.process_time(), time.perf_counter()
        out = work()
        self.phases[name] = {"cpu_s": time.process_time() - c, "wall_s": time.perf_counter() - w}
        return out


def probe_on(clock: Clock, prefix: str, model, dataset, baselines) -> dict[str, float]:
    capped, y_train, y_test = probe.labelled_split(dataset)
    codes = clock(f"{prefix} codes", lambda: probe.code_features(model, capped))
    base = clock(f"{prefix} pixels + PCA", lambda: baselines(capped, codes[0].shape[1]))
    answer = clock(f"{prefix} probes", lambda: probe.probe_sets({"codes": codes, **base}, y_train, y_test))
    return {
        f"{prefix} {name} {n}": acc for name, curve in answer["curves"].items() for n, acc in curve[:-1]
    } | {f"{prefix} {name} all": r.accuracy for name, r in answer["results"].items()}


ARMS = ("before", "after", "after, 2 threads")


def report(arm: str, saved, dataset: data.Dataset, threads: int) -> tuple[dict, dict]:
    """One whole report by `arm` (one of ARMS): (phase -> seconds, accuracy by name)."""
    train = old_train if arm == "before" else train_model
    baselines = old_baselines if arm == "before" else probe.baseline_features
    torch.set_num_threads(2 if arm.endswith("2 threads") else threads)
    clock = Clock()
    accuracy = probe_on(clock, "model", saved.model, dataset, baselines)
    features, labelled = probe.self_taught_split(dataset)
    steps = copy_steps(saved.config)
    copy = clock("self-taught copy training", lambda: train(saved.config, features, steps))
    accuracy |= probe_on(clock, "self-taught", copy, labelled, baselines)
    total = {k: sum(p[k] for p in clock.phases.values()) for k in ("cpu_s", "wall_s")}
    return {**clock.phases, "total": total}, accuracy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a saved run (folder or zip)")
    ap.add_argument("--rounds", type=int, default=2, help="reports per arm")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the app gives a job one)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = {**machine_info(torch.device("cpu")), "load_average_start": os.getloadavg()}
    saved = model_import.load_model_path(args.model)
    load_c, load_w = time.process_time(), time.perf_counter()
    dataset = data.load(saved.config.data)
    loading = {"cpu_s": time.process_time() - load_c, "wall_s": time.perf_counter() - load_w}
    runs: dict[str, list] = {arm: [] for arm in ARMS}
    accuracy: dict[str, dict] = {}
    for r in range(args.rounds):
        for arm in ARMS if r % 2 == 0 else ARMS[::-1]:
            phases, accuracy[arm] = report(arm, saved, dataset, args.threads)
            runs[arm].append(phases)
            print(f"round {r} {arm}: " + json.dumps({k: round(v["cpu_s"], 2) for k, v in phases.items()}))
    medians = {
        arm: {
            phase: {k: statistics.median(p[phase][k] for p in reports) for k in ("cpu_s", "wall_s")}
            for phase in reports[0]
        }
        for arm, reports in runs.items()
    }
    ratio = {
        arm: {k: medians[arm]["total"][k] / medians["after"]["total"][k] for k in ("cpu_s", "wall_s")}
        for arm in ARMS
    }
    print(f"{'phase (median CPU s / wall s)':<32}" + "".join(f"{arm:>20}" for arm in ARMS))
    for phase in medians["after"]:
        cells = [f"{medians[a][phase]['cpu_s']:.2f} / {medians[a][phase]['wall_s']:.2f}" for a in ARMS]
        print(f"{phase:<32}" + "".join(f"{c:>20}" for c in cells))
    print(f"data loading (once, all arms) {loading['cpu_s']:.2f} CPU s; total over after's: {ratio}")
    for name in accuracy["after"]:
        print(f"{name:<32}" + "".join(f"{accuracy[a][name]:>20.4f}" for a in ARMS))
    out = {
        "machine": info,
        "load_average_end": os.getloadavg(),
        "loading": loading,
        "runs": runs,
        "medians": medians,
        "total_over_after": ratio,
        "accuracy": accuracy,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
