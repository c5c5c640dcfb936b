"""The config checks that JSON Schema cannot express (workflow/schemas/config.schema.yaml
holds every key, type and default). The workflow calls `check_config` on the validated config
before it builds the DAG, so a bad config stops before any job runs; each error names its key.

Paths in the config are relative to the workflow's working directory (the current directory).
No heavy imports: only stellarspec.families.
"""
from __future__ import annotations

from pathlib import Path

from .families import ALL, DEEP, REFERENCE

# Sources whose spectrum counts are known before any job runs (config count x scale).
COUNTED_SOURCES = ("simulated", "label_first", "templates")


class ConfigError(ValueError):
    """A config error at `key` (dotted, e.g. models.cnn.fixed.max_epochs)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config error at '{key}': {message}")
        self.key = key


def check_config(cfg: dict) -> dict:
    """Raise ConfigError for the first cross-key error of a schema-validated config (defaults
    applied). Fills in each model's family (default: its name) and fixed settings ({}), in
    place; returns cfg."""
    _check_models(cfg)
    _check_types(cfg)
    exp = cfg["experiment"]
    for model in exp["models"]:
        if model not in cfg["models"]:
            raise ConfigError(f"models.{model}", f"model {model} is in experiment.models but has no settings")
    if cfg["source"] in COUNTED_SOURCES:
        _check_fold_sizes(cfg)
    _check_paths(cfg)
    return cfg


def _check_models(cfg: dict) -> None:
    for model, settings in cfg["models"].items():
        settings.setdefault("family", model)
        settings.setdefault("fixed", {})
        family = settings["family"]
        if family not in ALL:
            raise ConfigError(f"models.{model}.family", f"{model} is not a model family, so it needs "
                              f"family: one of {', '.join(ALL)}")
        if family in REFERENCE:
            # A reference model never reads the flux as a model input, so `input` would be
            # silently ignored: refuse it rather than let a row look like something it is not.
            for part in ("fixed", "grid"):
                if "input" in settings.get(part, {}):
                    raise ConfigError(f"models.{model}.{part}.input",
                                      f"{model} is a reference model ({family}), which takes no "
                                      "input setting; remove it")
        if family not in DEEP:
            continue
        grid = settings.get("grid", {})
        if "max_epochs" not in settings["fixed"] and "max_epochs" not in grid:
            raise ConfigError(f"models.{model}.fixed.max_epochs", f"deep model {model} needs "
                              "max_epochs (in fixed, or in its grid)")
        if cfg["training"]["stopping"] == "cv_epochs":
            budgets = grid.get("max_epochs") or [settings["fixed"]["max_epochs"]]
            if min(budgets) < cfg["training"]["min_epochs"]:
                # the final fit would train more epochs than CV ever scored
                raise ConfigError(f"models.{model}.fixed.max_epochs",
                                  f"max_epochs {min(budgets)} is below training.min_epochs "
                                  f"{cfg['training']['min_epochs']}")


def _check_types(cfg: dict) -> None:
    seen = {}
    for stellar_type, subclasses in cfg["types"].items():
        if not subclasses:
            raise ConfigError(f"types.{stellar_type}", "has no subclasses")
        for subclass in subclasses:
            if subclass in seen:
                raise ConfigError(f"types.{stellar_type}.{subclass}",
                                  f"subclass {subclass} is also listed in type {seen[subclass]}")
            seen[subclass] = stellar_type


def _check_fold_sizes(cfg: dict) -> None:
    """Counts are known before any job runs, so too-many-folds is caught here, not mid-grid."""
    k, smallest_fraction = cfg["experiment"]["cv_folds"], min(cfg["experiment"]["train_fractions"])
    for subclasses in cfg["types"].values():
        for subclass, spec in subclasses.items():
            n = max(1, round(spec["count"] * cfg["scale"]))
            n_train = round(n * smallest_fraction)
            if k > n_train:
                raise ConfigError("experiment.cv_folds",
                                  f"k={k} folds but subclass {subclass} has only {n_train} training "
                                  f"spectra at train fraction {smallest_fraction} (count {spec['count']} "
                                  f"x scale {cfg['scale']}); lower cv_folds or raise scale")


def _check_paths(cfg: dict) -> None:
    """The input files and directories the configured source and models read exist."""
    source, templates = cfg["source"], cfg["templates"]
    if source == "simulated":
        for key in ("sdss_path", "kesseli_dir"):
            if not Path(templates[key]).exists():
                raise ConfigError(f"templates.{key}", f"the simulated source needs {templates[key]}")
    if source == "templates":
        key = "sdss_path" if templates["library"] == "sdss" else "kesseli_dir"
        if not Path(templates[key]).exists():
            raise ConfigError(f"templates.{key}", f"template path {templates[key]} does not exist")
    if source == "table" and not (cfg["table"]["path"] and Path(cfg["table"]["path"]).exists()):
        raise ConfigError("table.path", f"labelled-spectra file {cfg['table']['path']} does not exist")
    if source == "sdss" and cfg["sdss"]["spec_dir"] and not Path(cfg["sdss"]["spec_dir"]).is_dir():
        raise ConfigError("sdss.spec_dir", f"directory {cfg['sdss']['spec_dir']} does not exist")
    if "template_fit" in cfg["experiment"]["models"]:
        template_file = cfg["models"]["template_fit"]["template_file"]
        if not Path(template_file).exists():
            raise ConfigError("models.template_fit.template_file",
                              f"template file {template_file} does not exist")
    if source == "lamost" and not (cfg["lamost"]["spec_dir"] and Path(cfg["lamost"]["spec_dir"]).is_dir()):
        raise ConfigError("lamost.spec_dir", f"directory {cfg['lamost']['spec_dir']} does not exist")
    extra = cfg["pretrain"]["extra_unlabelled"]
    if extra and not Path(extra).exists():
        raise ConfigError("pretrain.extra_unlabelled", f"{extra} does not exist")
