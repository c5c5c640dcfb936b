from _job import to_log

to_log(snakemake)
import numpy as np

from stellarspec import figures
from stellarspec.data.dataset import load_dataset
from stellarspec.io import read_json
from stellarspec.template_fit import fit_templates, read_templates

templates = read_templates(snakemake.params.templates)
panels = []
for stype, data, summary in zip(snakemake.params.types, snakemake.input.data, snakemake.input.summary):
    ds, worth = load_dataset(data), read_json(summary).get("label_worth", {})
    loglam = np.log10(ds.wave)
    for subclass in ds.classes:
        rows = np.flatnonzero(ds.label == subclass)
        i = rows[np.argsort(ds.snr[rows], kind="stable")[len(rows) // 2]]   # median S/N
        own = templates.subset([subclass])
        fit = fit_templates(loglam, ds.flux[i:i + 1], ds.ivar[i:i + 1], own)
        rest = loglam - np.log10(1 + fit.velocity_kms[0, 0] / 299792.458)
        template = np.interp(rest, own.loglam, own.flux[0], left=0.0, right=0.0)
        truth = {k: v[i] for k, v in ds.truth.items()}
        title = (f"{stype} {subclass}: Teff {truth.get('teff', np.nan):.0f} K, log g "
                 f"{truth.get('logg', np.nan):.1f}, [Fe/H] {truth.get('feh', np.nan):+.1f}, "
                 f"S/N {ds.snr[i]:.0f}\n{stype} labels != MK-nearest subclass: "
                 f"{worth.get('disagreement_mk', float('nan')):.0%}")
        panels.append({"type": stype, "subclass": subclass, "wave": ds.wave, "flux": ds.flux[i],
                       "good": ~ds.mask[i] & (template != 0), "template": template,
                       "title": title})
figures.simulated_spectra_plot(panels, snakemake.output[0], "simulated")
