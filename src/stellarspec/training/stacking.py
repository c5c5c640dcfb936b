"""M candidate networks of one shape trained as one: stacked parameters, a vectorised Adam with
a learning rate per candidate, and early stopping by mask. Plain torch; the Lightning wrapper
is lightning_modules.BatchedClassifierModule.

Shapes: M candidates, B spectra per batch, L pixels, C classes. The candidates are the plain
nn.Modules of models.py, stacked by torch.func.stack_module_state and run by vmap over
functional_call: one forward pass over an (M, B, L) block, one backward pass for all of them.
Each model's buffers travel with it, so every candidate keeps its own dropout rate
(models.Dropout.rate) and its own pixel standardiser.

How the M forward passes run (`training.stacking`): 'vmap' is one vectorised pass; 'loop' runs
the models one after another on their slices of the stacked tensors (one backward pass and one
Adam step still serve all M). 'auto' is vmap on CUDA and loop on the CPU: there vmap's batched
kernels cost more per FLOP than the single model's (torch 2.13, 1 thread: bmm over 42 models
2.3x the time of 42 matmuls; the CNN's vmapped convolutions lose the channels-last kernels,
0.2x the single model's speed), while a loop keeps every model's own fast path and skips the
candidates early stopping has frozen.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .seeds import epoch_seed

STACKING = ("auto", "vmap", "loop")  # training.stacking (module docstring)

# Settings that may differ between the candidates of one stacked group; every other setting
# changes a shape (hidden units, batch size, encoder size, ...) or the schedule, so it splits
# the candidates into separate groups.
PER_CANDIDATE_KEYS = ("lr", "dropout", "encoder_dropout", "weight_decay", "patience")


def group_key(params: dict) -> str:
    """Candidates with equal keys can be stacked."""
    return repr(sorted((k, v) for k, v in params.items() if k not in PER_CANDIDATE_KEYS))


def state_name(name: str) -> str:
    """A parameter or buffer path ('head.classifier.0.weight') as one attribute name."""
    return name.replace(".", "__")


class Stacked:
    """Stacked copies of M models of one architecture: `params` and `buffers` map each
    parameter/buffer path to an (M, ...) tensor; `forward` runs all M at once."""

    def __init__(self, models: list[torch.nn.Module], stacking: str = "auto"):
        if stacking not in STACKING:
            raise ValueError(f"stacking must be one of {STACKING}, got {stacking!r}")
        self.params, self.buffers = stack_module_state(models)
        # A weightless copy holds the architecture; functional_call swaps the tensors in.
        self.base = copy.deepcopy(models[0]).to("meta")
        self.n_models, self.stacking = len(models), stacking

    def mode(self, device: torch.device) -> str:
        """'vmap' or 'loop' on `device` (module docstring)."""
        if self.stacking == "auto":
            return "loop" if device.type == "cpu" else "vmap"
        return self.stacking

    def forward(self, params: dict, buffers: dict, flux: torch.Tensor, training: bool,
                skip: torch.Tensor | None = None, before_each=None) -> torch.Tensor:
        """flux (M, B, L) -> logits (M, B, C). Dropout draws a different mask per model.
        Loop mode only: models where `skip` (M,) is True are not run (their logits are
        zeros), and `before_each(i)` runs before model i (the caller seeds its dropout)."""
        self.base.train(training)

        def one(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        if self.n_models > 1 and self.mode(flux.device) == "vmap":
            return vmap(one, randomness="different" if training else "error")(params, buffers,
                                                                             flux)
        # unbind: one backward node per tensor that stacks the M gradients (indexing would
        # make one full-size gradient per model)
        p_rows = {k: [channels_last(r) for r in v.unbind(0)] for k, v in params.items()}
        b_rows = {k: v.unbind(0) for k, v in buffers.items()}
        run = [i for i in range(self.n_models) if skip is None or not bool(skip[i])] or [0]
        out = {}
        for i in run:
            if before_each is not None:
                before_each(i)
            out[i] = one({k: v[i] for k, v in p_rows.items()},
                         {k: v[i] for k, v in b_rows.items()}, flux[i])
        zeros = torch.zeros_like(out[run[0]])
        return torch.stack([out.get(i, zeros) for i in range(self.n_models)])

    def unstack(self, params: dict, buffers: dict, index: int, model: torch.nn.Module):
        """Copy candidate `index`'s tensors into `model` (same architecture); returns it."""
        state = {k: v[index] for k, v in {**params, **buffers}.items()}
        model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()})
        return model


def channels_last(weight: torch.Tensor) -> torch.Tensor:
    """A 4-d (convolution) weight in channels-last memory, as models.ConvBlocks keeps its own:
    stacking copied it into the default layout, and the CPU convolution is fast only when
    input and weight agree."""
    if weight.dim() != 4:
        return weight
    # empty_like + copy_ rather than .contiguous(): that keeps a 1-channel weight's strides,
    # which the convolution then does not read as channels-last
    return torch.empty_like(weight, memory_format=torch.channels_last).copy_(weight)


def stacked_adam_(params: list[torch.Tensor], grads: list[torch.Tensor],
                  exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                  step: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor,
                  active: torch.Tensor, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
    """One Adam step (torch.optim.Adam's formula, L2 weight decay) in place, for M stacked
    candidates at once: lr, weight_decay, active are (M,); `step` (M,) counts each candidate's
    own steps; grads may hold None. Candidates with active False keep their weights and step
    count exactly (frozen for good, so their moments no longer matter). Loops over parameter
    tensors, never over candidates."""
    beta1, beta2 = betas
    step += active.to(step.dtype)
    bias1 = 1 - beta1 ** step.clamp_min(1)
    bias2_sqrt = (1 - beta2 ** step.clamp_min(1)).sqrt()
    step_size = torch.where(active, lr / bias1, torch.zeros_like(lr))
    decay = bool((weight_decay != 0).any())
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        if g is None:  # unused in this forward pass (e.g. the mask token): skipped, as Adam does
            continue
        shape = (-1,) + (1,) * (p.dim() - 1)
        if decay:
            g = g + weight_decay.view(shape) * p
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bias2_sqrt.view(shape)).add_(eps)
        p.addcdiv_(m * step_size.view(shape), denom, value=-1)


class StackedAdam(torch.optim.Optimizer):
    """stacked_adam_ as a torch optimizer over stacked (M, ...) parameters, so that Lightning
    counts its steps and checkpoints its moments. lr, weight_decay and active are (M,)
    tensors held by reference: the caller changes `active` to freeze candidates."""

    def __init__(self, params, lr: torch.Tensor, weight_decay: torch.Tensor,
                 active: torch.Tensor, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"betas": betas, "eps": eps})
        self.lr, self.weight_decay, self.active = lr, weight_decay, active

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = group["params"]
            for p in params:
                if not self.state[p]:
                    self.state[p] = {"exp_avg": torch.zeros_like(p),
                                     "exp_avg_sq": torch.zeros_like(p)}
            # one step count per candidate, kept with the first parameter
            step = self.state[params[0]].setdefault(
                "step", torch.zeros(len(self.lr), device=params[0].device))
            stacked_adam_(params, [p.grad for p in params],
                          [self.state[p]["exp_avg"] for p in params],
                          [self.state[p]["exp_avg_sq"] for p in params], step, self.lr,
                          self.weight_decay, self.active, group["betas"], group["eps"])
        return loss


def patience_ran_out(wait: torch.Tensor, patience: torch.Tensor, epoch: int,
                     min_epochs: int) -> torch.Tensor:
    """(M,) bool: the candidates that early stopping freezes after epoch `epoch` (0-based):
    no improvement in `patience` epochs, and at least `min_epochs` epochs trained."""
    return (wait >= patience) & (epoch + 1 >= min_epochs)


def candidate_orders(seeds: list[int], epoch: int, n: int) -> torch.Tensor:
    """(M, n) int64: each candidate's shuffle of n rows for `epoch`, a function of its own seed
    and the epoch only (so it does not depend on which candidates share its group)."""
    return torch.from_numpy(np.stack([
        np.random.default_rng(epoch_seed(s, epoch)).permutation(n) for s in seeds]))


def cross_entropy_per_model(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logits (M, B, C), y (M, B) or (B,) -> mean loss per model (M,)."""
    M, B, C = logits.shape
    y = y.expand(M, B)
    return F.cross_entropy(logits.float().reshape(M * B, C), y.reshape(M * B),
                           reduction="none").view(M, B).mean(1)


def confusion_matrices(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """pred (M, N), y (N,) -> (M, C, C) counts, rows true (metrics.scores_from_confusion)."""
    M = pred.shape[0]
    cell = (y.expand_as(pred) * n_classes + pred) + torch.arange(M, device=pred.device)[:, None] * (
        n_classes * n_classes)
    counts = torch.bincount(cell.flatten(), minlength=M * n_classes * n_classes)
    return counts.view(M, n_classes, n_classes)


def bytes_per_candidate(model: torch.nn.Module, batch_size: int, n_pixels: int) -> int:
    """What one more stacked candidate costs in memory while training: its parameters four
    times over (weights, gradient, two Adam moments) plus their best-epoch copy, and the
    activations autograd saves for one batch (counted on a one-spectrum forward pass on the
    meta device, times the batch)."""
    n_params = sum(p.numel() * p.element_size() for p in model.parameters())
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    meta = copy.deepcopy(model).to("meta").train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        meta(torch.zeros(1, n_pixels, device="meta", requires_grad=True))
    return 5 * n_params + 2 * saved * int(batch_size)  # 2x: temporaries beside saved tensors


def models_per_group(per_candidate: int, budget_bytes: int, n_candidates: int) -> int:
    """How many candidates to stack at once within `budget_bytes` (at least 1)."""
    return int(max(1, min(n_candidates, budget_bytes // max(1, per_candidate))))
