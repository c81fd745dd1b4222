"""Per-participant physiology and probe placement, drawn from documented ranges.

Every range is listed in `PARAMETER_RANGES` with its unit and source; docs/phantom.md
gives the full references. Each parameter is drawn from a symmetric triangular
distribution over its range: a population clusters around its middle, and no participant
lies outside the documented range.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Range:
    low: float
    high: float
    unit: str
    source: str


PARAMETER_RANGES: dict[str, Range] = {
    # Architecture of the medial gastrocnemius at rest, ankle neutral, knee extended.
    # Thickness follows from these two through the constant-thickness model: h = L sin(a).
    "rest_fascicle_length_mm": Range(47.0, 53.0, "mm", "Narici et al. 1996; Kawakami et al. 1998"),
    "rest_pennation_deg": Range(20.0, 22.0, "deg", "Narici et al. 1996; Kawakami et al. 1998"),
    "fat_mm": Range(3.0, 10.0, "mm", "Störchle et al. 2018 (calf subcutaneous adipose tissue, ultrasound)"),
    "skin_mm": Range(1.2, 2.2, "mm", "Störchle et al. 2018"),
    "superficial_aponeurosis_mm": Range(0.8, 1.6, "mm", "Bénard et al. 2009; Cronin et al. 2020 (DL_Track masks)"),
    "deep_aponeurosis_mm": Range(1.0, 2.0, "mm", "Bénard et al. 2009; Cronin et al. 2020 (DL_Track masks)"),
    # Fascicles operate below optimum length at neutral (ascending limb).
    "rest_length_over_optimum": Range(0.85, 0.95, "1", "Maganaris 2003 (MG operating range)"),
    # Share of muscle-tendon excursion taken up by the muscle belly at rest.
    "passive_belly_share": Range(0.62, 0.70, "1", "Herbert et al. 2002; Narici et al. 1996 (fascicle vs MTU excursion)"),
    "tendon_stiffness_n_per_mm": Range(110.0, 135.0, "N/mm", "calibrated: ~30% fascicle shortening at MVC (Narici et al. 1996)"),
    "max_torque_nm": Range(130.0, 150.0, "N·m", "Cunningham et al. 2017/2019 (0–150 N·m); Maganaris 2003"),
    "moment_arm_mm": Range(40.0, 55.0, "mm", "Maganaris et al. 1998; Rugg et al. 1990"),
    "emg_max_v": Range(0.7e-3, 1.0e-3, "V", "Cunningham et al. 2017 (EMG envelope up to ~1 mV); De Luca 1997"),
    "electromechanical_delay_s": Range(0.03, 0.07, "s", "Cavanagh & Komi 1979; Nordez et al. 2009"),
    "activation_bulge": Range(0.0, 0.04, "1", "Narici et al. 1996 (thickness nearly constant with contraction)"),
    # Passive fascicles shorter than their slack length are crimped (wavy) until stretched or activated.
    "fascicle_slack_ratio": Range(1.0, 1.1, "1", "Hoang et al. 2007; Herbert et al. 2011 (slack near neutral)"),
    "slack_wave_mm": Range(0.4, 0.7, "mm", "assumption: visible crimp of slack fascicles (docs/phantom.md)"),
    "slack_wavelength_mm": Range(7.0, 11.0, "mm", "assumption: visible crimp of slack fascicles (docs/phantom.md)"),
    "max_fascicle_curvature_per_m": Range(8.0, 12.0, "1/m", "Muramatsu et al. 2002 (grows with contraction); magnitude: assumption"),
    "passive_torque_scale_nm": Range(1.5, 4.0, "N·m", "Riener & Edrich 1999 (passive ankle moment)"),
    "passive_torque_stiffening": Range(3.0, 5.0, "1/rad", "Riener & Edrich 1999"),
    # Image appearance and probe placement.
    "muscle_echogenicity": Range(0.9, 1.1, "relative", "Pillen et al. 2008 (echo intensity varies between people)"),
    "activation_echo_drop": Range(0.05, 0.15, "relative", "assumption: contracted muscle is less echogenic (docs/phantom.md)"),
    "striation_contrast": Range(15.0, 40.0, "relative", "calibrated on GasFasTrack / DL_Track images (docs/phantom.md)"),
    "striation_spacing_mm": Range(1.0, 1.6, "mm", "calibrated on GasFasTrack images (perimysium spacing)"),
    "aponeurosis_echogenicity": Range(150.0, 600.0, "relative", "calibrated on GasFasTrack images"),
    "fat_echogenicity": Range(0.5, 1.5, "relative", "calibrated on GasFasTrack images"),
    "skin_echogenicity": Range(20.0, 80.0, "relative", "calibrated on GasFasTrack images"),
    "septa_per_cm": Range(1.0, 4.0, "1/cm", "calibrated on GasFasTrack / DL_Track images (fat septa)"),
    "gain_db": Range(-1.0, 1.0, "dB", "study settings fixed across participants; small operator adjustment"),
    "dynamic_range_db": Range(50.0, 55.0, "dB", "study settings fixed across participants (typical 45–60 dB)"),
    "residual_attenuation_db_per_mm": Range(0.0, 0.1, "dB/mm", "Goss et al. 1979 (≈1 dB/cm/MHz), TGC mismatch"),
    # Gaussian PSF standard deviations: resolution (FWHM) / 2.355 of a 7–10 MHz linear probe.
    "psf_axial_mm": Range(0.10, 0.16, "mm", "7–10 MHz linear probe: axial FWHM 0.25–0.4 mm"),
    "psf_lateral_mm": Range(0.25, 0.40, "mm", "7–10 MHz linear probe: lateral FWHM 0.6–0.95 mm"),
    "deep_aponeurosis_rise_deg": Range(0.0, 6.0, "deg", "GasFasTrack / DL_Track images"),
    "aponeurosis_convergence_deg": Range(0.0, 3.0, "deg", "GasFasTrack / DL_Track images"),
    "rest_aponeurosis_curvature_per_m": Range(-1.5, 1.5, "1/m", "GasFasTrack / DL_Track images"),
    "activation_aponeurosis_curvature_per_m": Range(1.0, 4.0, "1/m", "assumption: aponeuroses bow with contraction"),
    "probe_offset_mm": Range(-10.0, 10.0, "mm", "placement along the muscle; Bénard et al. 2009"),
    "probe_tilt_deg": Range(-4.0, 4.0, "deg", "probe tilt; Bénard et al. 2009"),
    "probe_jitter_mm": Range(0.05, 0.25, "mm", "hand-held probe motion"),
    "tissue_displacement_share": Range(0.3, 0.6, "1", "Loram et al. 2006 (tissue motion along the probe)"),
    "soleus_pennation_deg": Range(20.0, 35.0, "deg", "Kawakami et al. 1998"),
}


@dataclasses.dataclass(frozen=True)
class Participant:
    """One simulated participant: a value for each entry of PARAMETER_RANGES."""

    rest_fascicle_length_mm: float
    rest_pennation_deg: float
    fat_mm: float
    skin_mm: float
    superficial_aponeurosis_mm: float
    deep_aponeurosis_mm: float
    rest_length_over_optimum: float
    passive_belly_share: float
    tendon_stiffness_n_per_mm: float
    max_torque_nm: float
    moment_arm_mm: float
    emg_max_v: float
    electromechanical_delay_s: float
    activation_bulge: float
    fascicle_slack_ratio: float
    slack_wave_mm: float
    slack_wavelength_mm: float
    max_fascicle_curvature_per_m: float
    passive_torque_scale_nm: float
    passive_torque_stiffening: float
    muscle_echogenicity: float
    activation_echo_drop: float
    striation_contrast: float
    striation_spacing_mm: float
    aponeurosis_echogenicity: float
    fat_echogenicity: float
    skin_echogenicity: float
    septa_per_cm: float
    gain_db: float
    dynamic_range_db: float
    residual_attenuation_db_per_mm: float
    psf_axial_mm: float
    psf_lateral_mm: float
    deep_aponeurosis_rise_deg: float
    aponeurosis_convergence_deg: float
    rest_aponeurosis_curvature_per_m: float
    activation_aponeurosis_curvature_per_m: float
    probe_offset_mm: float
    probe_tilt_deg: float
    probe_jitter_mm: float
    tissue_displacement_share: float
    soleus_pennation_deg: float

    @property
    def thickness_mm(self) -> float:
        """Muscle thickness at rest: fascicle length times the sine of pennation (14–22 mm)."""
        return self.rest_fascicle_length_mm * float(np.sin(np.deg2rad(self.rest_pennation_deg)))


def draw_participant(rng: np.random.Generator) -> Participant:
    """Draws one participant, each parameter triangular over its documented range.

    Draws are made in the (fixed) order of PARAMETER_RANGES, so a seed fixes every value.
    """
    values = {name: float(rng.triangular(r.low, 0.5 * (r.low + r.high), r.high)) for name, r in PARAMETER_RANGES.items()}
    return Participant(**values)
