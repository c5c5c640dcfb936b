"""Build Tables 3-5 and the S/N-matched table from per-fit metrics and predictions.

All precision/recall/F1 figures are MACRO averages over the subclasses of a type (each subclass
weighs the same, whatever its count). The tables' F1 is the paper's, 2PR/(P+R) of macro P and R
(`f1_of_macro_pr`); Table 3 also gives the mean of per-class F1 (`f1_macro_mean`). Spread: mean
and sample std over seeds, and a 95% CI from the hierarchical bootstrap of `stats` (seeds and
each seed's test spectra resampled).

    collect     fits.csv and per_class.csv rows from fit.json and predictions.csv; convergence
    snr_match   the S/N range where the subclasses' windows overlap
    scores      per-fit confusion matrices, per-seed scores, bootstrap summaries
    tables      Tables 3, 4 and the S/N table (build_tables)
    pairs       Table 5, pairs of models on the same test spectra
    render      markdown and LaTeX
    write       csv, md and tex files
"""
from .collect import (CONVERGED_SHARE, FIT_COLUMNS, KEY, collect, convergence_by_model,
                      convergence_warnings, converged_count, run_key)
from .pairs import ALPHA, TABLE5_COLUMNS, build_table5
from .render import (ceiling_note, ci_note, convergence_note, markdown_to_latex, snr_markdown,
                     table3_markdown, table4_markdown, table5_markdown, table5_null_sentence)
from .scores import fit_summary, observed_scores, score_replicates, summarise
from .snr_match import describe_region, snr_matched_mask, snr_matched_region
from .tables import SNR_METRICS, TABLE3_METRICS, build_tables, table4_fraction
from .write import write_table_csv, write_tables

__all__ = ["ALPHA", "CONVERGED_SHARE", "FIT_COLUMNS", "KEY", "SNR_METRICS", "TABLE3_METRICS",
           "TABLE5_COLUMNS", "build_table5", "build_tables", "ceiling_note", "ci_note", "collect",
           "convergence_by_model", "convergence_note", "convergence_warnings", "converged_count",
           "describe_region", "fit_summary", "markdown_to_latex", "observed_scores", "run_key",
           "score_replicates", "snr_markdown", "snr_matched_mask", "snr_matched_region",
           "summarise", "table3_markdown", "table4_fraction", "table4_markdown", "table5_markdown",
           "table5_null_sentence", "write_table_csv", "write_tables"]
