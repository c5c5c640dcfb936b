"""What Liu & Wang (2022) published, for side-by-side reference (never used to fit anything)."""

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

# Table 2: the hyperparameters the paper chose by 10-fold CV.
TABLE2_CHOSEN = {
    "svm": {"C": 0.1},
    "cnn": {"batch_size": 128, "lr": 1e-3, "hidden_units": 128, "dropout": 0.5},
    "bert_cnn": {"batch_size": 32, "lr": 1e-3, "hidden_units": 256, "dropout": 0.5},
}


def paper_accuracy(model: str, stellar_type: str):
    """Published Table 4 accuracy, or None (the paper has no pretrained variant, nor other types)."""
    return TABLE4_ACCURACY.get(model, {}).get(stellar_type)
