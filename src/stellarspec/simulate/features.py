"""The absorption features of the physical generator: how each family's strength follows Teff
(TRENDS, trend), the atomic lines, the weak-line forest, the molecular bands, line blanketing
and the surface-gravity dependence.
"""
from __future__ import annotations

import numpy as np

# How each feature's strength depends on Teff: a Gaussian in log10(Teff) around the temperature
# where it peaks, with separate widths (dex) on the hot and cool sides:
#   name: (peak Teff [K], width hot side [dex], width cool side [dex])
TRENDS = {
    # H I n=2 population (Boltzmann) times neutral fraction (Saha): peaks at A0-A2 and fades
    # steeply through F, G and K.
    "balmer": (9500.0, 0.16, 0.15),
    # He I needs ~20 eV excitation: B stars only; He II: O stars only.
    "he1": (20000.0, 0.10, 0.06),
    "he2": (40000.0, 0.10, 0.04),
    # O I 7774 triplet (9 eV lower level): strongest in late A / early F, gone by K.
    "oxygen_triplet": (7800.0, 0.15, 0.08),
    # Ionised metals (Fe II, Ti II, Sr II, Ba II): peak in F, weaken as they recombine in K.
    "ionised_metal": (6500.0, 0.15, 0.20),
    # Ca II H&K: Ca is Ca II from A to K and the H- continuum opacity falls with Teff, so the
    # lines grow from A to K (saturated, with damping wings) and fade in M.
    "ca2_hk": (4700.0, 0.12, 0.20),
    # Ca II infrared triplet: mildly temperature sensitive, broad maximum in G-K.
    "ca2_triplet": (5000.0, 0.15, 0.25),
    # Neutral metals (Fe I, Mg I, Ca I, Cr I, Mn I, Al I, Si I) grow as their ionised fraction
    # falls: weak in F, strong in K, peaking at the K/M boundary.
    "neutral_metal": (4000.0, 0.10, 0.25),
    # Alkalis (Na I, K I; ionisation potential ~5 eV) keep growing into the M dwarfs.
    "alkali": (3500.0, 0.13, 0.25),
    # CH (G band) and CN: appear in F, strongest in mid-K, fade in M as TiO takes over.
    "ch": (4700.0, 0.09, 0.10),
    # MgH (dwarf, gravity-sensitive): from ~K0, strong in late K and M.
    "mgh": (3600.0, 0.07, 0.20),
    # Blanketing by the unresolved forest (below): negligible in F-G, strong from K5 on.
    "blanket": (3500.0, 0.07, 0.30),
    # TiO: only below ~4300 K (weak at K7, dominant through M).
    "tio": (3000.0, 0.05, 0.30),
}

# Atomic lines: (name, vacuum wavelength [A], trend, strength [A], Lorentzian half-width of the
# damping wings [A] (0 = pure Gaussian core), scales with metallicity). Strength is the
# integrated optical depth (= equivalent width in the weak-line limit): for metal lines (last
# column True) in the Sun (SOLAR_TEFF, [Fe/H] = 0), for H, He and O I at the trend's peak.
# Vacuum wavelengths: NIST air values converted with the Morton (2000) formula, as in SDSS.
LINES = [
    # Balmer series: pressure-broadened wings, independent of metallicity.
    ("H-alpha", 6564.61, "balmer", 16.0, 7.0, False),
    ("H-beta", 4862.69, "balmer", 13.6, 7.0, False),
    ("H-gamma", 4341.69, "balmer", 12.0, 6.5, False),
    ("H-delta", 4102.90, "balmer", 11.2, 6.0, False),
    ("H-epsilon", 3971.19, "balmer", 9.6, 5.5, False),
    ("H8", 3890.15, "balmer", 8.0, 5.0, False),
    ("H9", 3836.47, "balmer", 6.8, 4.5, False),
    ("H10", 3798.98, "balmer", 5.6, 4.0, False),
    # Helium (O and B stars).
    ("He I 4026", 4027.33, "he1", 1.2, 0.0, False),
    ("He I 4471", 4472.73, "he1", 1.4, 0.0, False),
    ("He I 4922", 4923.30, "he1", 0.8, 0.0, False),
    ("He I 5876", 5877.25, "he1", 1.0, 0.0, False),
    ("He I 6678", 6679.99, "he1", 0.7, 0.0, False),
    ("He II 4686", 4687.01, "he2", 1.0, 0.0, False),
    # O I triplet.
    ("O I 7772", 7774.08, "oxygen_triplet", 0.5, 0.0, False),
    ("O I 7774", 7776.31, "oxygen_triplet", 0.4, 0.0, False),
    ("O I 7775", 7777.53, "oxygen_triplet", 0.3, 0.0, False),
    # Ca II H&K and the Ca II infrared triplet: strong, saturated, damping wings.
    ("Ca II K", 3934.77, "ca2_hk", 45.51, 2.5, True),
    ("Ca II H", 3969.59, "ca2_hk", 34.13, 2.0, True),
    ("Ca II 8498", 8500.35, "ca2_triplet", 2.94, 0.8, True),
    ("Ca II 8542", 8544.44, "ca2_triplet", 6.42, 1.2, True),
    ("Ca II 8662", 8664.52, "ca2_triplet", 5.14, 1.0, True),
    # Alkalis: Na D, Na I 8190 doublet, K I 7699 doublet.
    ("Na D2", 5891.58, "alkali", 2.97, 0.8, True),
    ("Na D1", 5897.55, "alkali", 2.47, 0.7, True),
    ("Na I 8183", 8185.51, "alkali", 0.37, 0.3, True),
    ("Na I 8195", 8197.07, "alkali", 0.49, 0.3, True),
    ("K I 7665", 7667.01, "alkali", 0.62, 0.4, True),
    ("K I 7699", 7701.08, "alkali", 0.49, 0.4, True),
    # Mg I: the b triplet (with damping wings in K dwarfs) and others.
    ("Mg I b1", 5168.76, "neutral_metal", 1.41, 0.5, True),
    ("Mg I b2", 5174.12, "neutral_metal", 1.97, 0.6, True),
    ("Mg I b4", 5185.04, "neutral_metal", 2.39, 0.7, True),
    ("Mg I 3829", 3830.45, "neutral_metal", 1.60, 0.3, True),
    ("Mg I 3832", 3833.39, "neutral_metal", 2.20, 0.3, True),
    ("Mg I 3838", 3839.38, "neutral_metal", 2.50, 0.3, True),
    ("Mg I 4571", 4572.38, "neutral_metal", 0.23, 0.0, True),
    ("Mg I 4703", 4704.31, "neutral_metal", 0.40, 0.0, True),
    ("Mg I 5528", 5529.94, "neutral_metal", 0.35, 0.0, True),
    ("Mg I 8807", 8809.18, "neutral_metal", 0.60, 0.0, True),
    # Ca I.
    ("Ca I 4227", 4227.92, "neutral_metal", 2.00, 0.6, True),
    ("Ca I 6103", 6104.41, "neutral_metal", 0.14, 0.0, True),
    ("Ca I 6122", 6123.91, "neutral_metal", 0.20, 0.0, True),
    ("Ca I 6162", 6163.88, "neutral_metal", 0.23, 0.0, True),
    ("Ca I 6439", 6440.85, "neutral_metal", 0.14, 0.0, True),
    # Fe I blends (the Lick Fe4383, Fe5270, Fe5335 features among them).
    ("Fe I 3820", 3821.51, "neutral_metal", 2.21, 0.0, True),
    ("Fe I 3860", 3861.00, "neutral_metal", 2.02, 0.0, True),
    ("Fe I 4046", 4046.95, "neutral_metal", 1.52, 0.0, True),
    ("Fe I 4064", 4064.74, "neutral_metal", 1.03, 0.0, True),
    ("Fe I 4072", 4072.89, "neutral_metal", 0.94, 0.0, True),
    ("Fe I 4144", 4145.04, "neutral_metal", 0.61, 0.0, True),
    ("Fe I 4202", 4203.21, "neutral_metal", 0.43, 0.0, True),
    ("Fe I 4260", 4261.67, "neutral_metal", 0.78, 0.0, True),
    ("Fe I 4272", 4272.96, "neutral_metal", 0.99, 0.0, True),
    ("Fe I 4326", 4326.98, "neutral_metal", 1.03, 0.0, True),
    ("Fe I 4384", 4384.78, "neutral_metal", 1.30, 0.0, True),
    ("Fe I 4405", 4405.99, "neutral_metal", 1.17, 0.0, True),
    ("Fe I 4415", 4416.36, "neutral_metal", 0.55, 0.0, True),
    ("Fe I 4529", 4529.88, "neutral_metal", 0.26, 0.0, True),
    ("Fe I 4920", 4921.87, "neutral_metal", 0.56, 0.0, True),
    ("Fe I 4958", 4958.98, "neutral_metal", 0.52, 0.0, True),
    ("Fe I 5227", 5228.65, "neutral_metal", 0.45, 0.0, True),
    ("Fe I 5270", 5271.01, "neutral_metal", 0.62, 0.0, True),
    ("Fe I 5328", 5329.52, "neutral_metal", 0.49, 0.0, True),
    ("Fe I 5371", 5372.98, "neutral_metal", 0.39, 0.0, True),
    ("Fe I 5397", 5398.63, "neutral_metal", 0.33, 0.0, True),
    ("Fe I 5406", 5407.27, "neutral_metal", 0.34, 0.0, True),
    ("Fe I 5430", 5431.21, "neutral_metal", 0.33, 0.0, True),
    ("Fe I 5447", 5448.43, "neutral_metal", 0.31, 0.0, True),
    ("Fe I 6192", 6193.27, "neutral_metal", 0.17, 0.0, True),
    ("Fe I 6231", 6232.44, "neutral_metal", 0.21, 0.0, True),
    ("Fe I 6253", 6254.29, "neutral_metal", 0.17, 0.0, True),
    ("Fe I 6394", 6395.37, "neutral_metal", 0.18, 0.0, True),
    ("Fe I 6400", 6401.77, "neutral_metal", 0.21, 0.0, True),
    ("Fe I 6495", 6496.77, "neutral_metal", 0.23, 0.0, True),
    ("Fe I 8689", 8691.01, "neutral_metal", 0.35, 0.0, True),
    ("Fe I 8824", 8826.64, "neutral_metal", 0.26, 0.0, True),
    # Other neutral metals: Mn I 4030 triplet, Cr I 5206 triplet, Al I, Si I.
    ("Mn I 4031", 4031.89, "neutral_metal", 0.45, 0.0, True),
    ("Mn I 4033", 4034.20, "neutral_metal", 0.40, 0.0, True),
    ("Mn I 4034", 4035.62, "neutral_metal", 0.30, 0.0, True),
    ("Cr I 5205", 5205.96, "neutral_metal", 0.35, 0.0, True),
    ("Cr I 5206", 5207.49, "neutral_metal", 0.45, 0.0, True),
    ("Cr I 5208", 5209.87, "neutral_metal", 0.55, 0.0, True),
    ("Al I 3944", 3945.13, "neutral_metal", 0.60, 0.0, True),
    ("Al I 3962", 3962.64, "neutral_metal", 0.80, 0.0, True),
    ("Si I 3906", 3906.63, "neutral_metal", 0.60, 0.0, True),
    # Ionised metals.
    ("Fe II 4924", 4925.29, "ionised_metal", 0.29, 0.0, True),
    ("Fe II 5018", 5019.84, "ionised_metal", 0.29, 0.0, True),
    ("Fe II 5169", 5170.47, "ionised_metal", 0.34, 0.0, True),
    ("Fe II 5317", 5318.09, "ionised_metal", 0.19, 0.0, True),
    ("Sr II 4078", 4078.86, "ionised_metal", 0.29, 0.0, True),
    ("Sr II 4216", 4216.71, "ionised_metal", 0.24, 0.0, True),
    ("Ba II 4554", 4555.31, "ionised_metal", 0.29, 0.0, True),
    ("Ba II 4934", 4935.46, "ionised_metal", 0.24, 0.0, True),
    ("Ba II 6142", 6143.41, "ionised_metal", 0.19, 0.0, True),
    ("Ba II 6497", 6498.70, "ionised_metal", 0.19, 0.0, True),
    ("Ti II 4444", 4445.05, "ionised_metal", 0.24, 0.0, True),
    ("Ti II 4468", 4469.74, "ionised_metal", 0.24, 0.0, True),
    ("Ti II 4501", 4502.53, "ionised_metal", 0.24, 0.0, True),
    ("Ti II 4572", 4573.25, "ionised_metal", 0.19, 0.0, True),
]

# The forest of weaker neutral-metal lines that shapes F-K spectra at R ~ 2000, most of all
# below 4500 A: (species, vacuum wavelength [A], strength tier). Lines prominent in the solar
# spectrum (Moore et al. 1966 solar line list, air wavelengths converted to vacuum); the tier is
# the rough solar equivalent width, FOREST_SOLAR_EW[tier]. Neutral species follow the
# neutral_metal trend, ionised ones (" II") the ionised_metal trend; all scale with metallicity.
FOREST_SOLAR_EW = {1: 0.2, 2: 0.45, 3: 1.1}  # A
FOREST = [
    ("Fe I", 3825.53, 2), ("Fe I", 3826.97, 3), ("Fe I", 3828.91, 2), ("Fe I", 3841.53, 2),
    ("Fe I", 3842.14, 2), ("Fe I", 3857.46, 2), ("Fe I", 3879.67, 2), ("Fe I", 3887.38, 3),
    ("Fe I", 3896.76, 2), ("Fe I", 3900.81, 2), ("Fe I", 3904.06, 2), ("Fe I", 3921.37, 2),
    ("Fe I", 3924.02, 2), ("Fe I", 3929.03, 2), ("Fe I", 3931.41, 2), ("Fe I", 4006.37, 2),
    ("Fe I", 4133.23, 2), ("Fe I", 4188.22, 1), ("Fe I", 4188.98, 1), ("Fe I", 4199.48, 1),
    ("Fe I", 4237.13, 2), ("Fe I", 4251.32, 2), ("Fe I", 4251.99, 2), ("Fe I", 4283.60, 1),
    ("Fe I", 4309.11, 2), ("Fe I", 4316.29, 1), ("Fe I", 4338.27, 1), ("Fe I", 4353.95, 1),
    ("Fe I", 4377.16, 1), ("Fe I", 4428.55, 1), ("Fe I", 4443.59, 1), ("Fe I", 4448.97, 1),
    ("Fe I", 4462.90, 1), ("Fe I", 4467.80, 1), ("Fe I", 4477.28, 1), ("Fe I", 4495.82, 1),
    ("Fe I", 4872.68, 1), ("Fe I", 4873.50, 1), ("Fe I", 4892.13, 1), ("Fe I", 4892.86, 2),
    ("Fe I", 4920.37, 1), ("Fe I", 5007.52, 1), ("Fe I", 5013.47, 1), ("Fe I", 5042.48, 1),
    ("Fe I", 5051.23, 1), ("Fe I", 5053.04, 1), ("Fe I", 5084.76, 1), ("Fe I", 5111.83, 1),
    ("Fe I", 5135.12, 1), ("Fe I", 5140.89, 1), ("Fe I", 5144.36, 1), ("Fe I", 5152.27, 1),
    ("Fe I", 5168.93, 2), ("Fe I", 5173.04, 1), ("Fe I", 5192.90, 1), ("Fe I", 5193.79, 1),
    ("Fe I", 5196.39, 1), ("Fe I", 5217.72, 1), ("Fe I", 5234.40, 2), ("Fe I", 5268.03, 1),
    ("Fe I", 5283.26, 1), ("Fe I", 5285.09, 1), ("Fe I", 5325.66, 2), ("Fe I", 5341.42, 1),
    ("Fe I", 5342.51, 1), ("Fe I", 5368.96, 1), ("Fe I", 5371.45, 1), ("Fe I", 5384.87, 1),
    ("Fe I", 5394.67, 1), ("Fe I", 5412.41, 1), ("Fe I", 5416.71, 1), ("Fe I", 5425.58, 1),
    ("Fe I", 5436.03, 1), ("Fe I", 5571.17, 1), ("Fe I", 5574.39, 1), ("Fe I", 5588.31, 1),
    ("Fe I", 5617.20, 1), ("Fe I", 6139.39, 1), ("Fe I", 6248.05, 1), ("Fe I", 6266.86, 1),
    ("Fe I", 6337.08, 1), ("Fe I", 6413.42, 1), ("Fe I", 6423.12, 1), ("Fe I", 6432.63, 1),
    ("Fe I", 6548.05, 1), ("Fe I", 6594.73, 1), ("Fe I", 6679.83, 1), ("Fe I", 8329.34, 1),
    ("Fe I", 8390.08, 1), ("Fe I", 8470.73, 1), ("Fe I", 8516.41, 1), ("Fe I", 8623.97, 1),
    ("Fe I", 8677.13, 1), ("Ca I", 4284.22, 1), ("Ca I", 4290.57, 1), ("Ca I", 4303.74, 2),
    ("Ca I", 4319.86, 1), ("Ca I", 4456.03, 2), ("Ca I", 5590.30, 1), ("Ca I", 5859.07, 1),
    ("Ca I", 6451.59, 1), ("Ca I", 6464.36, 1), ("Ca I", 6495.57, 1), ("Ca I", 6719.53, 1),
    ("Cr I", 4255.53, 2), ("Cr I", 4276.00, 2), ("Cr I", 4290.93, 2), ("Ti I", 4983.12, 1),
    ("Ti I", 4992.46, 1), ("Ti I", 5000.89, 1), ("Mn I", 4755.37, 1), ("Mn I", 4784.77, 1),
    ("Mn I", 4824.87, 1), ("Na I", 5684.21, 1), ("Na I", 5689.79, 1), ("Mg I", 8720.22, 1),
    ("Mg I", 8738.42, 1), ("Ni I", 5478.42, 1),
    ("Fe I", 4491.00, 1), ("Fe I", 4532.42, 1), ("Fe I", 4593.94, 1), ("Fe I", 4604.23, 1),
    ("Fe I", 4648.73, 1), ("Fe I", 4668.76, 1), ("Fe I", 4680.16, 1), ("Fe I", 4692.72, 1),
    ("Fe I", 4708.59, 1), ("Fe I", 4711.60, 1), ("Fe I", 4734.91, 1), ("Fe I", 4738.09, 1),
    ("Fe I", 4788.15, 1), ("Fe I", 4861.10, 1), ("Fe I", 4879.57, 1), ("Fe I", 4904.68, 1),
    ("Fe I", 4940.19, 1), ("Fe I", 4967.48, 1), ("Fe I", 4983.89, 1), ("Fe I", 4995.52, 1),
    ("Fe I", 5003.26, 1), ("Fe I", 5007.11, 1), ("Fe I", 5023.64, 1), ("Fe I", 5045.62, 1),
    ("Fe I", 5070.18, 1), ("Fe I", 5076.16, 1), ("Fe I", 5080.64, 1), ("Fe I", 5081.16, 1),
    ("Fe I", 5092.19, 1), ("Fe I", 5100.12, 1), ("Fe I", 5108.87, 1), ("Fe I", 5109.06, 1),
    ("Fe I", 5125.15, 1), ("Fe I", 5126.55, 1), ("Fe I", 5128.79, 1), ("Fe I", 5132.90, 1),
    ("Fe I", 5138.81, 1), ("Fe I", 5143.17, 1), ("Fe I", 5153.35, 1), ("Fe I", 5163.71, 1),
    ("Fe I", 5196.92, 1), ("Fe I", 5200.16, 1), ("Fe I", 5216.63, 1), ("Fe I", 5218.84, 1),
    ("Fe I", 5226.98, 1), ("Fe I", 5243.95, 1), ("Fe I", 5251.67, 1), ("Fe I", 5252.11, 1),
    ("Fe I", 5254.92, 1), ("Fe I", 5264.77, 1), ("Fe I", 5303.78, 1), ("Fe I", 5308.84, 1),
    ("Fe I", 5334.38, 1), ("Fe I", 5366.36, 1), ("Fe I", 5366.89, 1), ("Fe I", 5375.20, 1),
    ("Fe I", 5390.98, 1), ("Fe I", 5402.00, 1), ("Fe I", 5446.55, 1), ("Fe I", 5467.92, 1),
    ("Fe I", 5475.42, 1), ("Fe I", 5502.99, 1), ("Fe I", 5508.31, 1), ("Fe I", 5561.75, 1),
    ("Fe I", 5564.25, 1), ("Fe I", 5577.64, 1), ("Fe I", 5626.10, 1), ("Fe I", 5639.82, 1),
    ("Fe I", 5660.39, 1), ("Fe I", 5664.09, 1), ("Fe I", 5703.12, 1), ("Fe I", 5754.72, 1),
    ("Fe I", 5764.60, 1), ("Fe I", 5776.68, 1), ("Fe I", 5817.98, 1), ("Fe I", 5863.98, 1),
    ("Fe I", 5907.31, 1), ("Fe I", 5931.82, 1), ("Fe I", 5936.29, 1), ("Fe I", 5958.34, 1),
    ("Fe I", 5978.44, 1), ("Fe I", 5985.34, 1), ("Fe I", 5986.47, 1), ("Fe I", 6004.67, 1),
    ("Fe I", 6010.22, 1), ("Fe I", 6021.84, 1), ("Fe I", 6025.73, 1), ("Fe I", 6028.72, 1),
    ("Fe I", 6057.68, 1), ("Fe I", 6067.16, 1), ("Fe I", 6080.17, 1), ("Fe I", 6098.35, 1),
    ("Fe I", 6129.61, 1), ("Fe I", 6138.31, 1), ("Fe I", 6153.32, 1), ("Fe I", 6159.43, 1),
    ("Fe I", 6167.07, 1), ("Fe I", 6172.22, 1), ("Fe I", 6175.05, 1), ("Fe I", 6181.91, 1),
    ("Fe I", 6189.70, 1), ("Fe I", 6202.03, 1), ("Fe I", 6215.15, 1), ("Fe I", 6221.00, 1),
    ("Fe I", 6234.36, 1), ("Fe I", 6242.38, 1), ("Fe I", 6255.99, 1), ("Fe I", 6271.95, 1),
    ("Fe I", 6299.53, 1), ("Fe I", 6303.24, 1), ("Fe I", 6304.23, 1), ("Fe I", 6319.77, 1),
    ("Fe I", 6324.44, 1), ("Fe I", 6345.90, 1), ("Fe I", 6356.79, 1), ("Fe I", 6382.50, 1),
    ("Fe I", 6409.79, 1), ("Fe I", 6421.72, 1), ("Fe I", 6470.98, 1), ("Fe I", 6477.41, 1),
    ("Fe I", 6483.66, 1), ("Fe I", 6500.74, 1), ("Fe I", 6520.17, 1), ("Fe I", 6535.74, 1),
    ("Fe I", 6571.02, 1), ("Fe I", 6576.84, 1), ("Fe I", 6583.03, 1), ("Fe I", 6595.69, 1),
    ("Fe I", 6610.94, 1), ("Fe I", 6635.58, 1), ("Fe I", 6665.28, 1), ("Fe I", 6705.42, 1),
    ("Fe I", 6706.95, 1), ("Fe I", 6728.53, 1), ("Fe I", 6752.01, 1), ("Fe I", 6808.73, 1),
    ("Fe I", 6812.14, 1), ("Fe I", 6830.47, 1), ("Fe I", 6841.72, 1), ("Fe I", 6844.58, 1),
    ("Fe I", 6845.55, 1), ("Fe I", 6857.05, 1), ("Fe I", 6860.04, 1), ("Fe I", 7447.80, 1),
    ("Fe I", 7497.13, 1), ("Fe I", 7513.09, 1), ("Ti I", 4534.51, 1), ("Ti I", 4536.05, 1),
    ("Ti I", 4536.84, 1), ("Ti I", 4657.77, 1), ("Ti I", 4683.22, 1), ("Ti I", 5015.59, 1),
    ("Ti I", 5024.27, 1), ("Ti I", 5037.86, 1), ("Ti I", 5041.37, 1), ("Ti I", 5066.06, 1),
    ("Ti I", 5175.18, 1), ("Ti I", 5194.42, 1), ("Ti I", 5211.84, 1), ("Cr I", 5347.29, 1),
    ("Cr I", 5411.28, 1), ("Ca I", 5263.17, 1), ("Ca I", 5263.70, 1), ("Ca I", 5265.71, 1),
    ("Ca I", 5267.03, 1), ("Ca I", 5271.74, 2), ("Ca I", 5350.96, 1), ("Ca I", 5583.52, 1),
    ("Ca I", 5591.67, 1), ("Ca I", 5596.02, 1), ("Ca I", 5600.04, 1), ("Ca I", 5602.85, 1),
    ("Ca I", 6168.15, 1), ("Ca I", 6170.75, 1), ("Ca I", 6171.27, 1), ("Ca I", 6457.38, 1),
    ("Ca I", 6473.45, 1), ("Ca I", 6501.45, 1), ("Ca I", 7150.12, 1), ("Ca I", 7204.19, 1),
    ("Ca I", 7328.17, 1), ("Na I", 6155.93, 1), ("Na I", 6162.45, 1), ("Mg I", 5712.67, 1),
    ("Si I", 5692.01, 1), ("Si I", 5709.98, 1), ("Si I", 5773.75, 1), ("Si I", 5950.19, 1),
    ("Si I", 6156.83, 1), ("Si I", 7407.81, 1), ("Si I", 7417.99, 1), ("Si I", 7425.54, 1),
    ("Fe II", 4585.12, 2), ("Fe II", 4630.64, 1), ("Fe II", 5199.03, 1), ("Fe II", 5236.08, 1),
    ("Fe II", 5277.47, 1), ("Fe II", 5285.58, 1), ("Fe II", 5364.36, 1), ("Fe II", 6240.12, 1),
    ("Fe II", 6249.29, 1), ("Fe II", 6434.46, 1), ("Fe II", 6458.16, 1), ("Fe II", 6517.88, 1),
    ("Sc II", 5032.42, 1), ("Sc II", 5528.33, 1), ("Y II", 4885.04, 1), ("Ba II", 5855.29, 1),
]

# Molecular bands: (name, vacuum band head [A], shape, length [A], trend, integrated optical
# depth at the trend's peak and solar metallicity [A]). Shape +1: sharp head, absorption
# decaying exponentially over `length` to the red (degraded to the red); -1: to the violet;
# 0: a smooth-edged box from the head over `length` (a dense blend of lines).
BANDS = [
    ("CN 3883", 3884.50, -1, 30.0, "ch", 6.0),
    ("CH G band", 4297.0, 0, 20.0, "ch", 15.0),    # CH A-X (0,0) blend, 4297-4317 A
    ("MgH 4780", 4781.34, -1, 60.0, "mgh", 20.0),
    ("MgH 5211", 5212.45, -1, 180.0, "mgh", 130.0),
    ("TiO 4955", 4955.98, +1, 60.0, "tio", 25.0),
    ("TiO 5167", 5168.14, +1, 70.0, "tio", 30.0),
    ("TiO 5449", 5449.51, +1, 80.0, "tio", 30.0),
    ("TiO 5849", 5848.62, +1, 80.0, "tio", 25.0),
    ("TiO 6160", 6160.50, +1, 100.0, "tio", 45.0),
    ("TiO 6653", 6653.14, +1, 100.0, "tio", 40.0),
    ("TiO 7056", 7055.64, +1, 120.0, "tio", 150.0),
    ("TiO 7591", 7591.09, +1, 90.0, "tio", 40.0),
    ("TiO 8435", 8434.62, +1, 80.0, "tio", 35.0),
]

# Line blanketing: the dense forest of neutral-metal and molecular (MgH, CH, CN) lines that sets
# in through late K crushes the blue continuum of cool dwarfs. Optical depth BLANKET_TAU *
# blanket trend * 10**[Fe/H] * (BLANKET_PIVOT / wavelength)**BLANKET_SLOPE.
BLANKET_TAU = 4.0
BLANKET_PIVOT = 4000.0
BLANKET_SLOPE = 10.0

SDSS_TEMPLATE_BALMER_WINDOW = 40.0  # A either side of a Balmer line: not scaled with [Fe/H]

# Surface gravity. The features above are those of dwarfs (log g = LOGG_DWARF); a giant's lower
# pressure changes them by 10**(k (logg - LOGG_DWARF)) per family: pressure-sensitive MgH and
# the alkali lines (Na D, Na I 8190, K I; damping wings) weaken, the Balmer wings a little; the
# ionised metals (Sr II 4077, Fe II, Ti II: more ionised at low electron pressure), the Ca II
# triplet and CN strengthen: the classical MK luminosity criteria (Gray & Corbally 2009, ch. 6-7).
LOGG_DWARF = 4.5
GRAVITY = {"mgh": 0.3, "alkali": 0.1, "balmer": 0.03, "ionised_metal": -0.08,
           "ca2_triplet": -0.06, "cn": -0.12}


def trend(teff: np.ndarray, name: str) -> np.ndarray:
    """Relative strength (peak 1) of a feature family at the given temperatures."""
    peak, width_hot, width_cool = TRENDS[name]
    x = np.log10(np.asarray(teff, dtype=float) / peak)
    width = np.where(x > 0, width_hot, width_cool)
    return np.exp(-0.5 * (x / width) ** 2)
