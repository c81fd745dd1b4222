"""The pinned training-speed benchmark: the paper-size convnet on 128×128 inputs, 8 folds.

Run:      python experiments/benchmark.py --config=configs/benchmark.py --json=runs/benchmark.json
          (add --torch_python=/tmp/torchvenv/bin/python for the PyTorch reference in the same run)
Time:     about 20 min on a quiet 2-core CPU (K=8 folds × batch 64 of 128×128 images, three ways);
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
    # Winograd F(4×4, 3×3) for the layers with ≥ 128 input channels, XLA's convolution with its
    # kernel gradient in chunks of 8 images for the others (muscle_jax/runtime/conv.py): on
    # the 2-core CPU 69.4 vs 61.0 examples/s by the median against 'xla_chunked_wgrad' alone
    # (about equal by the mean: slow steps on that VM, docs/performance.md), which is itself
    # faster than plain 'xla'. At the default config's 64×64 × 32 plain 'xla' is faster than
    # the chunked kernel gradient, which is why configs/default.py keeps it.
    config.runtime.conv = "winograd"
    config.runtime.measure = ()
    config.train.batch_size = 64  # per fold
    config.train.optimizer = "adam"  # the loss is the train step's MSE
    config.model.input_norm = "none"  # the plain network, as the PyTorch reference runs it
    config.augment.enabled = False  # the PyTorch reference has no augmentation: like for like

    config.benchmark = ml_collections.ConfigDict()
    config.benchmark.num_folds = 8
    config.benchmark.image_hw = (128, 128)  # synthetic uint8 images of 1 channel
    config.benchmark.num_targets = 3
    # Per measurement, after compilation; excluded. 5: with 3, one run's first measurement
    # still caught the process's heap growing (page faults in its timed steps).
    config.benchmark.warmup_steps = 5
    # Timed steps per measurement: median, spread and mean. 8: on the shared 2-core VM some
    # programs have a slow step every third or so (docs/performance.md), which 5 can miss.
    config.benchmark.repeats = 8
    # How K folds run in one jitted step: each entry is measured (runtime.fold_execution values).
    # 'unroll' is what training uses on one CPU device ('auto'); 'vmap' is its choice elsewhere.
    config.benchmark.fold_executions = ("unroll", "vmap")
    # The single model is also measured with these runtime.conv formulations (the formulation lever).
    config.benchmark.single_convs = ("winograd", "xla_chunked_wgrad", "xla", "matmul")
    # The single model is also compiled with these XLA options (experiments/benchmark.py's
    # compiler_option_variant): the tuned set training uses is the `single` figure itself.
    # '+<option>=<value>' adds or changes one option of the tuned set, '-<option>' drops one.
    config.benchmark.compiler_option_variants = (
        "xla_defaults", "xla_cpu_experimental_ynn_fusion_type", "xla_cpu_use_fusion_emitters",
        "+xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
    )
    # The K-fold programs are also compiled with these (relative to the options training uses
    # for them; a variant equal to those is not run twice): without the memory-optimised
    # schedule that unrolled folds get (runtime/xla_cpu.py's UNROLLED_FOLDS_OPTIONS).
    config.benchmark.fold_compiler_option_variants = ("-xla_cpu_scheduler_type",)
    # On a CPU host, a K-fold measurement whose XLA memory plan exceeds this fraction of the
    # available memory is recorded as skipped instead of run (the host is shared).
    config.benchmark.max_memory_fraction = 0.5
    # With --torch_python: rounds in which the JAX single-model step and PyTorch's take turns
    # (each `repeats` timed steps after warm-up). In one run the matmul probe and every JAX
    # row came out 8–12% below the run before, while PyTorch, measured last, came out the
    # same: one JAX measurement early and one PyTorch measurement late may meet two machines.
    # 6: in two six-round runs the per-round ratio ranged 1.05–1.22 by the median.
    config.benchmark.pytorch_rounds = 6
    config.benchmark.peak_matmul_size = 2048  # n of the n×n @ n×n probe for the machine's peak
    config.benchmark.input_pipeline_steps = 20  # batches read from the tfds + grain pipeline
    return config
