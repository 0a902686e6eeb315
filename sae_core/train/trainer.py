"""The trainer: steps an autoencoder on an in-memory dataset and hands out immutable snapshots.

No printing, no Streamlit: the CLI, the benchmark and the web page all consume `Snapshot`s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

from sae_core.config.run import LIVE_FIELDS, RunConfig
from sae_core.data.datasets import Dataset
from sae_core.models import AEOutput, build_seeded
from sae_core.penalties.spec import Term
from sae_core.train import metrics
from sae_core.train.history import LossHistory
from sae_core.train.lbfgs import LBFGSStepper
from sae_core.train.objective import loss_terms
from sae_core.train.snapshot import Snapshot

KL_CURVE_POINTS = 400
"""Points of the per-unit penalty curve (KL(ρ‖ρ̂)) each snapshot carries for its view."""
__all__ = ["DivergedError", "PROBE_SIZE", "SHOW_SIZE", "Snapshot", "Trainer", "resolve_device"]

PROBE_SIZE = 1000
"""Samples the live views and snapshot metrics are computed on (fixed for the whole run)."""
SHOW_SIZE = 10
"""Inputs shown with their reconstructions."""
EXAMPLES_SIZE = 20
"""Training inputs in the data strip."""
TEST_PROBE_PIXELS = 1 << 18
"""The held-out probe is the test split's first PROBE_SIZE samples, but no more than this many pixels in
all: 1000 samples of 8×8, 334 of 28×28. Its forward pass runs at every snapshot (four a second in the
app); on 784→196 a full 1000 would add ~30 ms, a third of the snapshot, on one CPU thread."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; a named device that is missing raises ValueError."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not has_mps:
        raise ValueError("device mps was asked for but Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


class BatchOrder:
    """Which samples each step's batch holds: a random permutation of the n samples per epoch from a
    generator seeded with the run's seed, cut into batches of `size`; the remainder of an epoch is dropped.
    A run has one; a sweep's block one per distinct seed, so each cell sees its own run's batches."""

    def __init__(self, n: int, size: int, seed: int, device: torch.device) -> None:
        self.n, self.size, self.device = n, size, device
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long, device=device)
        self._cursor = 0

    def next(self) -> torch.Tensor:
        """[size] the next batch's sample indices, on the device."""
        if self._cursor + self.size > self._order.numel():
            self._order = torch.randperm(self.n, generator=self.generator).to(self.device)
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + self.size]
        self._cursor += self.size
        return idx


def noise_generator(seed: int, device: torch.device) -> torch.Generator:
    """A run's (or a sweep cell's) generator of training noise, on the device the noise is used on."""
    return torch.Generator(device=device).manual_seed(seed)


FUSED_ADAM_DEVICES = ("cpu", "cuda")
"""Devices where a run's Adam is torch's fused kernel (`make_optimizer`)."""


class DivergedError(RuntimeError):
    """The objective became NaN or infinite; the trainer restored the last good weights."""


def make_optimizer(params: list[torch.Tensor], cfg: RunConfig, device: torch.device) -> torch.optim.Optimizer:
    """The config's optimizer over `params` (a model's, or a sweep block's stacked tensors) on `device`."""
    t = cfg.train
    if t.optimizer == "adam":
        # The fused kernel does Adam's whole update in one op per device instead of a dozen per tensor:
        # about 1.15x the steps/s of the default on the 64→25 classroom model (benchmarks/README.md).
        # It agrees with the default to ~1e-7 and is as deterministic.
        return torch.optim.Adam(params, lr=t.lr, fused=device.type in FUSED_ADAM_DEVICES)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum)
    # One trainer step = one L-BFGS iteration; its curvature history persists across step() calls, and
    # `lbfgs.LBFGSStepper` spares the evaluation each call would otherwise repeat.
    return torch.optim.LBFGS(
        params, lr=t.lr, max_iter=1, max_eval=25, history_size=20, line_search_fn="strong_wolfe"
    )


def divergence_message(step: int, term: str | None, restored: int, lr: float) -> str:
    """What a run (or a sweep's cell) says when its objective's `term` (None: the weights) turned NaN or
    infinite at `step` and its weights went back to step `restored`."""
    what = "the weights" if term is None else f"the {term} term"
    return (
        f"Training diverged at step {step}: {what} became NaN or infinite. Weights were restored to "
        f"step {restored}. Try a smaller learning rate (now {lr:g}) or a smaller β / λ."
    )


def scheduled_lr(cfg: RunConfig, step: int, total: int) -> float:
    """The learning rate of step `step` (from 0) of a `total`-step run under the config's lr_schedule.

    cosine (Loshchilov & Hutter, SGDR, 2017, without restarts): lr·½(1 + cos(π·step/total)), from lr at
    the first step down towards 0 at the last; past the end (a run extended live) it stays at 0's side.
    """
    t = cfg.train
    if t.lr_schedule == "constant" or total <= 0:
        return t.lr
    return t.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))


class Trainer:
    """Owns a model, its optimizer and the data (one tensor on the device)."""

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        device: torch.device | str | None = None,
        initial_state: Mapping[str, torch.Tensor] | None = None,
        start_step: int = 0,
        sparsity_term: Term | None = None,
    ) -> None:
        """initial_state: weights to start from instead of the seeded initialisation (an imported or saved
        run, a sweep's cell); its keys and shapes must be the model's (load_state_dict's strict check).
        start_step: the step those weights are at, so that the step count, schedules and the run's
        length go on from there; the optimizer's state starts fresh. sparsity_term: a sparsity term in
        place of the config's penalty's, in the objective and the held-out terms (Theory's exercise
        trains with the student's formula); the snapshot's KL views still show the built-in KL."""
        self.config = config
        self.sparsity_term = sparsity_term
        self.dataset = dataset
        self.device = torch.device(device) if device is not None else resolve_device(config.train.device)
        seed = config.train.seed
        self.model = build_seeded(config.model, dataset.n_inputs, dataset.image_shape, seed)
        if initial_state is not None:
            self.model.load_state_dict({k: torch.as_tensor(v) for k, v in initial_state.items()})
        self.model.to(self.device)
        self._set_optimizer(make_optimizer(list(self.model.parameters()), config, self.device))
        self.x = dataset.train.to(self.device)
        self.n = self.x.shape[0]
        self.noise_generator = noise_generator(seed, self.device)
        """The training noise's (`Autoencoder.draw_noise`): the run's own, so runs trained at the same time
        draw what each would draw alone."""
        self._batches = BatchOrder(self.n, self.batch_size, seed, self.device)
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.step_count = start_step
        self.seconds = 0.0
        self.evaluations = 0
        """Objective evaluations so far (one per step, more for L-BFGS: its line search evaluates too)."""
        self.samples = 0
        """Samples passed through the objective so far (batch size × evaluations)."""
        self._pending: list[torch.Tensor] = []  # per-step loss vectors not yet synced to the CPU
        self._terms: list[str] = []
        self.losses_log = LossHistory()
        """Every term's loss by step, bounded (history.HISTORY_CAP points, evenly spread)."""
        self._pending_config: RunConfig | None = None
        self._last_good = self._state_copy()
        self._previous_good = self._last_good  # the copy before: see _diverge
        self.message: str | None = None
        probe = torch.randperm(self.n, generator=torch.Generator().manual_seed(1234))[:PROBE_SIZE]
        self.probe = self.x[probe.to(self.device)]
        labels = dataset.train_labels
        self.probe_labels = None if labels is None else np.asarray(labels)[probe.numpy()]
        shown = dataset.test if dataset.test is not None and len(dataset.test) >= SHOW_SIZE else dataset.train
        self.show = shown[:SHOW_SIZE].to(self.device, copy=True)  # no view of the dataset, which runs share
        # Held-out probe: the test split's first samples (it is already in random order).
        test, n_test = dataset.test, min(PROBE_SIZE, max(SHOW_SIZE, TEST_PROBE_PIXELS // dataset.n_inputs))
        self.test_probe = None if test is None or len(test) == 0 else test[:n_test].to(self.device, copy=True)
        self.test_log = LossHistory()
        """The held-out terms at the steps that had a snapshot, bounded like losses_log."""
        self.examples = _numpy(dataset.train[:EXAMPLES_SIZE])
        self.examples.setflags(write=False)  # one array shared by every snapshot
        self.truth = None if dataset.ground_truth is None else dataset.ground_truth.to(self.device)
        self.truth_array = None if dataset.ground_truth is None else _numpy(dataset.ground_truth)
        if self.truth_array is not None:
            self.truth_array.setflags(write=False)  # shared by every snapshot, like the examples

    # ----- sizes -----------------------------------------------------------------------------------------
    @property
    def history_steps(self) -> np.ndarray:
        """[T] the steps of the recorded losses (a bounded, evenly spread subset: `losses_log`)."""
        return self.losses_log.steps()

    @property
    def history(self) -> dict[str, np.ndarray]:
        """term -> [T] the recorded losses at `history_steps`."""
        return self.losses_log.values()

    @property
    def batch_size(self) -> int:
        b = self.config.train.batch_size
        return self.n if b == 0 or b >= self.n or self.config.train.optimizer == "lbfgs" else b

    @property
    def total_steps(self) -> int:
        """The run's length in steps; 0 for a run until paused (steps 0, no epochs)."""
        t = self.config.train
        if t.epochs is None:
            return t.steps
        return max(1, math.ceil(t.epochs * self.n / self.batch_size))

    @property
    def finished(self) -> bool:
        """The run's length is reached (never true for a run until paused)."""
        return self._reached(None)

    def _reached(self, end: int | None) -> bool:
        """Whether step `end` (default: the run's end; none for a run until paused) is reached. Read
        before every step, so that a live change of the run's length counts within a section."""
        stop = end if end is not None else self.total_steps or None
        return stop is not None and self.step_count >= stop

    # ----- live hyperparameters ---------------------------------------------------------------------------
    def set_config(self, config: RunConfig) -> None:
        """Take the live fields of an already validated config at the next step (see `apply_live`).

        Raises ValueError, changing nothing, when a field outside LIVE_FIELDS differs: that needs a new model.
        """
        new, old = config.flat(), self.config.flat()
        structural = sorted(k for k in new if k not in LIVE_FIELDS and new[k] != old[k])
        if structural:
            raise ValueError(f"{', '.join(structural)} cannot change while training; rebuild the model")
        self._pending_config = config

    def apply_live(self) -> None:
        """Apply a pending live change now (the next step does it anyway)."""
        self._apply_pending()

    def _apply_pending(self) -> None:
        pending, self._pending_config = self._pending_config, None
        if pending is None:
            return
        if self.lbfgs is not None and pending.model != self.config.model:
            self.lbfgs.forget()  # same weights, another objective: its cached evaluation is stale
        self.config = pending
        for group in self.optimizer.param_groups:
            group["lr"] = pending.train.lr

    # ----- stepping -----------------------------------------------------------------------------------------
    def _next_batch(self) -> torch.Tensor:
        b = self.batch_size
        if b == self.n:
            return self.x
        return self.x.index_select(0, self._batches.next())

    def _objective(self, xb: torch.Tensor, noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        out = self.model(xb, noise=noise)
        return loss_terms(self.model, xb, out, self.config.model, self.sparsity_term)

    def _set_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.lbfgs = LBFGSStepper(optimizer) if isinstance(optimizer, torch.optim.LBFGS) else None

    def step(self) -> None:
        """One optimisation step (one L-BFGS iteration for lbfgs). Losses are synced lazily.

        The recorded loss terms are the batch's before the update for Adam and SGD (as usual), and the
        objective's at the weights after the step for L-BFGS (its line search has evaluated them anyway).
        """
        self._apply_pending()
        if self.model.set_step_(self.step_count, self.total_steps) and self.lbfgs is not None:
            self.lbfgs.forget()  # a scheduled change of the objective (k-sparse's k)
        xb = self._next_batch()
        noise = self.model.draw_noise(xb, self.noise_generator)  # one draw a step, L-BFGS's too
        if self.lbfgs is not None:
            before = self.lbfgs.evaluations
            terms = self.lbfgs.step(lambda: self._objective(xb, noise))
            evaluations = self.lbfgs.evaluations - before
        else:
            if self.config.train.lr_schedule != "constant":
                lr = scheduled_lr(self.config, self.step_count, self.total_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            terms = self._objective(xb, noise)
            terms["total"].backward()
            self.optimizer.step()
            evaluations = 1
        self.evaluations += evaluations
        self.samples += evaluations * xb.shape[0]
        if not self._terms:
            self._terms = list(terms)
        self._pending.append(torch.stack([t.detach() for t in terms.values()]))
        self.step_count += 1

    def advance(
        self,
        max_steps: int | None = None,
        deadline: float | None = None,
        keep_going: Callable[[], bool] | None = None,
        end: int | None = None,
    ) -> str:
        """Train one section: step until step `end` (default: the run's end, total_steps), `max_steps`
        steps, the time `deadline` (time.perf_counter()) or until `keep_going()` turns false; then sync.
        A run until paused (total_steps 0) has no end of its own: give it one of the other bounds.

        The section's time is added to `seconds`. Returns "running", "done" (the run's end reached) or
        "diverged" (the weights were restored and `message` says why).
        """
        self._apply_pending()
        t0 = time.perf_counter()
        taken = 0
        try:
            while (
                not self._reached(end)
                and (max_steps is None or taken < max_steps)
                and (deadline is None or time.perf_counter() < deadline)
                and (keep_going is None or keep_going())
            ):
                self.step()
                taken += 1
            self.sync()
        except DivergedError:
            return "diverged"
        finally:
            self.seconds += time.perf_counter() - t0
        return "done" if self._reached(end) else "running"

    def sync(self) -> None:
        """Move pending losses to the history; on NaN/inf restore the last good weights and raise."""
        if self._pending:
            values = torch.stack(self._pending).cpu().numpy()
            first = self.step_count - len(self._pending) + 1
            self._pending = []
            bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
            if bad_rows.size:
                self._diverge(first + int(bad_rows[0]), values[bad_rows[0]])
            terms = dict(zip(self._terms, values.T, strict=True))
            self.losses_log.extend(range(first, self.step_count + 1), terms)
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverge(self.step_count, None)
        if self._last_good["step"] != self.step_count:
            self._previous_good = self._last_good
        self._last_good = self._state_copy()

    def _diverge(self, step: int, row: np.ndarray | None) -> None:
        term = None
        if row is not None:
            bad = [n for n, v in zip(self._terms, row, strict=True) if not np.isfinite(v) and n != "total"]
            term = bad[0] if bad else "total"
        good = self._last_good
        if row is not None and step == good["step"] + 1:
            # The loss that blew up was computed on the weights saved at the last sync: restoring them would
            # blow up again at once, whatever the learning rate, so go back one copy further.
            good = self._last_good = self._previous_good
        self.model.load_state_dict(good["model"])
        self.step_count = good["step"]
        self.losses_log.truncate(self.step_count)  # forget the undone steps' losses
        self.test_log.truncate(self.step_count)
        # A fresh optimizer: its moments may hold NaN too.
        self._set_optimizer(make_optimizer(list(self.model.parameters()), self.config, self.device))
        self.message = divergence_message(step, term, self.step_count, self.config.train.lr)
        raise DivergedError(self.message)

    def _state_copy(self) -> dict:
        model = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        return {"model": model, "step": self.step_count}

    # ----- snapshots ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def snapshot(self, status: str = "running", message: str | None = None) -> Snapshot:
        """Sync, evaluate on the probe set and copy what the views need to the CPU."""
        if status not in ("diverged",):
            self.sync()
        model = self.model
        recon, codes = metrics.forward_all(model, self.probe)
        threshold = model.active_threshold
        active = model.active(codes)
        stats = metrics.unit_stats(codes, active)
        show_recon, _ = metrics.forward_all(model, self.show)
        latest = self.losses_log.latest()  # empty after a divergence at the start
        decoder = model.dictionary()
        was_training = model.training
        model.eval()
        extras = model.snapshot_extras(self.show, self.probe)
        model.train(was_training)
        penalty_codes = model.sparsity_codes(AEOutput(recon=recon, hidden=codes))
        per_unit, curve = self._penalty_curve(stats["rho_hat"])
        test = self._held_out()
        return Snapshot(
            step=self.step_count,
            total_steps=self.total_steps,
            epoch=self.step_count * self.batch_size / self.n,
            seconds=self.seconds,
            samples_per_second=self.samples / self.seconds if self.seconds else 0.0,
            evaluations=self.evaluations,
            losses=latest,
            history_steps=self.losses_log.steps(),
            history=self.losses_log.values(),
            encoder_weight=_numpy(model.filters()),
            decoder_weight=None if decoder is None else _numpy(decoder),
            filter_shape=tuple(model.filter_shape(self.dataset.image_shape)),
            rho_hat=stats["rho_hat"].cpu().numpy(),
            density=stats["density"].cpu().numpy(),
            activations=codes.cpu().numpy(),
            show_inputs=_numpy(self.show),  # on the CPU .cpu() returns self.show itself: copy
            show_recon=show_recon.cpu().numpy(),
            metrics=metrics.summary(self.probe, recon, codes, active),
            config=self.config,
            image_shape=self.dataset.image_shape,
            status=status,
            message=message or self.message,
            extras={k: np.asarray(v.detach().cpu()) for k, v in extras.items()},
            code_activation=model.activation,
            active_threshold=threshold,
            penalty_rho_hat=None if penalty_codes is None else penalty_codes.mean(dim=0).cpu().numpy(),
            kl_per_unit=per_unit,
            kl_curve=curve,
            probe_labels=self.probe_labels,
            test_metrics=test,
            test_history_steps=None if test is None else self.test_log.steps(),
            test_history=self.test_log.values(),
            **self._truth_match(decoder),
            data_examples=self.examples,
        )

    def _penalty_curve(self, rho_hat: torch.Tensor) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The penalty's per-unit curve (`PenaltySpec.unit_curve`, e.g. KL(ρ‖ρ̂)) at each unit's ρ̂ [hidden],
        and [2, KL_CURVE_POINTS] a log-spaced ρ̂ grid down to the lowest unit with the curve on it, at the
        config's ρ; (None, None) under a penalty that is not a function of ρ̂."""
        model = self.config.model
        penalty = model.penalty_spec
        if penalty.unit_curve is None:
            return None, None
        lowest = float(np.nan_to_num(rho_hat.min().item(), nan=1.0))
        grid = np.geomspace(max(penalty.unit_curve_floor, min(1e-4, lowest)), 0.9999, KL_CURVE_POINTS)
        per_unit = penalty.unit_curve(model.rho, rho_hat.double()).cpu().numpy()
        return per_unit, np.stack([grid, penalty.unit_curve(model.rho, torch.from_numpy(grid)).numpy()])

    def _held_out(self) -> dict[str, float] | None:
        """The held-out probe's metrics now; its objective terms join the test history, one point per step
        (a second snapshot at the same step, e.g. after a live change of β while paused, replaces it)."""
        if self.test_probe is None:
            return None
        values = metrics.held_out(self.model, self.test_probe, self.config.model, self.sparsity_term)
        self.test_log.record(self.step_count, {name: values[name] for name in metrics.HELD_OUT_TERMS})
        return values

    def _truth_match(self, decoder: torch.Tensor | None) -> dict:
        """The snapshot's truth fields: each true feature's best similarity with a unit's feature
        (truth_match) and that unit (truth_units), compared as the dataset says (correlation for bars,
        cosine for superposition). A unit's feature is its decoder column (what it draws) when the model
        has a linear decoder, else its encoder filter. Empty without ground truth or when the features are
        not images (conv kernels)."""
        if self.truth is None:
            return {}
        features = self.model.filters() if decoder is None else decoder.T
        if features.shape[1] != self.truth.shape[1]:
            return {}
        similarity = self.dataset.truth_similarity
        values, units = metrics.best_match(features.detach(), self.truth, similarity)
        return {
            "truth_match": values.cpu().numpy(),
            "truth_units": units.cpu().numpy(),
            "truth_similarity": similarity,
            "ground_truth": self.truth_array,
        }

    def run(self, steps: int | None = None) -> Iterator[Snapshot]:
        """Train up to `steps` more steps (default: until total_steps), yielding a snapshot every
        `snapshot_every` steps and a final one. A divergence ends the run with a 'diverged' snapshot.
        A live change of the run's length (set_config with a new steps) moves the end of a default run; a
        default run until paused (steps 0) yields until the consumer stops iterating."""
        fixed_end = None if steps is None else self.step_count + steps
        every = self.config.train.snapshot_every
        while True:
            self._apply_pending()  # a live change of the run's length moves the end of a default run
            if self._reached(fixed_end):
                return
            status = self.advance(max_steps=every - self.step_count % every, end=fixed_end)
            if status == "diverged":
                yield self.snapshot("diverged", self.message)
                return
            yield self.snapshot(status)


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy that shares no memory with the model."""
    return t.detach().cpu().numpy().copy()
