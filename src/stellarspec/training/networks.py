"""The deep networks from a params dict (SpectrumCNN, BertCNN, the BERT encoder's settings),
and the Adam that trains a single one.
"""
from __future__ import annotations

import torch

from ..models import BertCNN, BertEncoder, SpectrumCNN, encoder_size

CNN_KEYS = ("channels", "kernel_size", "pool", "hidden_units", "dropout", "input")
ENCODER_KEYS = ("encoder", "patch_width", "d_model", "n_heads", "n_layers", "patch_stride",
                "use_cls", "d_ff", "encoder_dropout", "input")
BERT_KEYS = ENCODER_KEYS + ("head_channels", "head_kernel_size", "head_pool", "hidden_units",
                            "dropout")
TRAINING_KEYS = ("lr", "batch_size", "max_epochs", "patience", "weight_decay", "epochs")
MODEL_KEYS = {"cnn": CNN_KEYS, "bert_cnn": BERT_KEYS, "bert_cnn_pretrained": BERT_KEYS}


def build_classifier(model: str, params: dict, n_pixels: int, n_classes: int) -> torch.nn.Module:
    """SpectrumCNN or BertCNN from a params dict (architecture keys; training keys ignored)."""
    if model not in MODEL_KEYS:
        raise ValueError(f"unknown deep model {model!r}; expected one of {sorted(MODEL_KEYS)}")
    unknown = set(params) - set(MODEL_KEYS[model]) - set(TRAINING_KEYS)
    if unknown:
        raise ValueError(f"unknown {model} parameters: {sorted(unknown)}")
    arch = {k: params[k] for k in MODEL_KEYS[model] if k in params}
    if model == "cnn":
        return SpectrumCNN(n_pixels, n_classes, **arch)
    return BertCNN(n_pixels, n_classes, **bert_arch(arch))


def bert_arch(params: dict) -> dict:
    """params with a named `encoder` size replaced by the size's keys (models.ENCODER_SIZES)."""
    arch = {**encoder_size(params), **params}
    arch.pop("encoder", None)
    return arch


def encoder_config(params: dict, n_pixels: int) -> dict:
    """The BertEncoder keyword arguments that `params` implies (its defaults filled in)."""
    arch = bert_arch({k: params[k] for k in ENCODER_KEYS if k in params})
    if "encoder_dropout" in arch:
        arch["dropout"] = arch.pop("encoder_dropout")
    return BertEncoder(n_pixels, **arch).config


def adam(parameters, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the single fused kernel where PyTorch has one (CPU, CUDA): on the CPU several
    times faster than the default per-parameter loop (benchmarks/bench_kernels.py)."""
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point
                for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)

