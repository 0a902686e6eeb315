"""`BlockTrainer`: the cells of a sweep that share one shape, trained as one stack
(sae_core.sweep.batched_math).

It reproduces what sae_core.train.trainer.Trainer does for each cell on its own:
- initial weights: `torch.manual_seed(seed)` then `models.build` (cells with the same seed share them);
- batch order: a `torch.Generator` seeded with the cell's seed, a `randperm` per epoch, the remainder of
  an epoch dropped; cells that share a seed share their batches (one broadcast matmul for them all);
- denoising noise: drawn as the model draws it from the global RNG right after the build, here from a
  generator per seed that starts in that state;
- the optimizer: torch's own Adam (fused where the Trainer fuses it) or SGD over the stacked tensors; both
  are elementwise, so the stack steps exactly as each cell's tensors would;
- divergence: a cell whose loss turns NaN or infinite is restored to its last good weights (as the
  Trainer restores them) and frozen there; the other cells go on.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from sae_core import images
from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset
from sae_core.models import build
from sae_core.models.base import ACTIVE_THRESHOLD, is_active
from sae_core.models.ksparse import scheduled_k
from sae_core.sweep.batched_math import (
    Arch,
    BlockParams,
    Hyper,
    draw_corruption,
    forward,
    objective_and_grads,
)
from sae_core.train import metrics
from sae_core.train.history import LossHistory

HISTORY_CAP = 512
"""Loss-history points kept per cell (sae_core.train.history): a grid of 36 cells stays small to copy."""
THUMB_UNITS = 16
"""Filters in a cell's thumbnail (the first units, a 4 × 4 montage)."""
EVAL_FLOATS = 1 << 24
"""Largest [cells, probe, inputs] reconstruction evaluated at once (64 MB of float32)."""
STATE_NAMES = {"W1": "encoder.weight", "b1": "encoder.bias", "W2": "decoder.weight", "b2": "decoder.bias"}
KSPARSE_NAMES = {**STATE_NAMES, "b2": "decoder_bias"}


def arch_of(cfg: RunConfig) -> Arch:
    """What the block's cells share; the penalty is the objective's (k-sparse's own top-k)."""
    m = cfg.model
    penalty = m.effective_penalty
    if m.variant == "ksparse":
        return Arch("linear", m.output, penalty, topk=True, tied=m.tied, model=m)
    corruption = m.corruption if m.variant == "denoising" else None
    return Arch(m.hidden_activation, m.output, penalty, m.uses_topk, False, corruption, m.noise_level, m)


class BlockTrainer:
    """G cells of one shape. x: the training data on the device (shared by every block of a sweep)."""

    def __init__(
        self,
        configs: list[RunConfig],
        dataset: Dataset,
        x: torch.Tensor,
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.configs, self.dataset, self.x, self.device = configs, dataset, x, device
        self.batch_size, self.n = batch_size, x.shape[0]
        cfg = configs[0]
        self.arch = arch_of(cfg)
        self.lr = cfg.train.lr
        self.seeds = list(dict.fromkeys(c.train.seed for c in configs))
        self.seed_index = torch.tensor([self.seeds.index(c.train.seed) for c in configs], device=device)
        names = KSPARSE_NAMES if cfg.model.variant == "ksparse" else STATE_NAMES
        states, self.noise = self._init(cfg, names)
        self.names = {k: v for k, v in names.items() if v in states[0]}
        pick = self.seed_index.tolist()
        self.p: BlockParams = {
            k: torch.stack([states[s][v] for s in pick]).to(device).contiguous()
            for k, v in self.names.items()
        }
        self.hyper = Hyper(*(self._column(f) for f in ("rho", "beta", "weight_decay")))
        self.optimizer = self._optimizer(cfg)
        self.orders = [torch.Generator().manual_seed(s) for s in self.seeds]
        self._order = torch.empty(0, 0, dtype=torch.long)
        self._cursor = 0
        self.histories = [LossHistory(HISTORY_CAP) for _ in configs]
        self._pending: list[torch.Tensor] = []
        self._good = self._previous = (0, self._copy())
        self.frozen: dict[int, dict[str, torch.Tensor]] = {}
        """Diverged cells: their restored weights, put back after every step."""
        self.messages: dict[int, str] = {}
        self.seconds = 0.0

    def _init(self, cfg: RunConfig, names: dict[str, str]) -> tuple[list[dict], list[torch.Generator]]:
        """Per distinct seed: the Trainer's initial state dict and the generator its denoising noise uses."""
        states, noise = [], []
        shape = self.dataset.image_shape
        for seed in self.seeds:
            with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG as it was
                torch.manual_seed(seed)
                model = build(cfg.model, self.dataset.n_inputs, shape)
                state = torch.get_rng_state()
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            if self.device.type == "cpu":
                noise.append(torch.Generator().set_state(state))
            else:  # on a GPU the Trainer draws from the device's RNG, seeded and not yet used
                noise.append(torch.Generator(self.device).manual_seed(seed))
        self.threshold = ACTIVE_THRESHOLD[model.activation]
        return states, noise

    def _column(self, name: str) -> torch.Tensor:
        values = [c.flat()[name] for c in self.configs]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _optimizer(self, cfg: RunConfig) -> torch.optim.Optimizer:
        params = list(self.p.values())
        if cfg.train.optimizer == "adam":  # as training.make_optimizer
            return torch.optim.Adam(params, lr=self.lr, fused=self.device.type in ("cpu", "cuda"))
        return torch.optim.SGD(params, lr=self.lr, momentum=cfg.train.momentum)

    @property
    def size(self) -> int:
        return len(self.configs)

    @property
    def all_frozen(self) -> bool:
        return len(self.frozen) == self.size

    # ----- stepping -------------------------------------------------------------------------------------
    def k_at(self, step: int, total_steps: int, training: bool = True) -> int | None:
        """The top-k of the cells' codes after `step` steps (None: no top-k), as the models keep it."""
        m = self.configs[0].model
        if m.variant != "ksparse":
            return m.k if m.uses_topk else None
        k = m.k if step == 0 else scheduled_k(step - 1, total_steps, m.k, m.k_start, m.k_anneal)
        return k if training else min(m.hidden, round(m.alpha * k))

    def _batch(self) -> torch.Tensor:
        """[B, D] when the cells share one seed, else [G, B, D]: each cell's Trainer batch."""
        b = self.batch_size
        if b == self.n:
            return self.x
        if self._cursor + b > self._order.shape[1]:
            self._order = torch.stack([torch.randperm(self.n, generator=g) for g in self.orders]).to(
                self.device
            )
            self._cursor = 0
        idx = self._order[:, self._cursor : self._cursor + b]
        self._cursor += b
        if len(self.seeds) == 1:
            return self.x.index_select(0, idx[0])
        return self.x.index_select(0, idx.reshape(-1)).view(len(self.seeds), b, -1)

    def _per_cell(self, t: torch.Tensor) -> torch.Tensor:
        """A per-seed [S, B, D] tensor as [G, B, D]; a shared [B, D] stays shared."""
        return t if t.ndim == 2 else t.index_select(0, self.seed_index)

    def step(self, step: int, total_steps: int) -> None:
        """One optimisation step of every cell (step: steps done so far)."""
        t0 = time.perf_counter()
        xb = self._batch()
        x_in = xb
        if self.arch.corruption is not None:
            rows = [xb] if xb.ndim == 2 else list(xb)
            noisy = [draw_corruption(r, self.arch, g) for r, g in zip(rows, self.noise, strict=True)]
            x_in = noisy[0] if xb.ndim == 2 else torch.stack(noisy)
        k = self.k_at(step + 1, total_steps)
        terms, grads = objective_and_grads(
            self.p, self._per_cell(x_in), self._per_cell(xb), self.arch, self.hyper, k
        )
        for name, p in self.p.items():
            p.grad = grads[name]
        self.optimizer.step()
        for g, saved in self.frozen.items():
            for name, p in self.p.items():
                p.data[g] = saved[name]
        self._pending.append(terms)
        self.seconds += time.perf_counter() - t0

    def sync(self, step: int) -> None:
        """Move pending losses into each cell's history (step: steps done); restore and freeze a cell whose
        loss or weights became NaN or infinite."""
        t0 = time.perf_counter()
        terms = self.arch.terms
        if self._pending:
            values = torch.stack(self._pending).cpu().numpy()  # [S, T, G]
            self._pending = []
            first = step - len(values) + 1
            for g in range(self.size):
                if g in self.frozen:
                    continue
                bad = np.flatnonzero(~np.isfinite(values[:, :, g]).all(axis=1))
                if bad.size:
                    self._diverge(g, first + int(bad[0]), values[bad[0], :, g])
                    continue
                self.histories[g].extend(
                    range(first, step + 1), dict(zip(terms, values[:, :, g].T, strict=True))
                )
        finite = torch.stack([p.isfinite().flatten(1).all(dim=1) for p in self.p.values()]).all(dim=0)
        for g in np.flatnonzero(~finite.cpu().numpy()).tolist():
            if g not in self.frozen:
                self._diverge(g, step, None)
        if self._good[0] != step:
            self._previous = self._good
        self._good = (step, self._copy())
        self.seconds += time.perf_counter() - t0

    def _diverge(self, g: int, step: int, row: np.ndarray | None) -> None:
        term = "the weights"
        if row is not None:
            bad = [
                n for n, v in zip(self.arch.terms, row, strict=True) if not np.isfinite(v) and n != "total"
            ]
            term = f"the {bad[0] if bad else 'total'} term"
        good = self._good
        if row is not None and step == good[0] + 1:  # as Trainer._diverge: that copy itself blew up
            good = self._previous
        saved = {name: t[g].clone() for name, t in good[1].items()}
        for name, p in self.p.items():
            p.data[g] = saved[name]
        self.frozen[g] = saved
        self.histories[g].truncate(good[0])
        self.messages[g] = (
            f"Training diverged at step {step}: {term} became NaN or infinite. Weights were restored to "
            f"step {good[0]}. Try a smaller learning rate (now {self.lr:g}) or a smaller β / λ."
        )

    def _copy(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.p.items()}

    # ----- reading the cells ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, probe: torch.Tensor, step: int, total_steps: int) -> list[dict]:
        """Per cell: probe metrics (metrics.summary, plus dead_units), rho_hat [H] and a filter thumbnail."""
        k = self.k_at(step, total_steps, training=False)
        chunk = max(1, EVAL_FLOATS // max(1, probe.numel()))
        out = []
        for start in range(0, self.size, chunk):
            part = {name: p[start : start + chunk] for name, p in self.p.items()}
            recon, codes = forward(part, probe, self.arch, k)
            active = is_active(codes, self.threshold)
            for g in range(recon.shape[0]):
                values = metrics.summary(probe, recon[g], codes[g], active[g])
                values["dead_units"] = int((~active[g].any(dim=0)).sum())
                out.append({"metrics": values, "rho_hat": codes[g].mean(dim=0).cpu().numpy()})
        self._truth_metrics(out)
        filters = self.p["W1"][:, :THUMB_UNITS].cpu().numpy()
        for g, cell in enumerate(out):
            cell["thumbnail"] = images.filter_montage(filters[g], self.dataset.image_shape)
        return out

    def _truth_metrics(self, out: list[dict]) -> None:
        """With ground truth, each cell's features_found and features_total (and mmcs for cosine) from its
        decoder columns, matched as the Trainer matches them (metrics.feature_match, by the dataset's
        similarity)."""
        truth = self.dataset.ground_truth
        if truth is None or "W2" not in self.p:
            return
        truth = truth.to(self.device)
        for g, cell in enumerate(out):
            features = self.p["W2"][g].T  # [H, D]: what each unit draws
            if features.shape[1] != truth.shape[1]:
                return
            match = metrics.feature_match(features, truth, self.dataset.truth_similarity)
            cell["metrics"].update(metrics.truth_summary(match.cpu(), self.dataset.truth_similarity))

    def state_dict(self, g: int) -> dict[str, torch.Tensor]:
        """Cell g's weights as its model's state dict (CPU copies)."""
        return {self.names[name]: p[g].detach().to("cpu", copy=True) for name, p in self.p.items()}


def model_from_state(
    cfg: RunConfig, state: dict, image_shape: tuple[int, int], step: int, total_steps: int
) -> nn.Module:
    """The ordinary model of cfg (models.build) with a cell's weights (tensors or numpy arrays), in eval
    mode, its k-sparse schedule where the Trainer's model would be after `step` of `total_steps` steps."""
    model = build(cfg.model, image_shape[0] * image_shape[1], tuple(image_shape))
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()})
    if step > 0:
        model.set_step_(step - 1, total_steps)
    return model.eval()
