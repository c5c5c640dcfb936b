"""The `stellarspec` command: classify your own spectra with a trained model.

    stellarspec export FIT_DIR model.pt [--templates PATH]
    stellarspec predict --model MODEL FILES_OR_DIRS... -o predictions.csv [--rejects PATH]
                        [--min-confidence P] [--templates PATH]
    stellarspec inspect FILE [--model MODEL] [--json]

Exit status: 0 success; 1 predict rejected some inputs (they are in the rejects file) or
inspect's file would be rejected; 2 bad input (a missing path, a model that cannot be used),
with a one-line reason on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The schema's default grid (workflow/schemas/config.schema.yaml; a test keeps them equal),
# for `inspect` without a model.
DEFAULT_GRID = {"log10_start": 3.58, "log10_step": 1.0e-4, "n_pixels": 3840}
TEMPLATES_HELP = ("the spEigenStar template file of the out-of-domain check (default: the one "
                  "an exported model carries, else the training config's, else "
                  "../shared/data/sdss/templates/spEigenStar-53724.fits from here or the "
                  "checkout); see docs/predict.md")


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stellarspec", description="Classify stellar spectra into subclasses with a "
        "model trained by the stellarspec workflow.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = sub.add_parser(
        "export", help="write one self-contained model file from a deep fit",
        description="Write the weights, architecture, preprocessing, classes, training-data "
        "provenance and test metrics of a deep final fit to one file.")
    export.add_argument("fit_dir", type=Path,
                        help="results/<source>/<type>/frac<f>_seed<s>/fit/<model>")
    export.add_argument("out", type=Path, help="the model file to write (e.g. model.pt)")
    export.add_argument("--templates", type=Path, default=None, help=TEMPLATES_HELP)

    predict = sub.add_parser(
        "predict", help="classify spectrum files",
        description="Classify SDSS (legacy/BOSS, full/lite), LAMOST LRS (image/table) FITS "
        "files, gzip/bz2 or plain, and table files (.npz/.h5), with exactly the preprocessing "
        "the model was trained with. Directories are searched recursively.")
    predict.add_argument("--model", "-m", required=True, type=Path,
                         help="an exported model file or a fit directory")
    predict.add_argument("inputs", nargs="+", type=Path, metavar="FILES_OR_DIRS")
    predict.add_argument("-o", "--output", required=True, type=Path,
                         help="predictions CSV: id, file, pred, p_<class>..., label, snr, "
                         "good_fraction, template, template_rchi2, the out-of-domain flags "
                         "and abstain")
    predict.add_argument("--rejects", type=Path, default=None,
                         help="CSV of the inputs that could not be used, with the reason "
                         "(default: <output>.rejects.csv)")
    predict.add_argument("--min-confidence", type=float, default=None, metavar="P",
                         help="leave a spectrum unclassified (pred empty, abstain "
                         "'low_confidence') when its top probability is below P")
    predict.add_argument("--raw-probabilities", action="store_true",
                         help="the network's own softmax, not the calibrated probabilities "
                              "(no low_model_score flag then)")
    predict.add_argument("--templates", type=Path, default=None, help=TEMPLATES_HELP)
    predict.add_argument("--no-progress", action="store_true", help="no progress output")

    inspect = sub.add_parser(
        "inspect", help="show what the readers see in one file",
        description="Show a file's format and layout, and per spectrum its label, S/N, "
        "wavelength range, good-pixel coverage on the common grid and why it would be "
        "rejected.")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--model", "-m", type=Path, default=None,
                         help="use this model's grid and settings (default: the workflow's "
                         "default grid, 3802-9202 A)")
    inspect.add_argument("--templates", type=Path, default=None, help=TEMPLATES_HELP)
    inspect.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"export": _export, "predict": _predict, "inspect": _inspect}[args.command](args)
    except UsageError as err:
        print(f"stellarspec {args.command}: error: {err}", file=sys.stderr)
        return 2


def _model(path, templates=None):
    from .classify import ModelError, load_model

    try:
        return load_model(path, templates)
    except ModelError as err:
        raise UsageError(str(err)) from None


def _export(args) -> int:
    from .classify import ModelError, export_model

    try:
        bundle = export_model(args.fit_dir, args.out, args.templates)
    except ModelError as err:
        raise UsageError(str(err)) from None
    training, metrics = bundle["training"], bundle["metrics"]
    print(f"wrote {args.out}: {bundle['model']} for type {training['stellar_type']} "
          f"({', '.join(bundle['classes'])}), trained on {training['n_train']} "
          f"{training['source']} spectra; test accuracy {metrics['accuracy']:.3f}")
    return 0


def _paths(inputs) -> list[str]:
    from .data.readers import find_spectrum_files

    try:
        paths = find_spectrum_files(inputs)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if not paths:
        raise UsageError(f"no spectrum files (*.fits[.gz|.bz2], *.npz, *.h5) in "
                         f"{', '.join(map(str, inputs))}")
    return paths


def _predict(args) -> int:
    from .classify import FLAG_COLUMNS, predict_files
    from .io import write_csv

    if args.min_confidence is not None and not args.min_confidence == args.min_confidence:
        raise UsageError("--min-confidence must be a number, got nan")
    model = _model(args.model, args.templates)
    paths = _paths(args.inputs)
    predictions, rejects = predict_files(model, paths, show_progress=not args.no_progress,
                                         min_confidence=args.min_confidence,
                                         calibrated=not args.raw_probabilities)
    rejects_path = args.rejects or args.output.with_name(args.output.stem + ".rejects.csv")
    write_csv(args.output, predictions)
    write_csv(rejects_path, rejects)
    flagged = int(predictions[FLAG_COLUMNS].any(axis=1).sum())
    abstained = int((predictions["abstain"] != "").sum())
    print(f"{len(predictions)} spectra classified into {args.output} ({flagged} flagged out of "
          f"the training domain, {abstained} left unclassified below --min-confidence); "
          f"{len(rejects)} rejected into {rejects_path}", file=sys.stderr)
    for line in calibration_lines(model, predictions, not args.raw_probabilities):
        print(line, file=sys.stderr)
    return 1 if len(rejects) else 0


def calibration_lines(model, predictions, calibrated: bool) -> list[str]:
    """What predict says about its probabilities: the fit's temperature and its out-of-fold
    ECE before and after, and the ECE before and after on the input's own labelled spectra."""
    import numpy as np

    from .calibration import expected_calibration_error, log_probabilities, scaled_probabilities

    info = model.calibration
    if info.get("method") != "temperature":
        return [f"probabilities: not calibrated by temperature ({info.get('method')}: "
                f"{info.get('fitted_on', 'a model exported before calibration')})"]
    T, bins, oof = float(info["temperature"]), int(info["bins"]), info["ece_out_of_fold"]
    lines = [f"probabilities: {'calibrated, temperature' if calibrated else 'raw; the fit has temperature'} "
             f"{T:.3f} (fitted on {info['fitted_on']}); out-of-fold ECE ({bins} bins) "
             f"{oof['raw']:.3f} raw -> {oof['calibrated']:.3f} calibrated"]
    classes = model.classes
    labelled = predictions[predictions["label"].isin(classes)]
    if len(labelled):
        shown = labelled[[f"p_{c}" for c in classes]].to_numpy(dtype=float)
        y = np.array([classes.index(c) for c in labelled["label"]])
        raw = scaled_probabilities(log_probabilities(shown), 1 / T) if calibrated else shown
        cal = shown if calibrated else scaled_probabilities(log_probabilities(shown), T)
        lines.append(f"on the {len(y)} input spectra labelled with one of the model's classes: "
                     f"ECE {expected_calibration_error(raw, y, bins):.3f} raw -> "
                     f"{expected_calibration_error(cal, y, bins):.3f} calibrated")
    return lines


def _inspect(args) -> int:
    from .classify import inspect_file

    if not args.file.is_file():
        raise UsageError(f"{args.file} does not exist or is not a file")
    if args.model is not None:
        model = _model(args.model, args.templates)
        prep = model.prep
        report = inspect_file(args.file, prep["grid"], prep["normalise"],
                              prep["min_good_fraction"], model)
        grid = prep["grid"]
    else:
        from .data.batch import MIN_GOOD_FRACTION

        grid = DEFAULT_GRID
        report = inspect_file(args.file, grid, min_good_fraction=MIN_GOOD_FRACTION)
    report["grid"] = grid
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(_describe(report))
    rejected = report["rejects"] or any(s["reject"] for s in report["spectra"])
    return 1 if rejected else 0


def _describe(report: dict) -> str:
    lines = [f"file: {report['file']}"]
    for bad in report["rejects"]:
        lines.append(f"  rejected{' ' + bad['id'] if bad['id'] else ''}: {bad['reason']}: "
                     f"{bad['detail']}")
    if report["format"] is None:
        return "\n".join(lines)
    grid = report["grid"]
    lines.append(f"format: {report['format']} ({report['layout']}), "
                 f"{len(report['spectra'])} spectra")
    lines.append(f"common grid: {grid['n_pixels']} pixels, 10**({grid['log10_start']} + "
                 f"{grid['log10_step']} i) A")
    for s in report["spectra"]:
        snr = "n/a" if s["snr"] is None else f"{s['snr']:.2f}"
        label = s["label"] if s["label"] not in (None, "") else "(none)"
        cls = f", CLASS {s['class']}" if s["class"] else ""
        verdict = "usable" if s["reject"] is None else f"rejected: {s['reject'][0]}: {s['reject'][1]}"
        lines.append(f"  {s['id']}: label {label}{cls}, S/N {snr}, {s['n_pixels']} pixels "
                     f"{s['wavelength'][0]:.1f}-{s['wavelength'][1]:.1f} A, "
                     f"{s['good_fraction']:.1%} of the grid good; {verdict}")
        lines.extend(f"    note: {note}" for note in s["notes"])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
