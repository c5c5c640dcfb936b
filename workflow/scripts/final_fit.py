from _job import choose_and_fit, device_slot, to_log

to_log(snakemake)

with device_slot(snakemake):
    choose_and_fit(snakemake, snakemake.input.get("folds") or [],
                   snakemake.input.get("pretrained") or None, snakemake.input.get("oof"))
