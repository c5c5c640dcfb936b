"""The settings every entry point shares: the model names, the training defaults, and the
batch size and learning rate a deep run uses.
"""
from __future__ import annotations

import math

from ..families import ALL as MODELS, DEEP as DEEP_MODELS
from ..settings import merge_settings

# training: settings of how deep models train (config `training:`, schema for the docs).
# The schema (workflow/schemas/config.schema.yaml) holds the same defaults; a test keeps them equal.
TRAINING_DEFAULTS = {"stopping": "cv_epochs", "holdout_fraction": 0.1, "min_epochs": 10,
                     "min_steps_per_epoch": 1, "smoothing_epochs": 3,
                     "convergence_tolerance": 0.02,
                     "precision": "32-true", "cuda_batch_scaling": False, "memory_mb": 2000,
                     "gpu_memory_fraction": 0.8, "stacking": "auto"}


def _check_model(model: str, pretrained) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    if model == "bert_cnn_pretrained" and pretrained is None:
        raise ValueError("bert_cnn_pretrained needs the pretrained encoder file (pretrained=...)")
    if model != "bert_cnn_pretrained" and pretrained is not None:
        raise ValueError(f"{model} does not take a pretrained encoder")


def _svm_params(params: dict) -> dict:
    unknown = set(params) - {"C", "kernel", "gamma", "input"}
    if unknown:
        raise ValueError(f"unknown svm parameters: {sorted(unknown)}")
    return {"C": float(params["C"]), "kernel": params.get("kernel", "rbf"),
            "gamma": params.get("gamma", "scale"), "input": params.get("input", "minmax")}


def training_settings(training: dict | None) -> dict:
    return merge_settings("training", training, TRAINING_DEFAULTS)


def used_settings(params: dict, n_fit: int, training: dict, device: str) -> dict:
    """The batch size, learning rate and precision a run uses: the configured ones, on every
    device. Only with training.cuda_batch_scaling (an opt-in) does a CUDA run take a larger
    batch and a sqrt-scaled learning rate (cuda_batch_size). With
    training.min_steps_per_epoch = s > 1 the batch is at most steps_batch_size(n_fit, s), so
    an epoch is at least s optimizer steps on any training size (the same number in a CV fold
    and in the final fit, whose epochs CV chose)."""
    batch_size, lr = int(params["batch_size"]), float(params["lr"])
    scaled = device == "cuda" and bool(training["cuda_batch_scaling"])
    if scaled:
        batch_size = cuda_batch_size(batch_size, n_fit)
        lr = cuda_learning_rate(lr, int(params["batch_size"]), batch_size)
    if int(training["min_steps_per_epoch"]) > 1:
        batch_size = min(batch_size, steps_batch_size(n_fit, int(training["min_steps_per_epoch"])))
    return {"batch_size": batch_size, "lr": lr, "precision": training["precision"],
            "cuda_batch_scaling": scaled}


def steps_batch_size(n_fit: int, min_steps: int) -> int:
    """The largest batch b with ceil(n_fit / b) >= min_steps (> 1): an epoch of at least
    min_steps optimizer steps."""
    return max(1, math.ceil(int(n_fit) / (int(min_steps) - 1)) - 1)


def cuda_batch_size(batch_size: int, n_train: int, factor: int = 4) -> int:
    """The batch size used on CUDA: the configured one times `factor`, but never so large
    that an epoch has fewer than 8 steps (and never below the configured one).

    The paper's batch sizes are defaults tuned for CPU-era hardware; on a GPU small batches
    leave it idle. The learning rate is scaled by sqrt(new / configured), the usual rule for
    Adam (see `cuda_learning_rate`)."""
    return int(max(batch_size, min(batch_size * factor, n_train // 8)))


def cuda_learning_rate(lr: float, batch_size: int, used_batch_size: int) -> float:
    return float(lr * math.sqrt(used_batch_size / batch_size))

