"""Mixed precision: bfloat16 computation (float32 parameters, optimiser state, loss and
predictions) against float32, on the held-out participants (`runtime.compute_dtype`)."""

RUNS = [
    ("float32", {}),
    ("bfloat16", {"runtime.compute_dtype": "bfloat16"}),
]
