"""Masking, resampling (line centres stay put), filling and normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from stellarspec.data import preprocess as P
from stellarspec.data.sdss_fits import read_many

GRID = {"log10_start": 3.58, "log10_step": 1.0e-4, "n_pixels": 3840}
OUT = P.grid_loglam(GRID)


def test_grid_is_the_legacy_sdss_grid():
    wave = P.grid_wave(GRID)
    assert wave.shape == (3840,)
    assert wave[0] == pytest.approx(10**3.58) and round(wave[0]) == 3802
    assert round(wave[-1]) == 9202  # centre of the last pixel
    assert np.allclose(np.diff(np.log10(wave)), 1e-4)


def test_rebin_is_the_identity_on_the_same_grid():
    rng = np.random.default_rng(0)
    flux = rng.normal(5, 1, size=(3, 800))
    out, good = P.rebin(OUT[100:900], flux, np.ones_like(flux, bool), OUT)
    assert np.allclose(out[:, 100:900], flux, rtol=0, atol=1e-10)
    assert good[:, 100:900].all()
    assert not good[:, :100].any() and not good[:, 900:].any()  # outside coverage: masked


@pytest.mark.parametrize("step, offset", [(1e-4, 0.5), (0.7e-4, 0.31), (0.25e-4, 0.0),
                                          (2.3e-4, 0.17), (3e-4, 0.77)])
def test_gaussian_line_keeps_its_centre_and_equivalent_width(step, offset):
    """A line resampled from finer, shifted and coarser grids stays where it was."""
    centre, sigma, depth = 3.7123456, 3e-4, 0.6
    loglam = 3.60 + step * (np.arange(int(0.3 / step)) + offset)
    flux = 1 - depth * np.exp(-0.5 * ((loglam - centre) / sigma) ** 2)
    out, good = P.rebin(loglam, flux, np.ones_like(flux, bool), OUT)
    near = (np.abs(OUT - centre) < 8 * sigma) & good[0]
    absorbed = 1 - out[0, near]
    measured = np.sum(absorbed * OUT[near]) / np.sum(absorbed)
    assert abs(measured - centre) < 0.01 * GRID["log10_step"]  # < 1% of a pixel
    true_ew = depth * sigma * np.sqrt(2 * np.pi)
    assert np.sum(absorbed) * GRID["log10_step"] == pytest.approx(true_ew, rel=1e-3)


def test_rebin_does_not_average_noise_into_aliases():
    """Downsampling by 4 averages 4 input pixels: the noise drops by 2 (interpolation would not)."""
    rng = np.random.default_rng(1)
    loglam = OUT[0] + 0.25e-4 * (np.arange(4 * 3000) - 1.5)
    noise = rng.normal(0, 1, size=(1, len(loglam)))
    out, good = P.rebin(loglam, noise, np.ones_like(noise, bool), OUT)
    assert np.std(out[good]) == pytest.approx(0.5, rel=0.05)


def test_bad_pixels_and_coverage():
    flux = np.array([[1.0, np.nan, 3.0, np.inf, 5.0]])
    ivar = np.array([[1.0, 1.0, 0.0, 1.0, 1.0]])
    and_mask = np.array([[0, 0, 0, 0, 4]])
    assert P.bad_pixels(flux, ivar, and_mask).tolist() == [[False, True, True, True, True]]
    # A bad input pixel masks the output pixel it covers, not its neighbours.
    loglam = OUT[10:20]
    f = np.linspace(1, 2, 10)[None]
    good_in = np.ones_like(f, bool)
    good_in[0, 4] = False
    out, good = P.rebin(loglam, f, good_in, OUT)
    assert good[0, 10:20].tolist() == [True] * 4 + [False] + [True] * 5


def test_fill_is_linear_between_neighbours_and_constant_past_the_ends():
    flux = np.array([[9.0, 2.0, 9.0, 9.0, 8.0, 9.0],
                     [1.0, 9.0, 9.0, 9.0, 9.0, 4.0]])
    bad = np.array([[True, False, True, True, False, True],
                    [False, True, True, True, True, False]])
    filled = P.fill_masked(flux, bad)
    assert np.allclose(filled, [[2, 2, 4, 6, 8, 8], [1, 1.6, 2.2, 2.8, 3.4, 4]])


def test_minmax_uses_good_pixels_and_ends_in_unit_interval():
    rng = np.random.default_rng(2)
    flux = rng.normal(10, 3, size=(5, 200))
    bad = rng.random((5, 200)) < 0.2
    flux[bad] = 1e6  # a huge bad value must not set the scale
    filled = P.fill_masked(flux, bad)
    out = P.normalise(filled, bad, "minmax")
    assert out.min() >= 0 and out.max() <= 1
    good = ~bad
    for row, g in zip(out, good):
        assert row[g].min() == 0 and row[g].max() == pytest.approx(1)


def test_normalisation_uses_only_its_own_spectrum():
    rng = np.random.default_rng(3)
    flux = rng.normal(10, 3, size=(4, 100))
    bad = rng.random((4, 100)) < 0.1
    for method in P.NORMALISATIONS:
        batch = P.normalise(flux, bad, method)
        alone = np.vstack([P.normalise(flux[i:i + 1], bad[i:i + 1], method) for i in range(4)])
        assert np.array_equal(batch, alone)
    med = P.normalise(flux, bad, "median")
    assert np.allclose([np.median(m[~b]) for m, b in zip(med, bad)], 1)
    assert np.array_equal(P.normalise(flux, bad, "none"), flux)
    with pytest.raises(ValueError, match="normalise"):
        P.normalise(flux, bad, "zscore")


def test_preprocess_batch_matches_row_by_row_and_reports_empty_rows():
    rng = np.random.default_rng(4)
    loglam = 3.59 + 0.5e-4 * np.arange(6000)
    flux = rng.normal(10, 1, size=(3, 6000))
    ivar = np.ones_like(flux)
    ivar[2] = 0  # nothing usable
    out, mask, n_good = P.preprocess(loglam, flux, ivar, loglam_out=OUT, chunk=2)[:3]
    assert out.dtype == np.float32 and out.shape == (3, 3840)
    assert n_good[2] == 0 and n_good[0] > 0 and mask[2].all()
    single = P.preprocess(loglam, flux[1:2], ivar[1:2], loglam_out=OUT).flux
    assert np.array_equal(out[1], single[0])
    assert 0 <= out[:2].min() and out[:2].max() <= 1
    # Input pixel edges span 3.589975 to 3.889975; output pixels less than half covered are
    # masked: the one centred on 3.59 is 3/4 covered (kept), the one on 3.89 1/4 (masked).
    inside = (OUT > 3.58995) & (OUT < 3.88995)
    assert mask[0, ~inside].all() and not mask[0, inside].any()


def test_real_spectra(shared_data):
    paths = sorted((shared_data / "sdss" / "spectra-lite").glob("spec-*.fits"))
    records, rejects = read_many(paths)
    assert rejects == []
    out, mask, n_good = P.preprocess_records(records, OUT)[:3]
    assert out.shape == (10, 3840) and np.isfinite(out).all()
    assert out.min() == 0 and out.max() == 1
    for rec, m in zip(records, mask):
        bad_in = P.bad_pixels(rec.flux, rec.ivar, rec.and_mask)
        # Legacy spectra sit on the grid: a masked output pixel is a bad input pixel or no pixel.
        if rec.meta["ERA"] == "legacy":
            index = np.rint((rec.loglam.astype(np.float64) - OUT[0]) / 1e-4).astype(int)
            inside = (index >= 0) & (index < len(OUT))
            assert np.array_equal(m[index[inside]], bad_in[inside])
            assert m[:max(index[0], 0)].all() and m[index[-1] + 1:].all()


@pytest.mark.parametrize("step, offset", [(1e-4, 0.0), (0.25e-4, 0.0), (0.7e-4, 0.31),
                                          (2.3e-4, 0.17)])
def test_rebinned_ivar_is_the_variance_of_the_rebinned_flux(step, offset):
    """Per output pixel, 1 / ivar equals the variance of the rebinned flux over many noise
    draws (heteroscedastic input, some input pixels masked)."""
    rng = np.random.default_rng(7)
    loglam = 3.60 + step * (np.arange(int(0.05 / step)) + offset)
    sigma = rng.uniform(0.5, 2.0, len(loglam))
    good = rng.random(len(loglam)) > 0.1
    noise = rng.normal(0, 1, size=(4000, len(loglam))) * sigma
    out, good_out = P.rebin(loglam, noise, np.broadcast_to(good, noise.shape), OUT)
    ivar = P.rebin_ivar(loglam, 1 / sigma ** 2, good, OUT)[0]
    assert np.array_equal(ivar > 0, good_out[0])
    empirical = out[:, good_out[0]].var(axis=0)
    assert np.allclose(empirical * ivar[good_out[0]], 1, atol=0.1)  # 4000 draws: ~2% spread
    assert np.median(empirical * ivar[good_out[0]]) == pytest.approx(1, abs=0.01)
    if step == 0.25e-4:  # aligned: four unit-variance inputs per output pixel give ivar 4
        aligned = loglam + 0.5 * step
        unit = P.rebin_ivar(aligned, np.ones(len(loglam)), np.ones(len(loglam), bool), OUT)[0]
        assert np.allclose(unit[unit > 0][1:-1], 4.0)


def test_preprocess_keeps_ivar_offset_and_scale():
    rng = np.random.default_rng(8)
    raw = rng.uniform(5, 50, size=(3, len(OUT)))
    ivar = rng.uniform(0.5, 2, size=raw.shape)
    ivar[0, 100:110] = 0
    for loglam in (OUT, 3.59 + 0.5e-4 * np.arange(6000)):
        flux_in = raw if loglam is OUT else rng.uniform(5, 50, size=(3, len(loglam)))
        ivar_in = ivar if loglam is OUT else np.ones_like(flux_in)
        for method in P.NORMALISATIONS:
            prep = P.preprocess(loglam, flux_in, ivar_in, loglam_out=OUT, method=method)
            good = ~prep.mask
            assert prep.ivar.dtype == np.float32 and np.all(prep.ivar[prep.mask] == 0)
            rebinned, _ = P.rebin(loglam, flux_in, ivar_in > 0, OUT)
            restored = prep.flux * prep.flux_scale[:, None] + prep.flux_offset[:, None]
            assert np.allclose(restored[good], rebinned[good], rtol=1e-5)
            raw_ivar = P.rebin_ivar(loglam, ivar_in, ivar_in > 0, OUT)
            assert np.allclose(prep.ivar[good] / prep.flux_scale.repeat(good.sum(1)) ** 2,
                               raw_ivar[good], rtol=1e-5)
        if loglam is OUT:
            assert np.allclose(prep.ivar[0, 100:110], 0) and prep.mask[0, 100:110].all()
    assert P.preprocess(OUT, raw, None, loglam_out=OUT).ivar is None
