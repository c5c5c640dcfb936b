# Helpers shared by every stage: config validation, model lists, paths, src inputs.
import functools
from pathlib import Path

from snakemake.utils import validate

from stellarspec import families
from stellarspec.config_check import check_config
from stellarspec.search import candidates, model_rungs

validate(config, schema="../schemas/config.schema.yaml", set_default=True)
check_config(config)  # the cross-key checks; fills in each model's family (default: its name)

SOURCE = config["source"]
TYPES = list(config["types"])
FRACTIONS = [f"{f:g}" for f in config["experiment"]["train_fractions"]]
SEEDS = [str(s) for s in config["experiment"]["seeds"]]
MODELS = config["experiment"]["models"]
K = config["experiment"]["cv_folds"]
PER_FOLD = config["search"]["cv_jobs"] == "per_fold"  # else tune_fit_svm/_deep (tune.smk)


def model_settings(model):
    return config["models"][model]


# The experiment's models of each kind, by family (stellarspec.families)
SVM_MODELS, DEEP_MODELS, REFERENCE_MODELS, PRETRAINED_MODELS = (
    [m for m in MODELS if model_settings(m)["family"] in kind]
    for kind in (families.SVM, families.DEEP, families.REFERENCE, ("bert_cnn_pretrained",)))


def one_of(models):  # a {model} wildcard constraint that matches exactly these models
    return "|".join(models) if models else "none"


def run_path(name):
    """A file of one (type, train fraction, seed) run; all of a source's under results/{source}/."""
    return f"results/{{source}}/{{type}}/frac{{frac}}_seed{{seed}}/{name}"


def run_log(rule, *parts):
    """A run's job log: results/{source}/logs/<rule>/<type>_frac<f>_seed<s>[_<part>...].log"""
    return "_".join([f"results/{{source}}/logs/{rule}/{{type}}_frac{{frac}}_seed{{seed}}", *parts]) + ".log"


wildcard_constraints:
    source=SOURCE,
    type="[A-Za-z0-9_]+",
    frac="[0-9.]+",
    seed="[0-9]+",
    fold="[0-9]+",
    model=one_of(MODELS),


def src(*modules):
    """The src/ files a job imports, as inputs so that editing one reruns it; a package: all its .py."""
    packages = [Path("src/stellarspec", m) for m in ("__init__", "io", *modules)]
    return [p for d in packages for p in (sorted(map(str, d.glob("*.py"))) if d.is_dir() else [f"{d}.py"])]


SRC_DATA = src("data", "labels", "selection", "settings", "simulate", "progress", "template_fit")
SRC_SVM = src("data/dataset", "splits", "metrics", "svm", "runtime", "fit", "convergence",
              "families", "settings", "data/preprocess", "reference", "search")
SRC_DEEP = src("data/dataset", "splits", "metrics", "models", "training", "gpu_slots", "runtime",
               "fit", "convergence", "families", "settings", "data/preprocess", "reference",
               "search")
SRC_REFERENCE = SRC_SVM + src("template_fit")


def data_params(stellar_type):
    """The config keys that shape one type's dataset: changing any of them rebuilds it."""
    keys = ("source", "scale", "grid", "normalise", "min_good_fraction", "snr_column",
            "label_policy", SOURCE)
    keys += ("templates",) if SOURCE == "simulated" else ()  # its label fit and spectrum library
    return {k: config[k] for k in keys} | {"types": {stellar_type: config["types"][stellar_type]}}


def by_epoch(model):
    """Deep models under training.stopping = cv_epochs: CV also chooses the number of epochs."""
    return model in DEEP_MODELS and config["training"]["stopping"] == "cv_epochs"


@functools.cache
def needs_cv(model):
    """CV fold jobs only where the grid has a choice or CV chooses the number of epochs."""
    return len(candidates(model_settings(model)["grid"])) > 1 or by_epoch(model)


# Reference models are cheap: one job per run, tune_fit_reference or (one candidate) fit_reference.
REFERENCE_TUNED_MODELS = [m for m in REFERENCE_MODELS if needs_cv(m)]
REFERENCE_FIXED_MODELS = [m for m in REFERENCE_MODELS if not needs_cv(m)]
FOLD_CSVS = [run_path(f"cv/{{model}}/fold{k}.csv") for k in range(K)]  # one model's CV in a run
FOLD_OOFS = [run_path(f"cv/{{model}}/fold{k}.oof.npz") for k in range(K)]  # its out-of-fold logits


def cv_inputs(wildcards, paths=FOLD_CSVS):
    return [p.format(**wildcards) for p in paths] if needs_cv(wildcards.model) else []


def template_file(wildcards):
    """template_fit's template file (models.template_fit.template_file); nothing for others."""
    settings = model_settings(wildcards.model)
    return settings["template_file"] if settings["family"] == "template_fit" else []


@functools.cache
def last_rung(model):
    """A deep model's last CV rung (0 unless search is halving: stellarspec.search)."""
    return len(model_rungs(**{k: model_settings(model)[k] for k in ("fixed", "grid")}, search=config["search"])) - 1


def rung_of(wildcards):
    """The rung a cv_deep job trains: its {rung} wildcard, else the last rung."""
    return int(wildcards.get("rung", last_rung(wildcards.model)))


def halving_inputs(wildcards):
    """A rung after the first reads the previous rung's promoted candidates and fold CSV."""
    previous = rung_of(wildcards) - 1
    return {} if previous < 0 else {
        "promoted": run_path(f"cv/{{model}}/promoted.rung{previous}.json").format(**wildcards),
        "previous": run_path(f"cv/{{model}}/fold{{fold}}.rung{previous}.csv").format(**wildcards)}


def cv_pretrained_encoders(wildcards):
    """A pretrained model's cv_deep job's encoders, one per fold, pretrained on its fit rows."""
    folds = [wildcards.fold] if "fold" in wildcards.keys() else range(K)
    return [run_path(f"pretrain/{{model}}/fold{k}/encoder.pt").format(**wildcards)
            for k in folds] if wildcards.model in PRETRAINED_MODELS else []


def pretrained_encoder(wildcards):
    """A pretrained model's final fit's encoder, pretrained on the whole training part."""
    encoder = run_path("pretrain/{model}/train/encoder.pt").format(**wildcards)
    return encoder if wildcards.model in PRETRAINED_MODELS else []


def aggregate_inputs(name):
    """Every fit's file; with aggregate.allow_partial only those that already exist."""
    fits = expand(run_path("fit/{model}/fit.json"), source=SOURCE, type=TYPES, frac=FRACTIONS,
                  seed=SEEDS, model=MODELS)
    return [str(Path(p).with_name(name)) for p in fits if not config["aggregate"]["allow_partial"]
            or Path(p).exists() and Path(p).with_name("predictions.csv").exists()]


def saliency_inputs(name):
    """One file per type from the scratch BERT-CNN fit at the largest fraction, first seed."""
    return expand(run_path(name), source=SOURCE, type=TYPES, frac=FRACTIONS[-1], seed=SEEDS[0])

