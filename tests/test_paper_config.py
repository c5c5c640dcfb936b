"""The shipped protocol configs themselves: config/paper.yaml (the paper's protocol) and
config/sdss.yaml (the paper's data at a workstation's cost), each merged over config.yaml as
Snakemake merges a --configfile (nested keys merge)."""
import sys
from pathlib import Path

import pytest

from workflow_helpers import REPO, planned_jobs, workflow_copy, write_config

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_batched import load_config  # noqa: E402  (the benchmarks' loader, as Snakemake merges)

from stellarspec.models import ENCODER_SIZES  # noqa: E402
from stellarspec.paper import TABLE2_CHOSEN  # noqa: E402
from stellarspec.search import candidates, model_rungs  # noqa: E402

PAPER_C = [0.01, 0.05, 0.1, 0.5, 1, 5, 10]
FRACTIONS = [0.3, 0.4, 0.5, 0.6, 0.7]
LEGACY_GRID = {"log10_start": 3.58, "log10_step": 1.0e-4, "n_pixels": 3840}
TAKES_INPUT = ("svm", "cnn", "bert_cnn", "bert_cnn_pretrained")
# stellarspec.paper names the learning rate learning_rate; the configs name it lr
CONFIG_KEY = {"learning_rate": "lr"}


@pytest.fixture(scope="module")
def paper():
    return load_config(REPO / "config" / "paper.yaml")


@pytest.fixture(scope="module")
def sdss():
    return load_config(REPO / "config" / "sdss.yaml")


def setting(cfg: dict, model: str, key: str, default=None) -> list:
    """Every value `key` takes among the model's candidates (grid values over fixed)."""
    settings = cfg["models"][model]
    values = {full.get(key, default) for _, full in
              candidates(settings["grid"], settings.get("fixed"))}
    return sorted(values, key=lambda v: (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))


def searched(cfg: dict, model: str) -> dict:
    """The grid keys that take more than one value: what CV actually chooses between."""
    return {k: v for k, v in cfg["models"][model]["grid"].items() if len(v) > 1}


def test_paper_yaml_is_the_papers_data_and_split(paper):
    assert paper["source"] == "sdss" and paper["scale"] == 1.0
    assert paper["grid"] == LEGACY_GRID
    exp = paper["experiment"]
    assert exp["train_fractions"] == FRACTIONS and exp["cv_folds"] == 10
    assert set(exp["models"]) >= {"svm", "cnn", "bert_cnn"}
    assert paper["training"]["min_steps_per_epoch"] == 1  # Table 2's batch sizes as they are


def test_paper_yaml_gives_every_model_the_papers_input_and_a_multi_layer_encoder(paper):
    for model in TAKES_INPUT:
        assert setting(paper, model, "input", "minmax") == ["minmax"], model
    for model in ("bert_cnn", "bert_cnn_pretrained"):
        encoders = setting(paper, model, "encoder", "tiny")
        assert encoders and all(ENCODER_SIZES[e]["n_layers"] > 1 for e in encoders), model


def test_paper_yaml_svm_tunes_c_alone_with_rbf_and_scale(paper):
    assert searched(paper, "svm") == {"C": PAPER_C}
    assert setting(paper, "svm", "C") == PAPER_C
    assert setting(paper, "svm", "kernel", "rbf") == ["rbf"]
    assert setting(paper, "svm", "gamma", "scale") == ["scale"]
    assert len(candidates(paper["models"]["svm"]["grid"], paper["models"]["svm"]["fixed"])) == 7
    assert TABLE2_CHOSEN["svm"]["C"] in PAPER_C


@pytest.mark.parametrize("model", ["cnn", "bert_cnn", "bert_cnn_pretrained"])
def test_paper_yaml_deep_grids_are_table2s_and_hold_its_choice(paper, model):
    grid = paper["models"][model]["grid"]
    assert set(searched(paper, model)) == {"batch_size", "lr", "hidden_units", "dropout"}
    assert len(candidates(grid, paper["models"][model]["fixed"])) == 3 * 7 * 5 * 6
    chosen = TABLE2_CHOSEN["cnn" if model == "cnn" else "bert_cnn"]
    for key, value in chosen.items():
        assert value in grid[CONFIG_KEY.get(key, key)], (model, key, value)


def test_table2_chosen_values_are_the_ones_the_issue_names():
    assert TABLE2_CHOSEN["cnn"] == {"batch_size": 128, "learning_rate": 1e-3,
                                    "hidden_units": 128, "dropout": 0.5}
    assert TABLE2_CHOSEN["bert_cnn"] == {"batch_size": 32, "learning_rate": 1e-3,
                                         "hidden_units": 256, "dropout": 0.5}


def test_sdss_yaml_is_the_papers_data_at_a_workstations_cost(sdss):
    assert sdss["source"] == "sdss" and sdss["scale"] == 1.0
    assert sdss["grid"] == LEGACY_GRID
    exp = sdss["experiment"]
    assert exp["train_fractions"] == FRACTIONS and exp["seeds"] == [0, 1, 2]
    assert exp["models"] == ["svm", "cnn", "bert_cnn", "majority", "snr_only", "template_fit"]
    assert sdss["search"]["strategy"] == "halving"
    # the quick default's small grids at Table 2's batch size and hidden units
    assert searched(sdss, "svm") == {"C": PAPER_C}
    assert setting(sdss, "svm", "kernel", "rbf") == ["rbf"]
    for model in ("cnn", "bert_cnn"):
        assert searched(sdss, model) == {"lr": [1.0e-3, 5.0e-4], "dropout": [0.2, 0.5]}
        for key in ("batch_size", "hidden_units"):
            assert setting(sdss, model, key) == [TABLE2_CHOSEN[model][key]], (model, key)
        fixed = sdss["models"][model]["fixed"]
        assert model_rungs(fixed, sdss["models"][model]["grid"], sdss["search"])[-1] == \
            fixed["max_epochs"]
    # one input for every model (the quick default's), a multi-layer encoder
    assert len({i for m in ("svm", "cnn", "bert_cnn") for i in setting(sdss, m, "input", "minmax")}) == 1
    assert all(ENCODER_SIZES[e]["n_layers"] > 1 for e in setting(sdss, "bert_cnn", "encoder", "tiny"))


@pytest.mark.slow
def test_sdss_yaml_plans_offline_with_the_simulated_source(tmp_path, sdss):
    # the shipped sdss.yaml merged over config.yaml, run offline (--config source=simulated)
    from workflow_helpers import absolute_shared_paths

    root = workflow_copy(tmp_path)
    write_config(root, absolute_shared_paths(load_config(REPO / "config" / "sdss.yaml")))
    jobs = planned_jobs(root, "--config", "source=simulated")
    count = lambda rule: sum(1 for r, _ in jobs if r == rule)
    runs = 3 * 5 * 3  # types x fractions x seeds
    assert count("build_dataset") == 3 and count("make_split") == runs
    assert count("tune_fit_svm") == runs and count("tune_fit_deep") == runs * 2  # per_model
    assert count("cv_deep") == count("cv_deep_rung") == count("promote_rung") == 0
    assert count("fit_reference") + count("tune_fit_reference") == runs * 3
    assert all("/simulated/" in out for r, out in jobs if r == "tune_fit_deep")


def test_sdss_cost_projection_is_the_grids_arithmetic(sdss):
    # benchmarks/bench_search.py --sdss-cost: measured costs -> sdss.yaml's core-hours
    import bench_search

    from stellarspec.fit import training_settings

    point = {"batch_size": 0, "seconds_per_fold_fixed": 0.0}
    measured = {"training": training_settings(sdss["training"]), "import_seconds": 0.0,
                "cnn": {"points": [point], "per_spectrum_epoch": {"a": 1e-3, "c_per_batch": 0.0}},
                "bert_cnn": {"points": [point], "per_spectrum_epoch": {"a": 2e-3, "c_per_batch": 0.0}},
                "svm": {"cv_fold_seconds": 0.0, "final_fit_seconds": 0.0},
                "sizes": {"n_train": 1, "n_test": 1, "n_fit": 1}}
    result = bench_search.sdss_projection(sdss, measured)
    k, seeds, fractions = sdss["experiment"]["cv_folds"], 3, sum(FRACTIONS)
    n_fit_total = 10903 * fractions * (k - 1) / k  # Table 1's counts over every fraction
    epochs = {m: sdss["models"][m]["fixed"]["max_epochs"] for m in ("cnn", "bert_cnn")}
    assert min(epochs.values()) > 10
    # halving, eta 2: 4 candidates x 5 epochs, 2 x 10, 1 x max_epochs
    assert result["models"]["cnn"]["rungs"] == [5, 10, epochs["cnn"]]
    assert result["models"]["bert_cnn"]["candidate_epochs_per_fold"] == \
        4 * 5 + 2 * 10 + epochs["bert_cnn"]
    hours = result["core_hours"]
    assert hours["cnn_cv"] == pytest.approx(
        seeds * k * (40 + epochs["cnn"]) * n_fit_total * 1e-3 / 3600)
    assert hours["bert_cnn_final_fit"] == pytest.approx(
        seeds * epochs["bert_cnn"] * 10903 * fractions * 2e-3 / 3600)
    assert result["runs"] == 45 and hours["svm"] == 0.0
    # min_steps_per_epoch 8 shrinks the CNN's batch 128 on the smallest folds only
    batches = {(r["type"], r["train_fraction"]): r["batch_cv"]
               for r in result["models"]["cnn"]["runs"]}
    assert batches[("G", 0.3)] < 128 and batches[("F", 0.7)] == 128
    assert "projected" in result["gpu_projection"]["caveat"]
