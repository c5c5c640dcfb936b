from _job import choose_and_fit, cv_folds, device_slot, to_log

to_log(snakemake)

# One process scores every CV fold and makes the final fit: the imports are paid once.
with device_slot(snakemake):
    cv_folds(snakemake, list(snakemake.output.folds))
    choose_and_fit(snakemake, snakemake.output.folds, snakemake.input.get("final_encoder") or None,
                   snakemake.output.get("oof"))
