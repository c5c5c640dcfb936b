"""What Liu & Wang (2022) published, for side-by-side reference (never used to fit anything)."""
from __future__ import annotations

CITATION = ("Liu & Wang (2022), Spectroscopy and Spectral Analysis 42(3):699, "
            "'Research on the Improvement of Spectra Classification Performance With the "
            "High-Performance Hybrid Deep Learning Network'")

# Every figure below is as printed in the paper (tests/test_paper.py checks them against
# ../shared/paper/*.csv). They live here because a user's clone has no ../shared.

# Table 1: the data set. Each subclass's S/N window, printed "(lo, hi)", and its count.
TABLE1_SNR_WINDOWS = {
    "K": {"K1": (60, 65), "K3": (60, 65), "K5": (60, 65), "K7": (60, 65)},
    "F": {"F2": (50, 65), "F5": (65, 70), "F9": (75, 80)},
    "G": {"G0": (55, 65), "G2": (60, 65), "G5": (40, 70)},
}
TABLE1_COUNTS = {
    "K": {"K1": 1115, "K3": 959, "K5": 850, "K7": 317},
    "F": {"F2": 1915, "F5": 1671, "F9": 1535},
    "G": {"G0": 949, "G2": 992, "G5": 600},
}

# Table 4: test accuracy at a 70% train fraction, by stellar type, and the printed average row.
# Its training and test sizes repeat Table 3's rows at 0.7.
TABLE4_ACCURACY = {
    "svm": {"K": 0.8498, "F": 0.8314, "G": 0.8714, "average": 0.8509},
    "cnn": {"K": 0.8807, "F": 0.8893, "G": 0.9042, "average": 0.8914},
    "bert_cnn": {"K": 0.9311, "F": 0.9108, "G": 0.9239, "average": 0.9219},
}
TABLE4_TRAIN_FRACTION = 0.7

# Table 3(a)-(c): BERT-CNN's macro precision P, recall R and F1 on the test part, with the
# training and test sizes, for each type at train fractions 0.3-0.7. The paper's F1 is 2PR/(P+R)
# of its P and R (metrics.f1_of_macro_pr) in 14 of the 15 rows; F at 0.7 prints 0.9656 where
# its P and R give 0.9636 (kept as printed).
TABLE3_SOURCE = "Table 3(a)-(c) of the paper, as printed"
TABLE3_F1_NOTE = "its F1 for F at 0.7 is printed 0.9656 where 2PR/(P+R) of its P and R gives 0.9636"
TABLE3_FIELDS = ("precision", "recall", "f1", "n_train", "n_test")
TABLE3_TYPES = ("K", "F", "G")
TABLE3_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7)
_TABLE3_ROWS = (  # type, train fraction, P, R, F1, n_train, n_test
    ("K", 0.3, 0.8814, 0.8705, 0.8759, 972, 2269),
    ("K", 0.4, 0.9064, 0.8978, 0.9021, 1296, 1945),
    ("K", 0.5, 0.9351, 0.9271, 0.9311, 1621, 1620),
    ("K", 0.6, 0.9436, 0.9527, 0.9481, 1945, 1296),
    ("K", 0.7, 0.9696, 0.9809, 0.9752, 2269, 972),
    ("F", 0.3, 0.8471, 0.8665, 0.8567, 1536, 3585),
    ("F", 0.4, 0.8756, 0.8900, 0.8827, 2048, 3073),
    ("F", 0.5, 0.9101, 0.9279, 0.9189, 2561, 2560),
    ("F", 0.6, 0.9470, 0.9266, 0.9367, 3073, 2048),
    ("F", 0.7, 0.9565, 0.9708, 0.9656, 3585, 1536),
    ("G", 0.3, 0.8422, 0.8731, 0.8573, 762, 1779),
    ("G", 0.4, 0.8925, 0.9055, 0.8990, 1016, 1525),
    ("G", 0.5, 0.9161, 0.9333, 0.9246, 1271, 1270),
    ("G", 0.6, 0.9378, 0.9456, 0.9417, 1525, 1016),
    ("G", 0.7, 0.9620, 0.9659, 0.9639, 1779, 762),
)
TABLE3 = {(t, f): dict(zip(TABLE3_FIELDS, values)) for t, f, *values in _TABLE3_ROWS}
TABLE3_MODEL = "bert_cnn"              # Table 3 is BERT-CNN's alone

# Table 2: the settings the paper chose by grid search and 10-fold CV, under its printed names.
# The SVM's C is from the text (grid {0.01, ..., 10}), not Table 2.
TABLE2_CHOSEN = {
    "svm": {"C": 0.1},
    "cnn": {"batch_size": 128, "learning_rate": 1e-3, "hidden_units": 128, "dropout": 0.5},
    "bert_cnn": {"batch_size": 32, "learning_rate": 1e-3, "hidden_units": 256, "dropout": 0.5},
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


# --- what the tables imply when read together (docs/paper_numbers.md) ----------------------------

def _spread_shortfall(total: float, weights) -> float:
    """sum_c w_c d_c when a shortfall sum_c d_c = total, each d_c in [0, 1], fills the classes in
    the given order (greedy: the extreme of a linear objective over these constraints)."""
    weighted, rest = 0.0, total
    for w in weights:
        d = min(1.0, max(rest, 0.0))
        weighted, rest = weighted + w * d, rest - d
    return weighted


def accuracy_bounds(counts, macro_recall: float) -> tuple[float, float]:
    """(lowest, highest) accuracy that per-class recalls R_c in [0, 1] with mean `macro_recall`
    allow, when the test part holds the classes in the proportions of `counts`.

    accuracy = sum_c w_c R_c with w_c = n_c / N, and sum_c (1 - R_c) = C (1 - macro_recall): the
    accuracy is lowest when the shortfall falls on the largest classes, highest on the smallest."""
    weights = sorted(c / sum(counts) for c in counts)
    shortfall = len(weights) * (1 - macro_recall)
    return (1 - _spread_shortfall(shortfall, reversed(weights)),
            1 - _spread_shortfall(shortfall, weights))


def max_macro_recall(counts, accuracy: float) -> float:
    """The highest macro recall an `accuracy` allows: its weighted shortfall 1 - accuracy falls
    on the largest class first, which costs the fewest recall points."""
    weights = sorted((c / sum(counts) for c in counts), reverse=True)
    rest, shortfall = 1 - accuracy, 0.0
    for w in weights:
        d = min(1.0, rest / w)
        shortfall, rest = shortfall + d, rest - w * d
    return 1 - shortfall / len(weights)


def drops_with_training_size(table3: dict) -> list[tuple]:
    """Where P, R or F1 of a type does not rise from one train fraction to the next, against the
    text's "rise with the training size": [(type, metric, fraction, value, next fraction, value)]."""
    drops = []
    for stype in TABLE3_TYPES:
        fractions = sorted(f for t, f in table3 if t == stype)
        for metric in ("precision", "recall", "f1"):
            for a, b in zip(fractions, fractions[1:]):
                va, vb = table3[(stype, a)][metric], table3[(stype, b)][metric]
                if vb <= va:
                    drops.append((stype, metric, a, va, b, vb))
    return drops


def type_order_failures(table3: dict, order=("K", "G", "F")) -> list[tuple]:
    """Where a pair of types breaks the text's "K highest, then G, then F at the same training
    size": [(fraction, metric, type meant to be higher, its value, type meant to be lower, its
    value)], one per failing pair."""
    failures = []
    for frac in TABLE3_FRACTIONS:
        for metric in ("precision", "recall", "f1"):
            for i, above in enumerate(order):
                for below in order[i + 1:]:
                    va, vb = table3[(above, frac)][metric], table3[(below, frac)][metric]
                    if vb >= va:
                        failures.append((frac, metric, above, va, below, vb))
    return failures
