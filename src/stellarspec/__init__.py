"""Stellar subclass classification of SDSS spectra: SVM, CNN and BERT-CNN (Liu & Wang 2022)."""

__version__ = "0.1.0"
