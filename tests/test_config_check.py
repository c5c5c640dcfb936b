"""Bad configs are refused with the key named: the schema and stellarspec.config_check called
on a config dict, as the workflow does (common.smk), with no Snakemake start; two dry runs
prove that a Snakemake start runs both and stops before any job."""
import subprocess
import sys

import pytest
import yaml
from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from stellarspec import families
from stellarspec.config_check import ConfigError, check_config
from workflow_helpers import REPO, absolute_shared_paths, deep_update, snakemake, workflow_copy

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def tiny_config(override=None, layer="tests/tiny.yaml"):
    """config.yaml with a layer over it (tests/tiny.yaml, as tests/workflow_helpers.workflow_copy
    writes it; config/paper.yaml, as --configfile merges it; None) and then `override`."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if layer:
        deep_update(config, yaml.safe_load((REPO / layer).read_text()))
    return absolute_shared_paths(deep_update(config, override or {}))


def checked(config):
    """What the workflow does at its start: validate against the schema (defaults set), then
    the cross-key checks."""
    validate(config, schema=str(SCHEMA), set_default=True)
    return check_config(config)


def refusal(config) -> str:
    """Why a config is refused: the schema's error at its dotted path, or check_config's."""
    with pytest.raises((ConfigError, WorkflowError)) as info:
        checked(config)
    error = info.value
    if isinstance(error, WorkflowError):  # snakemake.utils.validate raises it from the schema's
        cause = error.__context__
        assert isinstance(cause, ValidationError), error
        return f"{'.'.join(map(str, cause.absolute_path))}: {cause.message}"
    return str(error)


# (name, override, key named in the error). The schema's cases first, then check_config's.
SCHEMA_ERRORS = [
    ("fraction outside (0, 1)", {"experiment": {"train_fractions": [0.3, 1.2]}}, "experiment.train_fractions"),
    ("negative count", {"types": {"K": {"K1": {"count": -5, "snr": [60, 65]}}}}, "types.K.K1.count"),
    ("unknown key", {"experimnet": {"seeds": [0]}}, "experimnet"),
    ("unknown family", {"models": {"cnn": {"family": "lstm"}}}, "models.cnn.family"),
]
CHECK_ERRORS = [
    ("unknown model", {"experiment": {"models": ["svm", "xgboost"]}}, "models.xgboost"),
    ("subclass in two types", {"types": {"G": {"K1": {"count": 10, "snr": [60, 65]}}}}, "types.G.K1"),
    ("too many folds", {"experiment": {"cv_folds": 40}}, "experiment.cv_folds"),
    ("missing template path", {"source": "templates", "templates": {"sdss_path": "/nonexistent/t.fits"}},
     "templates.sdss_path"),
    ("missing kesseli library", {"source": "templates", "templates": {
        "library": "kesseli", "kesseli_dir": "/nonexistent/kesseli"}}, "templates.kesseli_dir"),
    ("simulated source without its templates", {"templates": {"kesseli_dir": "/nonexistent/k"}},
     "templates.kesseli_dir"),
    ("input on a reference model", {"models": {"majority": {"fixed": {"input": "standardized"}}}},
     "models.majority.fixed.input"),
    ("input in a reference model's grid",
     {"models": {"snr_only": {"grid": {"max_depth": [2], "input": ["minmax", "standardized"]}}}},
     "models.snr_only.grid.input"),
    ("an epoch budget below min_epochs", {"models": {"cnn": {"fixed": {"max_epochs": 5}}},
                                          "training": {"min_epochs": 10}},
     "models.cnn.fixed.max_epochs"),
    ("a grid's smallest epoch budget below min_epochs",
     {"models": {"cnn": {"grid": {"max_epochs": [1, 3]}}}}, "models.cnn.fixed.max_epochs"),
    ("a model that is not a family and has none",
     {"models": {"cnn2": {"grid": {"lr": [1.0e-3]}}}, "experiment": {"models": ["cnn2"]}},
     "models.cnn2.family"),
    ("a deep variant without max_epochs",
     {"models": {"cnn3": {"family": "cnn", "grid": {"lr": [1.0e-3]}}}, "experiment": {"models": ["cnn3"]}},
     "models.cnn3.fixed.max_epochs"),
    ("missing table", {"source": "table"}, "table.path"),
    ("missing sdss directory", {"source": "sdss", "sdss": {"spec_dir": "/nonexistent/sdss"}}, "sdss.spec_dir"),
    ("no lamost directory", {"source": "lamost"}, "lamost.spec_dir"),
    ("missing template_fit file", {"models": {"template_fit": {"template_file": "/nonexistent/t.fits"}}},
     "models.template_fit.template_file"),
    ("missing extra unlabelled spectra", {"pretrain": {"extra_unlabelled": "/nonexistent/x.npz"}},
     "pretrain.extra_unlabelled"),
]


@pytest.mark.parametrize("name,override,key", SCHEMA_ERRORS + CHECK_ERRORS,
                         ids=[c[0] for c in SCHEMA_ERRORS + CHECK_ERRORS])
def test_bad_config_is_refused_with_the_key_named(name, override, key):
    assert key in refusal(tiny_config(override)), name


@pytest.mark.parametrize("name,override,key", CHECK_ERRORS, ids=[c[0] for c in CHECK_ERRORS])
def test_cross_key_errors_pass_the_schema_and_name_their_key(name, override, key):
    config = tiny_config(override)
    validate(config, schema=str(SCHEMA), set_default=True)
    with pytest.raises(ConfigError) as info:
        check_config(config)
    assert info.value.key == key and str(info.value).startswith(f"config error at '{key}': ")


def test_holdout_stopping_lets_a_budget_below_min_epochs_through():
    # min_epochs only bounds a cv_epochs final fit from below
    checked(tiny_config({"models": {"cnn": {"fixed": {"max_epochs": 5}}},
                         "training": {"min_epochs": 10, "stopping": "holdout"}}))


def test_an_empty_type_list_is_refused():
    config = tiny_config()
    config["types"] = {}
    assert refusal(config).startswith("types: ")


def test_a_type_without_subclasses_is_refused():
    # the schema refuses it first (minProperties); check_config on its own names the type too
    config = checked(tiny_config())
    config["types"]["K"] = {}
    with pytest.raises(ConfigError, match="types.K"):
        check_config(config)


@pytest.mark.parametrize("layer", [None, "config/paper.yaml", "tests/tiny.yaml"])
def test_shipped_configs_pass_and_every_model_gets_its_family(layer):
    config = checked(tiny_config(layer=layer))
    for model, settings in config["models"].items():
        assert settings["family"] in families.ALL and "fixed" in settings
    assert config["models"]["cnn"]["family"] == "cnn"


def test_a_variant_keeps_its_family():
    config = checked(tiny_config({"models": {"svm_std": {"family": "svm", "fixed": {"input": "standardized"},
                                                         "grid": {"C": [1]}}}}))
    assert config["models"]["svm_std"]["family"] == "svm"


def test_the_schema_lists_the_same_families():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert tuple(schema["$defs"]["model"]["properties"]["family"]["enum"]) == families.ALL
    assert set(families.SVM + families.DEEP + families.REFERENCE) == set(families.ALL)
    assert len(set(families.ALL)) == len(families.ALL)


def test_the_check_imports_nothing_heavy():
    # common.smk imports it whenever Snakemake starts
    code = ("import sys, stellarspec.config_check; "
            "print(sorted({'torch', 'sklearn', 'numpy', 'pandas', 'lightning'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# One cross-key error and one schema error: a Snakemake start runs both checks.
DRY_RUN_ERRORS = [CHECK_ERRORS[1], SCHEMA_ERRORS[2]]


@pytest.mark.slow
@pytest.mark.parametrize("name,override,key", DRY_RUN_ERRORS, ids=[c[0] for c in DRY_RUN_ERRORS])
def test_snakemake_stops_on_a_bad_config_before_any_job(tmp_path, name, override, key):
    root = workflow_copy(tmp_path, override)
    result = snakemake(root, "-n")
    assert result.returncode != 0, f"{name}: accepted"
    assert key in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (root / "results").exists()
