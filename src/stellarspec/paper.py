"""What Liu & Wang (2022) published, for side-by-side reference (never used to fit anything)."""
from __future__ import annotations

CITATION = ("Liu & Wang (2022), Spectroscopy and Spectral Analysis 42(3):699, "
            "'Research on the Improvement of Spectra Classification Performance With the "
            "High-Performance Hybrid Deep Learning Network'")

# Table 4: test accuracy at a 70% train fraction, by stellar type.
TABLE4_ACCURACY = {
    "svm": {"K": 0.850, "F": 0.831, "G": 0.871, "average": 0.851},
    "cnn": {"K": 0.881, "F": 0.889, "G": 0.904, "average": 0.891},
    "bert_cnn": {"K": 0.931, "F": 0.911, "G": 0.924, "average": 0.922},
}
TABLE4_TRAIN_FRACTION = 0.7

# Table 3: BERT-CNN's macro precision P, recall R and F1 on the test part, with the training and
# test sizes, for each type at train fractions 0.3-0.7. The paper's F1 is 2PR/(P+R) of its P and R
# (metrics.f1_of_macro_pr).
#
# Only values read in a source are stored; None is a value not read. The full table is NOT stored:
# its pages (www.gpxygpfx.com/EN/Y2022/V42/I03/699, the Chinese full text
# www.gpxygpfx.com/article/2022/1000-0593-42-3-699.html and its copy on fx361.cc) were found, but
# only their openings (abstract, introduction) could be read, not the table. The three values below
# are those quoted in this project's issue 11 ("The paper's metric definitions"), which cites
# Table 3(a) and Table 4 of the paper; they were not re-read from the paper itself.
TABLE3_SOURCE = "issue 11 of this project, quoting the paper's Table 3 (not re-read from the paper)"
TABLE3_FIELDS = ("precision", "recall", "f1", "n_train", "n_test")
TABLE3_TYPES = ("K", "F", "G")
TABLE3_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7)
TABLE3 = {(t, f): dict.fromkeys(TABLE3_FIELDS) for t in TABLE3_TYPES for f in TABLE3_FRACTIONS}
TABLE3[("K", 0.7)]["recall"] = 0.9809
TABLE3[("K", 0.5)]["f1"] = 0.9311      # equals Table 4's K accuracy for BERT-CNN at 70%
TABLE3[("F", 0.7)]["f1"] = 0.9656      # as printed; 2PR/(P+R) of its P and R gives 0.9636 (issue 11)
TABLE3_MODEL = "bert_cnn"              # Table 3 is BERT-CNN's alone

# Table 2: the hyperparameters the paper chose by 10-fold CV.
TABLE2_CHOSEN = {
    "svm": {"C": 0.1},
    "cnn": {"batch_size": 128, "lr": 1e-3, "hidden_units": 128, "dropout": 0.5},
    "bert_cnn": {"batch_size": 32, "lr": 1e-3, "hidden_units": 256, "dropout": 0.5},
}


def paper_accuracy(model: str, stellar_type: str):
    """Published Table 4 accuracy, or None (the paper has no pretrained variant, nor other types)."""
    return TABLE4_ACCURACY.get(model, {}).get(stellar_type)


def paper_table3(model: str, stellar_type: str, train_fraction: float) -> dict:
    """Published Table 3 fields for one row ({field: value or None}); all None for other models."""
    row = TABLE3.get((stellar_type, round(float(train_fraction), 4)))
    if model != TABLE3_MODEL or row is None:
        return dict.fromkeys(TABLE3_FIELDS)
    return dict(row)


def check_f1_definition(table3: dict, tol: float = 1e-4) -> dict:
    """Apply 2PR/(P+R) to each stored row that has P, R and F1: how many rows it reproduces.

    Returns {"checked": rows with all three, "reproduced": of those within tol, "mismatches":
    [(type, fraction, printed F1, 2PR/(P+R))]}."""
    from .metrics import f1_of_macro_pr

    checked, mismatches = 0, []
    for (stype, frac), row in sorted(table3.items()):
        p, r, f1 = row.get("precision"), row.get("recall"), row.get("f1")
        if p is None or r is None or f1 is None:
            continue
        checked += 1
        derived = f1_of_macro_pr(p, r)
        if abs(derived - f1) > tol:
            mismatches.append((stype, frac, f1, round(derived, 6)))
    return {"checked": checked, "reproduced": checked - len(mismatches), "mismatches": mismatches}
