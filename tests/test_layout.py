"""The code's layout keeps its promises: imports at module top, no import cycle between the
data sources, the segmentation stage and the dataset builder, and the CPU kernels reached only
through the runtime."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "muscle_jax"

# Layers, lowest first: a module may import from its own layer and the ones below, never above.
# The readers, the phantom and the ROI geometry are what the segmentation stage builds on; the
# dataset builder and the input pipeline build on segmentation (GUIDE.md's path of the data).
LAYERS = [
    ("muscle_jax.data.readers", "muscle_jax.data.phantom", "muscle_jax.data.roi"),
    ("muscle_jax.segmentation",),
    ("muscle_jax.data.recordings", "muscle_jax.data.ultrasound_states", "muscle_jax.data.pipeline"),
]

# How one machine runs a model (docs/architecture.md): only the runtime package itself may
# import these; models, training and evaluation get them through `runtime.Runtime`.
RUNTIME_KERNELS = tuple(f"muscle_jax.runtime.{name}" for name in ("conv", "winograd", "xla_cpu", "allocator", "fold_axis", "tune"))


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), ast.parse(path.read_text())


def _imported(tree, module):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _layer(name):
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_imports_are_at_module_top():
    local = [
        f"{module}:{inner.lineno}"
        for module, tree in _modules()
        for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node) if isinstance(inner, (ast.Import, ast.ImportFrom))
    ]
    assert local == []


def test_data_sources_segmentation_and_builder_import_downwards_only():
    upward = []
    for module, tree in _modules():
        level = _layer(module)
        if level is None:
            continue
        for name in _imported(tree, module):
            target = _layer(name)
            if target is not None and target > level:
                upward.append(f"{module} imports {name}")
    assert upward == []


def test_only_the_runtime_imports_the_cpu_kernels():
    reaching_in = [
        f"{module} imports {name}"
        for module, tree in _modules() if not module.startswith("muscle_jax.runtime")
        for name in _imported(tree, module)
        if any(name == kernel or name.startswith(kernel + ".") for kernel in RUNTIME_KERNELS)
    ]
    assert reaching_in == []
