"""`BlockTrainer`: the cells of a sweep that share everything but ρ, β, λ and the seed, trained as one.

There is no second copy of the models here. A block holds one model of its variant (built by
`models.build`, as a run builds it) and its cells' parameters stacked along a leading cell axis; one
step runs the model's own forward pass and the run's own objective (`train.objective.loss_terms`) for
every cell at once with torch.func (`functional_call` under `vmap`), and ordinary autograd gives each
cell the gradient of its own objective (the cells are independent, so the gradient of their sum is each
one's own). Whatever a variant or a penalty does, its sweep does the same. Once a block's batching and
schedule are settled, that same step is recorded once and replayed (sae_core.sweep.traced); the eager
path stays the reference, and the one every step takes that cannot be traced.

It reproduces what `sae_core.train.trainer.Trainer` does for each cell on its own:
- initial weights: `models.build_seeded(..., seed)` (cells with the same seed share them);
- batch order: a `torch.Generator` seeded with the cell's seed, a `randperm` per epoch, the remainder of
  an epoch dropped; cells that share a seed share their batches (the batch is then not copied per cell);
- training noise (denoising, VAE): drawn by the model's `draw_noise` from the run's noise generator
  (`trainer.noise_generator(seed)`), one per distinct seed;
- the optimizer: torch's own Adam kernel (fused where the Trainer fuses it, called by
  sae_core.sweep.optimizer) or SGD over the stacked tensors; both are elementwise, so the stack steps
  exactly as each cell's tensors would;
- divergence: a cell whose loss turns NaN or infinite is restored to its last good weights (as the
  Trainer restores them) and frozen there; the other cells go on.
tests/test_sweep.py checks every registered variant's cells against their own Trainers.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from sae_core import images
from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset
from sae_core.models import build, build_seeded
from sae_core.models.base import ModelSettings
from sae_core.sweep.optimizer import block_optimizer
from sae_core.sweep.traced import TracedStep
from sae_core.train import metrics
from sae_core.train.history import LossHistory
from sae_core.train.objective import loss_terms
from sae_core.train.trainer import BatchOrder, divergence_message, noise_generator

HISTORY_CAP = 512
"""Loss-history points kept per cell (sae_core.train.history): a grid of 36 cells stays small to copy."""
THUMB_UNITS = 16
"""Filters in a cell's thumbnail (the first units, a 4 × 4 montage)."""


class CellSettings:
    """One cell's model settings as the objective reads them: ρ, β and λ the cell's own (0-dim tensors under
    vmap; λ a plain 0 when no cell of the block decays its weights), every other field the block's."""

    def __init__(self, model: ModelSettings, rho: Any, beta: Any, weight_decay: Any) -> None:
        self._model, self.rho, self.beta, self.weight_decay = model, rho, beta, weight_decay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class CellObjective(nn.Module):
    """One cell's objective terms as a module, so that functional_call puts the cell's tensors in place for
    the whole objective (the weight decay and the variants' own terms read the weights too), not only
    for the forward pass. Its parameters are the model's, under "model."."""

    def __init__(self, model: nn.Module, settings: ModelSettings) -> None:
        super().__init__()
        self.model, self.settings = model, settings

    def forward(self, x, noise, rho, beta, lam) -> torch.Tensor:
        """[T] the terms of `loss_terms`, in its order (the last is the total)."""
        out = self.model(x, noise=noise)
        terms = loss_terms(self.model, x, out, CellSettings(self.settings, rho, beta, lam))
        return torch.stack(list(terms.values()))


class BlockTrainer:
    """G cells of one kind. x: the training data on the device (shared by every block of a sweep)."""

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
        self.settings = cfg.model
        self.lr = cfg.train.lr
        self.seeds = list(dict.fromkeys(c.train.seed for c in configs))
        self.seed_index = torch.tensor([self.seeds.index(c.train.seed) for c in configs], device=device)
        shape = tuple(dataset.image_shape)
        built = [build_seeded(cfg.model, dataset.n_inputs, shape, seed) for seed in self.seeds]
        self.model = built[0].to(device)
        """The block's model: its code runs every cell (functional_call); its own tensors are not trained."""
        self.viewer = copy.deepcopy(self.model)
        """A model each cell's weights are loaded into to evaluate it, as its run's snapshot evaluates."""
        pick = self.seed_index.tolist()
        states = [dict(m.named_parameters()) for m in built]
        self.p: dict[str, torch.Tensor] = {
            name: torch.stack([states[s][name].detach() for s in pick]).to(device).requires_grad_()
            for name, _ in self.model.named_parameters()
        }
        self.buffers = {
            name: torch.stack([dict(m.named_buffers())[name] for m in (built[s] for s in pick)]).to(device)
            for name, _ in self.model.named_buffers()
        }
        self.rho, self.beta = self._column("rho"), self._column("beta")
        lam = self._column("weight_decay")
        self.lam = lam if bool((lam > 0).any()) else None  # no cell decays: the term is a plain 0
        self.optimizer = block_optimizer(list(self.p.values()), cfg, device)
        self.orders = [BatchOrder(self.n, batch_size, s, device) for s in self.seeds]
        self.noise = [noise_generator(s, device) for s in self.seeds]
        self._vmapped: dict[tuple, Any] = {}
        self.traced = TracedStep(self.model, self._objective)
        self.trace = True
        """Whether steps may replay a traced graph (False: always the eager path, the reference)."""
        self.terms = self._term_names()
        self.histories = [LossHistory(HISTORY_CAP) for _ in configs]
        self._pending: list[torch.Tensor] = []
        self._good = self._previous = (0, self._copy())
        self.frozen: dict[int, dict[str, torch.Tensor]] = {}
        """Diverged cells: their restored weights, put back after every step."""
        self.messages: dict[int, str] = {}
        self.seconds = 0.0

    def _column(self, name: str) -> torch.Tensor:
        values = [c.flat()[name] for c in self.configs]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _term_names(self) -> tuple[str, ...]:
        """The objective's terms, in the order a run records them (one evaluation of the first cell)."""
        xb = self.x[: min(2, self.n)]
        with torch.no_grad():
            out = self.model(xb, noise=self.model.draw_noise(xb, torch.Generator(device=self.device)))
            lam = 0.0 if self.lam is None else self.lam[0]
            settings = CellSettings(self.settings, self.rho[0], self.beta[0], lam)
            return tuple(loss_terms(self.model, xb, out, settings))

    @property
    def size(self) -> int:
        return len(self.configs)

    @property
    def all_frozen(self) -> bool:
        return len(self.frozen) == self.size

    # ----- stepping -------------------------------------------------------------------------------------
    def _batch(self) -> torch.Tensor:
        """[B, D] when the cells share one seed, else [S, B, D]: each seed's Trainer batch."""
        b = self.batch_size
        if b == self.n:
            return self.x
        if len(self.seeds) == 1:
            return self.x.index_select(0, self.orders[0].next())
        idx = torch.cat([order.next() for order in self.orders])
        return self.x.index_select(0, idx).view(len(self.seeds), b, -1)

    def _noise(self, xb: torch.Tensor) -> torch.Tensor | None:
        """The training noise of this step for the batch `_batch` gave: shared like the batch with one
        seed, else [G, ...] (one draw per seed, cells that share a seed share it)."""
        if len(self.seeds) == 1 and xb.ndim == 2:
            return self.model.draw_noise(xb, self.noise[0])
        rows = [xb] * len(self.seeds) if xb.ndim == 2 else list(xb)
        draws = [self.model.draw_noise(r, g) for r, g in zip(rows, self.noise, strict=True)]
        return None if draws[0] is None else torch.stack(draws).index_select(0, self.seed_index)

    def _per_cell(self, xb: torch.Tensor) -> torch.Tensor:
        """A per-seed [S, B, D] batch as [G, B, D]; a shared [B, D] stays shared."""
        return xb if xb.ndim == 2 else xb.index_select(0, self.seed_index)

    def _objective(self, x_dim: int | None, noise_dim: int | None):
        """The cells' objective terms [G, T] as one vmapped call (cached per batching of its inputs)."""
        key = (x_dim, noise_dim)
        if key not in self._vmapped:
            objective = CellObjective(self.model, self.settings)

            def cell(params, buffers, x, noise, rho, beta, lam):
                return functional_call(
                    objective, (params, buffers), (x, noise, rho, beta, lam), tie_weights=False
                )

            lam_dim = None if self.lam is None else 0
            dims = (0, 0, x_dim, noise_dim, 0, 0, lam_dim)
            self._vmapped[key] = vmap(cell, in_dims=dims, randomness="error")
        return self._vmapped[key]

    def step(self, step: int, total_steps: int) -> None:
        """One optimisation step of every cell (step: steps done so far): the traced graph of this batching
        and schedule state where there is one (sae_core.sweep.traced), else eager autograd."""
        t0 = time.perf_counter()
        state = self.traced.set_step_(step, total_steps)  # a schedule the cells share (k-sparse's k)
        batch = self._batch()
        noise = self._noise(batch)
        xb = self._per_cell(batch)
        x_dim = None if xb.ndim == 2 else 0
        noise_dim = None if noise is None or (x_dim is None and len(self.seeds) == 1) else 0
        lam = 0.0 if self.lam is None else self.lam
        params = {f"model.{name}": p for name, p in self.p.items()}
        buffers = {f"model.{name}": b for name, b in self.buffers.items()}
        inputs = (params, buffers, xb, noise, self.rho, self.beta, lam)
        key = (x_dim, noise_dim, self.lam is not None)
        graph = self.traced.graph(key, state, step, total_steps, inputs) if self.trace else None
        self.optimizer.zero_grad(set_to_none=True)
        if graph is None:
            terms = self._objective(x_dim, noise_dim)(*inputs)  # [G, T]
            terms[:, -1].sum().backward()  # each cell's gradient is its own total's
            terms = terms.detach()
        else:
            with torch.no_grad():  # the graph holds the backward operations itself
                terms, grads = graph(*inputs)
            for p, grad in zip(self.p.values(), grads, strict=True):
                p.grad = grad
        self.optimizer.step()
        with torch.no_grad():
            for g, saved in self.frozen.items():
                for name, p in self.p.items():
                    p[g] = saved[name]
        self._pending.append(terms.T)
        self.seconds += time.perf_counter() - t0

    def sync(self, step: int) -> None:
        """Move pending losses into each cell's history (step: steps done); restore and freeze a cell whose
        loss or weights became NaN or infinite."""
        t0 = time.perf_counter()
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
                    range(first, step + 1), dict(zip(self.terms, values[:, :, g].T, strict=True))
                )
        with torch.no_grad():
            finite = torch.stack([p.isfinite().flatten(1).all(dim=1) for p in self.p.values()]).all(dim=0)
        for g in np.flatnonzero(~finite.cpu().numpy()).tolist():
            if g not in self.frozen:
                self._diverge(g, step, None)
        if self._good[0] != step:
            self._previous = self._good
        self._good = (step, self._copy())
        self.seconds += time.perf_counter() - t0

    def _diverge(self, g: int, step: int, row: np.ndarray | None) -> None:
        term = None
        if row is not None:
            bad = [n for n, v in zip(self.terms, row, strict=True) if not np.isfinite(v) and n != "total"]
            term = bad[0] if bad else "total"
        good = self._good
        if row is not None and step == good[0] + 1:  # as Trainer._diverge: that copy itself blew up
            good = self._previous
        saved = {name: t[g].clone() for name, t in good[1].items()}
        with torch.no_grad():
            for name, p in self.p.items():
                p[g] = saved[name]
        self.frozen[g] = saved
        self.histories[g].truncate(good[0])
        self.messages[g] = divergence_message(step, term, good[0], self.lr)

    def _copy(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.p.items()}

    # ----- reading the cells ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, probe: torch.Tensor, step: int, total_steps: int) -> list[dict]:
        """Per cell: probe metrics (metrics.summary, plus dead_units), rho_hat [units] and a filter thumbnail,
        each computed on the cell's model as its run's snapshot computes them."""
        model = self.viewer
        if step > 0:
            model.set_step_(step - 1, total_steps)
        out = []
        shape = model.filter_shape(self.dataset.image_shape)
        for g in range(self.size):
            model.load_state_dict(self.state_dict(g, device=self.device), strict=True)
            recon, codes = metrics.forward_all(model, probe)
            active = model.active(codes)
            values = metrics.summary(probe, recon, codes, active)
            values["dead_units"] = int((~active.any(dim=0)).sum())
            values.update(self._truth_metrics(model))
            filters = model.filters()[:THUMB_UNITS].detach().cpu().numpy()
            out.append(
                {
                    "metrics": values,
                    "rho_hat": codes.mean(dim=0).cpu().numpy(),
                    "thumbnail": images.filter_montage(filters, shape),
                }
            )
        return out

    def _truth_metrics(self, model: nn.Module) -> dict:
        """With ground truth: features_found and features_total (and mmcs for cosine), matched as the
        Trainer matches them (its decoder columns, else its filters; metrics.feature_match)."""
        truth = self.dataset.ground_truth
        if truth is None:
            return {}
        decoder = model.dictionary()
        features = model.filters() if decoder is None else decoder.T
        if features.shape[1] != truth.shape[1]:
            return {}
        match = metrics.feature_match(features, truth.to(self.device), self.dataset.truth_similarity)
        return metrics.truth_summary(match.cpu(), self.dataset.truth_similarity)

    def state_dict(self, g: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Cell g's weights as its model's state dict (copies, on the CPU unless told)."""
        state = {name: p[g].detach().to(device, copy=True) for name, p in self.p.items()}
        state.update({name: b[g].to(device, copy=True) for name, b in self.buffers.items()})
        return state


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
