"""The data layer: spectra from every source, selected, preprocessed and saved as one dataset
per stellar type.

    sources        build_dataset / write_dataset: the configured source, end to end
    generated      simulated, label_first and templates sources
    spec_files     SDSS and LAMOST file sources (Table 1's selection file by file)
    spectra_table  the table source (a labelled-spectra file)
    batch          steps every source shares: unusable spectra, one per object, the cap
    preprocess     mask, resample onto the common grid, fill, normalise
    dataset        SpectraSet and its .npz file
    readers        every spectrum file behind one call, and the search for them
    fits_parser    the strict FITS parser; sdss_fits and lamost_fits read spectra with it
    sdss_remote    the DR10 query and download
"""
