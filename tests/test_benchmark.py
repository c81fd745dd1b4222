"""experiments/benchmark.py end to end on a tiny network: every figure the issue asks for is saved."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from muscle_jax.runtime import allocator, machine

_REPO = Path(__file__).resolve().parents[1]


def test_benchmark_writes_every_figure(smoke_dataset, tmp_path):
    out = tmp_path / "benchmark.json"
    command = [
        sys.executable, str(_REPO / "experiments" / "benchmark.py"), "--config=configs/benchmark.py",
        f"--json={out}",
        "--config.model.channels=(4, 128)", "--config.model.hidden=8",
        "--config.benchmark.num_folds=2", "--config.train.batch_size=4", "--config.benchmark.image_hw=(16, 16)",
        "--config.benchmark.warmup_steps=1", "--config.benchmark.repeats=2",
        "--config.benchmark.single_convs=('xla',)",
        "--config.benchmark.compiler_option_variants=('xla_defaults', '+xla_cpu_use_fusion_emitters=true')",
        "--config.benchmark.fold_compiler_option_variants=('-xla_cpu_scheduler_type',)",
        "--config.benchmark.peak_matmul_size=256", "--config.benchmark.input_pipeline_steps=2",
        f"--config.dataset.data_dir={smoke_dataset.data_dir}", "--config.dataset.builder_config=phantom_smoke",
    ]
    completed = subprocess.run(command, cwd=_REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["peak_probe"]["dtype"] == "float32"
    known = machine.datasheet_peak(results["machine"]["devices"][0], "float32")  # a CPU's peak is only measured
    assert results["datasheet_peak"] == known
    assert all(("fraction_of_datasheet_peak" in results[key]) == (known is not None)
               for key in ("single", "folds_vmapped", "folds_sequential"))

    for key in ("single", "folds_unroll", "folds_vmapped", "folds_sequential", "input_pipeline"):
        assert results[key]["examples_per_s"] > 0, key
    for key in ("single", "folds_unroll", "folds_vmapped", "folds_sequential"):
        assert 0 < results[key]["fraction_of_peak"] < 1.5, key
        figures = results[key]
        assert figures["examples_per_s_min"] <= figures["examples_per_s_mean"] <= figures["examples_per_s_max"], key
        reclaimed, mib = figures["steps_with_memory_reported_to_host"], figures["memory_reported_to_host_mib"]
        if allocator.memory_reported_to_host_kib() is None:
            assert reclaimed is None and mib is None, key
        else:  # counted on every timed step; a step counts exactly when memory went to the host
            assert 0 <= reclaimed <= figures["repeats"] and mib >= 0 and (reclaimed == 0) == (mib == 0), key
    assert results["model_flops_per_example"] > 0 and results["peak_flops_per_s"] > 0
    assert set(results["compile_s"]) >= {"single", "folds_unroll", "folds_vmapped"}
    assert results["model"]["channels"] == [4, 128] and results["runtime"]["conv"] == "winograd"
    assert set(results["single_by_conv"]) == {"winograd", "xla"}
    # The model's FLOPs are those of direct convolutions, whichever formulation ran.
    direct = results["single_by_conv"]["xla"]["executed_flops_per_example"]
    assert abs(results["model_flops_per_example"] - direct) <= 1e-6 * direct
    # The 128 → 128 layer runs Winograd, which XLA counts as fewer FLOPs than the model's.
    assert 0 < results["single"]["executed_flops_per_example"] < results["model_flops_per_example"]
    tuned = results["compiler_options"]
    by_options = results["single_by_compiler_options"]
    assert set(by_options) == {"tuned", "xla_defaults", "+xla_cpu_use_fusion_emitters=true"}
    assert by_options["xla_defaults"]["compiler_options"] == {}
    assert by_options["+xla_cpu_use_fusion_emitters=true"]["compiler_options"] == {
        **tuned, "xla_cpu_use_fusion_emitters": True
    }
    # Unrolled folds get the memory-optimised schedule; the variant drops it. The vmapped
    # program has no such option, so the same variant is not run twice for it.
    unrolled = results["folds_unroll_by_compiler_options"]
    assert set(unrolled) == {"tuned", "-xla_cpu_scheduler_type"}
    assert unrolled["tuned"]["compiler_options"] == results["compiler_options_unrolled_folds"]
    assert unrolled["tuned"]["compiler_options"]["xla_cpu_scheduler_type"] == "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"
    assert unrolled["-xla_cpu_scheduler_type"]["compiler_options"] == tuned
    assert unrolled["-xla_cpu_scheduler_type"]["examples_per_s"] > 0
    assert set(results["folds_vmapped_by_compiler_options"]) == {"tuned"}
    assert results["machine"]["free_page_reporting"] == allocator.page_reporting_settings()
    assert results["huge_pages"] is allocator.uses_huge_pages()  # the environment's choice, recorded
    # No PyTorch rows, and no JAX row taken in turns with them, without --torch_python.
    assert "PyTorch" not in completed.stdout and "single_beside_pytorch" not in results
    assert "single[xla_defaults]" in completed.stdout
    assert "folds_unroll[-xla_cpu_scheduler_type]" in completed.stdout


def test_model_flop_utilisation_is_against_the_datasheet_peak_of_known_devices_only():
    h200 = machine.datasheet_peak("NVIDIA H200", "bfloat16")
    assert h200["flops_per_s"] == 989.5e12 and h200["entry"] == "H200"
    assert machine.datasheet_peak("NVIDIA H200 NVL", "float32")["flops_per_s"] == 417.5e12
    assert machine.datasheet_peak("NVIDIA H100 80GB HBM3", "float32")["float32_cuda_cores_flops_per_s"] == 67e12
    assert machine.datasheet_peak("NVIDIA H100 PCIe", "bfloat16")["flops_per_s"] == 756.5e12
    assert machine.datasheet_peak("cpu", "float32") is None and machine.datasheet_peak("NVIDIA A100", "float32") is None

    spec = importlib.util.spec_from_file_location("benchmark_cli", _REPO / "experiments" / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    results = {"single": {"achieved_flops_per_s": 2e12}, "single_by_conv": {"xla": {"achieved_flops_per_s": 1e12}},
               "input_pipeline": {"examples_per_s": 5.0}}
    benchmark.add_datasheet_fractions(results, 4e12)
    assert results["single"]["fraction_of_datasheet_peak"] == 0.5
    assert results["single_by_conv"]["xla"]["fraction_of_datasheet_peak"] == 0.25
    assert "fraction_of_datasheet_peak" not in results["input_pipeline"]
