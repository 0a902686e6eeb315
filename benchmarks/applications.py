"""How long the Applications page's computations take on a 10k-sample dataset (Fashion-MNIST, 28×28).

The page's goal: the probe answers within 3 s on 2 CPU cores, anything longer shows progress. What the
page computes per model (it caches by the weights' hash, so each model pays once):
- `codes probe`: encode the probe's train and test splits and fit the logistic regression on the codes,
  with its learning curve (50, 100, 500 labels); what a newly trained model costs.
- `baseline probes`: the same on raw pixels and on PCA of as many dimensions; cached per dataset, so a
  session pays it once whatever it trains.
- `map (PCA)`, `map (t-SNE)` (1000 points), `denoise` (PSNR at one level and the 6-level curve),
  `anomaly` (noise source): the other sections' first draw.

    PYTHONPATH=. python benchmarks/applications.py [--steps 300] [--rounds 3] [--json out.json] [--page]

`--page` also times the page itself, driven with Streamlit's AppTest as a user drives it (import a model
zip, open Feature learning): the first model (nothing cached: codes and baseline probes), a second model
(the baselines cached for the dataset: what a newly trained model costs) and a rerun of the page with
nothing new (everything cached), each --rounds times with fresh models.

The model is the UFLDL MNIST-shaped one (784 → 196 sigmoid, KL ρ 0.1, β 3) trained briefly with Adam;
how well trained it is changes the probe's accuracy, hardly its time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import machine_info
from sae_core.analysis.applications import anomaly, denoise, embedding, probe
from sae_core.analysis.applications.common import train_model
from sae_core.config.run import DataConfig, RunConfig
from sae_core.data import datasets as data

RECIPE = {"hidden": 196, "rho": 0.1, "beta": 3.0, "weight_decay": 3e-3, "batch_size": 256, "lr": 0.01}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--samples", type=int, default=10_000, help="training samples (test: the split's)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of the model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--page", action="store_true", help="also time the page through AppTest")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load_s, dataset = timed(lambda: data.load(DataConfig(dataset=args.dataset, max_samples=args.samples)))
    cfg = RunConfig.from_flat(
        {"dataset": args.dataset, "max_samples": args.samples, **RECIPE, "steps": args.steps}
    )
    train_s, model = timed(lambda: train_model(cfg, dataset))
    print(
        f"{args.dataset}: {len(dataset.train)} train / {len(dataset.test)} test; load {load_s:.1f} s, "
        f"{args.steps} training steps {train_s:.1f} s"
    )

    capped, y_train, y_test = probe.labelled_split(dataset)
    x = denoise.held_out_images(dataset)
    tasks = {
        "codes probe": lambda: probe.probe_sets(
            {"codes": probe.code_features(model, capped)}, y_train, y_test
        ),
        "baseline probes": lambda: probe.probe_sets(probe.baseline_features(capped, 196), y_train, y_test),
        "map (PCA)": lambda: embedding.embed_2d(model, dataset, "pca"),
        "map (t-SNE)": lambda: embedding.embed_2d(model, dataset, "tsne"),
        "denoise": lambda: (
            denoise.denoise(model, x, "gaussian", 0.3),
            denoise.psnr_curve(model, x, "gaussian"),
        ),
        "anomaly": lambda: anomaly.detect(model, dataset, "noise", kind="gaussian", level=0.2),
    }
    times: dict[str, list[float]] = {name: [] for name in tasks}
    answers: dict[str, object] = {}
    for r in range(args.rounds):
        for name, fn in tasks.items():
            seconds, answers[name] = timed(fn)
            times[name].append(seconds)
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()))

    codes, base = answers["codes probe"], answers["baseline probes"]
    accuracy = {
        **{k: v.accuracy for k, v in codes["results"].items()},
        **{k: v.accuracy for k, v in base["results"].items()},
    }
    result = {
        "machine": machine_info(torch.device("cpu")),
        "dataset": args.dataset,
        "train": len(capped.train),
        "test": len(capped.test),
        "training_steps": args.steps,
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "all_s": times,
        "probe_accuracy": accuracy,
        "denoise": answers["denoise"][0].to_dict(),
        "anomaly_auc": answers["anomaly"].auc,
    }
    print("median: " + ", ".join(f"{n} {t:.2f} s" for n, t in result["median_s"].items()))
    if args.page:
        models = [train_model(cfg.replace(seed=seed), dataset) for seed in range(1, 2 * args.rounds + 1)]
        page = page_times(cfg, models)
        result["page_all_s"] = page
        result["page_median_s"] = {name: statistics.median(t) for name, t in page.items()}
        print("page, median: " + ", ".join(f"{n} {t:.2f} s" for n, t in result["page_median_s"].items()))
    print("probe accuracy: " + ", ".join(f"{n} {a:.1%}" for n, a in accuracy.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def page_times(cfg: RunConfig, models: list) -> dict[str, list[float]]:
    """Seconds of AppTest runs of the Applications page, Feature learning shown: importing each model zip
    (the first: nothing cached; the others: the dataset's baseline probes cached) and a rerun after each."""
    import pytest
    from streamlit.testing.v1 import AppTest

    from sae_core.store import export

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "tests"))
    from apptest_helpers import pin_navigation_mode  # a server's navigation mode, as the page tests run

    patch = pytest.MonkeyPatch()
    pin_navigation_mode(patch)
    times: dict[str, list[float]] = {"first model": [], "new model": [], "cached rerun": []}
    try:
        at = AppTest.from_file(str(root / "app.py"), default_timeout=600)
        at.run()
        at.switch_page("pages/applications.py").run()
        at.radio(key="app_source").set_value("A model zip downloaded from Train").run()
        for i, model in enumerate(models):
            raw = export.zip_bytes(model, cfg, None, image_shape=(28, 28))
            upload = at.file_uploader(key="app_upload").set_value((f"m{i}.zip", raw, "application/zip"))
            seconds, _ = timed(upload.run)
            assert not at.exception, [e.value for e in at.exception]
            assert any(m.label.startswith("Hidden codes") for m in at.metric), "no probe on the page"
            times["first model" if i == 0 else "new model"].append(seconds)
            times["cached rerun"].append(timed(at.run)[0])
            print(f"page, model {i}: {seconds:.2f} s, rerun {times['cached rerun'][-1]:.2f} s", flush=True)
    finally:
        patch.undo()
    return times


if __name__ == "__main__":
    main()
