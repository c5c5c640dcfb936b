"""Entry points called by the Snakemake rules: CV of a grid on one fold (cv), parameter
selection (selection), masked pretraining (pretraining), and the final fit evaluated once on
the test part (final). Deep models train through one path (deep.train_group); settings holds
the shared defaults and job the threads, device and inputs of a job.

Every output is written atomically (stellarspec.io). Deep-model jobs resume from their
last.ckpt. The caller picks the device: wrap a call in stellarspec.gpu_slots.gpu_slot() on a
multi-GPU machine (the workflow scripts do); CUDA is used whenever torch sees a GPU.

torch, Lightning and stellarspec.training are imported only by the deep-model paths, inside
the functions: importing them costs seconds per job, which SVM jobs need not pay.
"""
from .cv import CV_COLUMNS, cv_every_fold, cv_fold
from .deep import (device_type, inner_validation, memory_budget, network_standardizer,
                   stacked_groups, train_group, training_rows)
from .final import deep_convergence, final_fit, load_classifier
from .job import device_name
from .pretraining import (check_pretrained_encoder, heldout_losses, load_pretrained_encoder,
                          pretrain)
from .selection import (candidate_scores, chosen_params, curve_convergence, fold_curves,
                        promote, select_params)
from .settings import (DEEP_MODELS, MODELS, TRAINING_DEFAULTS, cuda_batch_size,
                       cuda_learning_rate, steps_batch_size, training_settings, used_settings)

__all__ = [
    "CV_COLUMNS", "DEEP_MODELS", "MODELS", "TRAINING_DEFAULTS", "candidate_scores",
    "check_pretrained_encoder", "chosen_params", "cuda_batch_size", "cuda_learning_rate",
    "curve_convergence", "cv_every_fold", "cv_fold", "deep_convergence", "device_name",
    "device_type", "final_fit", "fold_curves", "heldout_losses", "inner_validation",
    "load_classifier", "load_pretrained_encoder", "memory_budget", "network_standardizer",
    "pretrain", "promote", "select_params", "stacked_groups", "steps_batch_size",
    "train_group", "training_rows", "training_settings", "used_settings"]
