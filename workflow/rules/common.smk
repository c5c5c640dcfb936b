# Helpers shared by every stage: config validation, paths, src inputs, target lists.
import functools
import itertools
import json
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml", set_default=True)


def _config_error(key, message):
    raise ValueError(f"config error at '{key}': {message}")


REFERENCE_FAMILIES = ("majority", "snr_only", "template_fit")
FAMILIES = ("svm", "cnn", "bert_cnn", "bert_cnn_pretrained") + REFERENCE_FAMILIES


def check_config(cfg):
    """Cross-key checks that JSON Schema cannot express; each error names its key. Fills in
    each model's family (default: its name)."""
    for model, settings in cfg["models"].items():
        settings.setdefault("family", model)
        settings.setdefault("fixed", {})
        if settings["family"] not in FAMILIES:
            _config_error(f"models.{model}.family", f"{model} is not a model family, so it needs "
                          f"family: one of {', '.join(FAMILIES)}")
        if settings["family"] in REFERENCE_FAMILIES:
            # A reference model never reads the flux as a model input, so `input` would be
            # silently ignored: refuse it rather than let a row look like something it is not.
            for part in ("fixed", "grid"):
                if "input" in settings.get(part, {}):
                    _config_error(f"models.{model}.{part}.input",
                                  f"{model} is a reference model ({settings['family']}), which "
                                  "takes no input setting; remove it")
        deep = settings["family"] not in ("svm",) + REFERENCE_FAMILIES
        if deep and "max_epochs" not in settings["fixed"] and "max_epochs" not in settings.get("grid", {}):
            _config_error(f"models.{model}.fixed.max_epochs", f"deep model {model} needs max_epochs "
                          "(in fixed, or in its grid)")
        if deep and cfg["training"]["stopping"] == "cv_epochs":
            budgets = settings.get("grid", {}).get("max_epochs") or [settings["fixed"]["max_epochs"]]
            if min(budgets) < cfg["training"]["min_epochs"]:
                # the final fit would train more epochs than CV ever scored
                _config_error(f"models.{model}.fixed.max_epochs",
                              f"max_epochs {min(budgets)} is below training.min_epochs "
                              f"{cfg['training']['min_epochs']}")
    seen = {}
    for stellar_type, subclasses in cfg["types"].items():
        if not subclasses:
            _config_error(f"types.{stellar_type}", "has no subclasses")
        for subclass in subclasses:
            if subclass in seen:
                _config_error(f"types.{stellar_type}.{subclass}",
                              f"subclass {subclass} is also listed in type {seen[subclass]}")
            seen[subclass] = stellar_type
    exp = cfg["experiment"]
    for model in exp["models"]:
        if model not in cfg["models"]:
            _config_error(f"models.{model}", f"model {model} is in experiment.models but has no settings")
    if cfg["source"] in ("simulated", "label_first", "templates"):
        # Counts are known before any job runs, so too-many-folds is caught here, not mid-grid.
        k, smallest_fraction = exp["cv_folds"], min(exp["train_fractions"])
        for stellar_type, subclasses in cfg["types"].items():
            for subclass, spec in subclasses.items():
                n = max(1, round(spec["count"] * cfg["scale"]))
                n_train = round(n * smallest_fraction)
                if k > n_train:
                    _config_error("experiment.cv_folds",
                                  f"k={k} folds but subclass {subclass} has only {n_train} training "
                                  f"spectra at train fraction {smallest_fraction} (count {spec['count']} "
                                  f"x scale {cfg['scale']}); lower cv_folds or raise scale")
    if cfg["source"] == "simulated":
        for key in ("sdss_path", "kesseli_dir"):
            if not Path(cfg["templates"][key]).exists():
                _config_error(f"templates.{key}", f"the simulated source needs {cfg['templates'][key]}")
    if cfg["source"] == "templates":
        lib = cfg["templates"]["library"]
        path = cfg["templates"]["sdss_path" if lib == "sdss" else "kesseli_dir"]
        if not Path(path).exists():
            _config_error(f"templates.{'sdss_path' if lib == 'sdss' else 'kesseli_dir'}",
                          f"template path {path} does not exist")
    if cfg["source"] == "table" and not (cfg["table"]["path"] and Path(cfg["table"]["path"]).exists()):
        _config_error("table.path", f"labelled-spectra file {cfg['table']['path']} does not exist")
    if cfg["source"] == "sdss" and cfg["sdss"]["spec_dir"] and not Path(cfg["sdss"]["spec_dir"]).is_dir():
        _config_error("sdss.spec_dir", f"directory {cfg['sdss']['spec_dir']} does not exist")
    if "template_fit" in exp["models"] and not Path(cfg["models"]["template_fit"]["template_file"]).exists():
        _config_error("models.template_fit.template_file",
                      f"template file {cfg['models']['template_fit']['template_file']} does not exist")
    if cfg["source"] == "lamost" and not (cfg["lamost"]["spec_dir"] and Path(cfg["lamost"]["spec_dir"]).is_dir()):
        _config_error("lamost.spec_dir", f"directory {cfg['lamost']['spec_dir']} does not exist")
    if cfg["pretrain"]["extra_unlabelled"] and not Path(cfg["pretrain"]["extra_unlabelled"]).exists():
        _config_error("pretrain.extra_unlabelled", f"{cfg['pretrain']['extra_unlabelled']} does not exist")


check_config(config)

SOURCE = config["source"]
TYPES = list(config["types"])
FRACTIONS = [f"{f:g}" for f in config["experiment"]["train_fractions"]]
SEEDS = [str(s) for s in config["experiment"]["seeds"]]
MODELS = config["experiment"]["models"]
def model_family(model):
    return config["models"][model]["family"]


SVM_MODELS = [m for m in MODELS if model_family(m) == "svm"]
# Reference models (stellarspec.reference): CPU only and cheap, no torch; never deep.
REFERENCE_MODELS = [m for m in MODELS if model_family(m) in REFERENCE_FAMILIES]
DEEP_MODELS = [m for m in MODELS if m not in SVM_MODELS and m not in REFERENCE_MODELS]
PRETRAINED_MODELS = [m for m in MODELS if model_family(m) == "bert_cnn_pretrained"]
K = config["experiment"]["cv_folds"]
# Every output of one source lives under results/{source}/, so sources never mix.
RUN = "results/{source}/{type}/frac{frac}_seed{seed}"

wildcard_constraints:
    source=SOURCE,
    type="[A-Za-z0-9_]+",
    frac="[0-9.]+",
    seed="[0-9]+",
    fold="[0-9]+",
    model="|".join(MODELS) if MODELS else "none",


def src(*modules):
    """The src/ files a job imports, declared as inputs so that editing one reruns its jobs."""
    return [f"src/stellarspec/{m}.py" for m in ("__init__", "io", *modules)]


SRC_DATA = src("dataset", "labels", "preprocess", "sdss_fits", "sdss_remote", "simulate", "sources",
               "lamost_fits", "readers", "progress", "template_fit")
SRC_SVM = src("dataset", "splits", "metrics", "svm", "runtime", "fit", "convergence", "preprocess",
              "reference", "search")
SRC_DEEP = src("dataset", "splits", "metrics", "models", "lightning_modules", "gpu_slots", "runtime",
               "fit", "convergence", "preprocess", "reference", "search", "batched")
SRC_REFERENCE = SRC_SVM + src("template_fit")


def data_params(stellar_type):
    """The config keys that shape one type's dataset: changing any of them rebuilds it."""
    keys = ("source", "scale", "grid", "normalise", "min_good_fraction", "snr_column",
            "label_policy", SOURCE)
    keys += ("templates",) if SOURCE == "simulated" else ()  # its label fit and spectrum library
    return {k: config[k] for k in keys} | {"types": {stellar_type: config["types"][stellar_type]}}


def model_settings(model):
    return config["models"][model]


def grid_candidates(model):
    grid = model_settings(model)["grid"]
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


@functools.cache
def n_candidates(model):
    """len(grid_candidates(model)), computed once: input functions ask for it per job."""
    return len(grid_candidates(model))


def by_epoch(model):
    """Deep models under training.stopping = cv_epochs: CV also chooses the number of epochs."""
    return model in DEEP_MODELS and config["training"]["stopping"] == "cv_epochs"


def needs_cv(model):
    """One candidate leaves nothing to choose, so its CV fold jobs are skipped (unless CV
    chooses the number of epochs)."""
    return n_candidates(model) > 1 or by_epoch(model)


# Reference models are cheap (milliseconds to seconds a fit): one job per run scores every CV
# fold, chooses and fits when their grid has a choice (tune_fit_reference), else it only fits
# (fit_reference). A job per fold would spend its time starting Python and loading the data.
REFERENCE_TUNED_MODELS = [m for m in REFERENCE_MODELS if needs_cv(m)]
REFERENCE_FIXED_MODELS = [m for m in REFERENCE_MODELS if not needs_cv(m)]


def cv_inputs(wildcards):
    if not needs_cv(wildcards.model):
        return []
    return expand(f"{RUN}/cv/{{model}}/fold{{fold}}.csv", **wildcards, fold=range(K))


def template_file(wildcards):
    """template_fit's template file (models.template_fit.template_file); nothing for others."""
    if model_family(wildcards.model) == "template_fit":
        return config["models"][wildcards.model]["template_file"]
    return []


@functools.cache
def cv_rungs(model):
    """The epoch budget of each CV rung of a deep model (one rung unless search is halving);
    computed once per model: input functions ask for it per job."""
    from stellarspec.search import model_rungs

    settings = model_settings(model)
    return model_rungs(settings.get("fixed", {}), settings["grid"], config["search"])


def rung_of(wildcards):
    """The rung a cv_deep job trains: its {rung} wildcard, else the last rung."""
    return int(wildcards.get("rung", len(cv_rungs(wildcards.model)) - 1))


def halving_inputs(wildcards):
    """A rung after the first reads the previous rung's promoted candidates and fold CSV."""
    rung = rung_of(wildcards)
    if rung == 0:
        return {}
    run = RUN.format(**wildcards)
    return {"promoted": f"{run}/cv/{wildcards.model}/promoted.rung{rung - 1}.json",
            "previous": f"{run}/cv/{wildcards.model}/fold{wildcards.fold}.rung{rung - 1}.csv"}



    return []


# search.cv_jobs: a CV job per fold and a fit job (cv_svm + fit_svm, cv_deep + fit_deep), or
# one job per model for both (tune_fit_svm, tune_fit_deep). Reference models: always one job
# per run (tune_fit_reference / fit_reference).
PER_FOLD = config["search"]["cv_jobs"] == "per_fold"


def cv_pretrained_encoders(wildcards):
    """The encoders of a cv_deep job's folds, each pretrained on that fold's fit rows only."""
    if model_family(wildcards.model) != "bert_cnn_pretrained":
        return []
    folds = [wildcards.fold] if "fold" in wildcards.keys() else range(K)
    return [f"{RUN}/pretrain/{{model}}/fold{k}/encoder.pt".format(**wildcards) for k in folds]


def pretrained_encoder(wildcards):
    """The encoder a pretrained model's final fit starts from: pretrained on the whole
    training part (never on test rows; CV folds use cv_pretrained_encoders)."""
    if model_family(wildcards.model) != "bert_cnn_pretrained":
        return []
    return f"{RUN}/pretrain/{{model}}/train/encoder.pt".format(**wildcards)


def fit_outputs(names=("fit.json",)):
    return expand(f"{RUN}/fit/{{model}}/{{name}}", source=SOURCE, type=TYPES, frac=FRACTIONS,
                  seed=SEEDS, model=MODELS, name=names)


def aggregate_inputs(name):
    """Every fit's file; with aggregate.allow_partial only those that already exist."""
    if not config["aggregate"]["allow_partial"]:
        return fit_outputs([name])
    return [str(Path(p).with_name(name)) for p in fit_outputs(["fit.json"])
            if Path(p).exists() and Path(p).with_name("predictions.csv").exists()]


def saliency_inputs(name):
    """One file per type from the scratch BERT-CNN fit at the largest fraction, first seed."""
    return expand(f"{RUN}/{name}", source=SOURCE, type=TYPES, frac=FRACTIONS[-1], seed=SEEDS[0])


def all_outputs():
    tables = expand("results/tables/{table}.{ext}", table=["table3", "table4", "table_snr", "table5"],
                    ext=["csv", "md", "tex"])
    figures = expand("results/figures/{fig}.png",
                     fig=["learning_curves", "confusion_matrices", "per_class_f1", "table5_forest"])
    if "bert_cnn" in MODELS:
        figures += ["results/figures/saliency.png"]
    if SOURCE == "simulated":
        figures += ["results/figures/simulated_spectra.png"]
    return tables + figures
