"""The pinned training-speed benchmark: the paper-size convnet on 128×128 inputs, 8 folds.

Run:      python experiments/benchmark.py --config=configs/benchmark.py --json=runs/benchmark.json
          (add --torch_python=/tmp/torchvenv/bin/python for the PyTorch reference in the same run)
Time:     about 10 min on a quiet 2-core CPU (K=8 folds × batch 64 of 128×128 images, three ways);
          `--config.benchmark.num_folds=2 --config.train.batch_size=16` for a one-minute look.
Expected: the figures in docs/performance.md (examples/s, FLOP/s and its fraction of the
          measured matmul peak, compile time, memory) for one model, K folds in one step and
          K models one after another, and the input pipeline alone.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.name = "convnet"
    config.model.channels = (32, 64, 128, 256)
    config.model.hidden = 256
    config.model.dropout = 0.5
    config.model.norm = "none"
    config.model.dtype = "float32"
    # The K-fold-friendly formulation: its cost per example does not grow with the fold axis
    # (vmap or map); 'xla' is faster for one model but not under vmap or lax.map on CPU.
    config.model.conv_impl = "matmul"
    config.train.batch_size = 64  # per fold
    config.train.optimizer = "adam"  # the loss is the train step's MSE

    config.benchmark = ml_collections.ConfigDict()
    config.benchmark.num_folds = 8
    config.benchmark.image_hw = (128, 128)  # synthetic uint8 images of 1 channel
    config.benchmark.num_targets = 3
    config.benchmark.warmup_steps = 1  # per measurement, after compilation; excluded
    config.benchmark.repeats = 3  # timed steps per measurement: median and spread
    # How K folds run in one jitted step: each entry is measured (train.fold_execution values).
    config.benchmark.fold_executions = ("vmap", "map")
    # The single model is also measured with these conv_impls (the formulation lever).
    config.benchmark.single_conv_impls = ("matmul", "xla")
    # On a CPU host, a K-fold measurement whose XLA memory plan exceeds this fraction of the
    # available memory is recorded as skipped instead of run (the host is shared).
    config.benchmark.max_memory_fraction = 0.5
    config.benchmark.peak_matmul_size = 2048  # n of the n×n @ n×n probe for the machine's peak
    config.benchmark.input_pipeline_steps = 20  # batches read from the tfds + grain pipeline
    return config
