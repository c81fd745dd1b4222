"""Online estimation, piece by piece: frames prepared as `predict` prepares them (`prepare`), a
bounded hand-over that drops the oldest waiting frame when the estimator falls behind (`handover`),
per-frame estimators that each add named columns (`estimators`), where the estimates go (`sinks`:
CSV, LSL), latency accounting (`latency`) and the loop that joins them (`session`).
`muscle_jax.live` is the command; `docs/live.md` explains the design and its measurements.
"""
