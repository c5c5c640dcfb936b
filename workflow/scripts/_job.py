"""What every job script does first: log to its Snakemake log file, and take its device."""
import contextlib
import os
import sys


def to_log(snakemake) -> None:
    """Send the script's output to its log file (line-buffered, so a killed job keeps its log)."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)
        sys.stdout = sys.stderr = log


def device_slot(snakemake):
    """A job that declared gpu=0 sees no GPU; one that declared a GPU takes a free one.

    Snakemake sets no CUDA_VISIBLE_DEVICES for local jobs, so the lock-file allocator picks
    it; under Slurm the variable is already set and the allocator leaves it alone.
    """
    if not snakemake.resources.get("gpu", 0):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return contextlib.nullcontext()
    from stellarspec.gpu_slots import gpu_slot

    return gpu_slot()


def cv_folds(snakemake, outputs) -> None:
    """Score the rule's model's candidates on CV folds, one CSV in `outputs` per fold: the
    job's {fold} (fit.cv_fold), or every fold in turn, with halving rung by rung (the
    tune_fit rules of search.cv_jobs = per_model: fit.cv_every_fold)."""
    from stellarspec.fit import cv_every_fold, cv_fold

    params = snakemake.params
    pretrained = snakemake.input.get("pretrained") or []
    pretrained = [pretrained] if isinstance(pretrained, str) else list(pretrained)
    common = dict(model=params.settings["family"], fixed=params.settings.get("fixed", {}),
                  grid=params.settings["grid"], threads=snakemake.threads,
                  seed=int(snakemake.wildcards.seed),
                  templates=snakemake.input.get("templates") or None,
                  training=params.get("training"), search=params.get("search"))
    oof = snakemake.output.get("oof") or []
    oof = [oof] if isinstance(oof, str) else list(oof)  # one fold's file, or every fold's
    if "fold" not in snakemake.wildcards.keys():
        cv_every_fold(snakemake.input.data, snakemake.input.split, out_csvs=list(outputs),
                      out_oofs=oof or None,
                      metric=params.metric, by_epoch=params.by_epoch,
                      workdirs=params.get("workdir"), pretrained=pretrained or None, **common)
        return
    cv_fold(snakemake.input.data, snakemake.input.split, int(snakemake.wildcards.fold),
            out_csv=outputs[0], pretrained=pretrained[0] if pretrained else None,
            workdir=(params.get("workdir") or [None])[0], rung=params.get("rung") or 0,
            promoted=snakemake.input.get("promoted"),
            previous_csv=snakemake.input.get("previous"), out_oof=oof[0] if oof else None,
            **common)


def choose_and_fit(snakemake, fold_csvs, pretrained=None, oof=None) -> None:
    """Choose the candidate from the fold CSVs (fit.chosen_params), fit it on the whole
    training part and predict the test part once (fit.final_fit)."""
    from pathlib import Path

    from stellarspec.fit import chosen_params, final_fit

    p = snakemake.params
    selection = chosen_params(p.settings, list(fold_csvs), p.metric, by_epoch=p.by_epoch,
                              training=p.get("training"))
    print(selection["how"], selection["chosen"], flush=True)
    final_fit(snakemake.input.data, snakemake.input.split, p.settings["family"],
              selection["params"], Path(snakemake.output.predictions).parent,
              threads=snakemake.threads, seed=int(snakemake.wildcards.seed),
              pretrained=pretrained, templates=snakemake.input.get("templates") or None,
              training=p.get("training"), selection=selection, oof=oof or None,
              calibration=p.get("calibration"))
