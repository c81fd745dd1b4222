"""Raw surface EMG to a linear envelope in volts.

Band-pass (Butterworth, removes motion artefact below and noise above the EMG band) →
full-wave rectification → low-pass (Butterworth, the envelope), every filter applied
forwards and backwards (`sosfiltfilt`) so the envelope is not delayed relative to the
video. The defaults follow common surface-EMG practice: 20–450 Hz band, 6 Hz envelope,
4th-order sections. Settings come from the config as a dict with these keys.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as scipy_signal

DEFAULT_EMG = {"bandpass_hz": (20.0, 450.0), "lowpass_hz": 6.0, "order": 4, "min_rate_hz": 1000.0}


def emg_envelope(raw_v_S: np.ndarray, rate_hz: float, settings: dict | None = None, source: str = "EMG") -> np.ndarray:
    """The envelope (volts, ≥ 0 up to filter ripple) of raw EMG sampled at `rate_hz`.

    Errors name `source` when the rate is below `min_rate_hz`, the band does not fit under
    the Nyquist frequency, the signal holds NaNs (a zero-phase filter would spread them over
    the whole trial) or is too short for the filters.
    """
    settings = {**DEFAULT_EMG, **(settings or {})}
    low_hz, high_hz = (float(f) for f in settings["bandpass_hz"])
    lowpass_hz, order = float(settings["lowpass_hz"]), int(settings["order"])
    # Rates computed from recorded time stamps carry rounding: 999.9999 Hz is a 1 kHz recording.
    if rate_hz < 0.999 * float(settings["min_rate_hz"]):
        raise ValueError(
            f"{source}: raw EMG sampled at {rate_hz:.1f} Hz, below the {settings['min_rate_hz']:.0f} Hz this "
            "conditioning needs; give an envelope (emg_v) instead"
        )
    nyquist_hz = rate_hz / 2
    if not 0 < low_hz < high_hz < nyquist_hz or not 0 < lowpass_hz < nyquist_hz:
        raise ValueError(
            f"{source}: EMG filter band {low_hz}-{high_hz} Hz / low-pass {lowpass_hz} Hz must lie below "
            f"the Nyquist frequency {nyquist_hz:.1f} Hz"
        )
    raw_v_S = np.asarray(raw_v_S, dtype=np.float64)
    nan_rows = np.flatnonzero(~np.isfinite(raw_v_S))
    if len(nan_rows):
        raise ValueError(f"{source}: raw EMG is NaN or infinite at {len(nan_rows)} sample(s), first data row {nan_rows[0] + 1}")
    bandpass = scipy_signal.butter(order, (low_hz, high_hz), btype="bandpass", fs=rate_hz, output="sos")
    lowpass = scipy_signal.butter(order, lowpass_hz, btype="lowpass", fs=rate_hz, output="sos")
    try:
        rectified_S = np.abs(scipy_signal.sosfiltfilt(bandpass, raw_v_S))
        return scipy_signal.sosfiltfilt(lowpass, rectified_S)
    except ValueError as error:
        raise ValueError(f"{source}: raw EMG of {len(raw_v_S)} samples is too short for the filters ({error})") from error


def sampling_rate_hz(time_s_S: np.ndarray, source: str) -> float:
    """The rate of uniformly sampled times; an error naming `source` when steps vary by more than 1 %."""
    steps_S = np.diff(time_s_S)
    if len(steps_S) == 0:
        raise ValueError(f"{source}: needs at least 2 samples to know its sampling rate")
    step = float(np.median(steps_S))
    if np.max(np.abs(steps_S - step)) > 0.01 * step:
        raise ValueError(f"{source}: raw EMG must be uniformly sampled (time steps vary from {steps_S.min()} to {steps_S.max()} s)")
    return 1.0 / step
