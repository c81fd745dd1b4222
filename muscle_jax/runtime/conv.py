"""Formulations of the models' convolution, chosen by the runtime for speed on a CPU.

A model is written with `conv: ModuleDef = nn.Conv` (Flax's imagenet example's pattern) and
never names a formulation; the runtime hands it `conv_module(<formulation>)`. Five
formulations of a 'same'-padded, stride-1 2-D convolution (NHWC input, HWIO kernel, bias O
— the parameters of `flax.linen.Conv`, so all are interchangeable and checkpoints load
into any of them):

- 'xla': one `lax.conv_general_dilated`, as `flax.linen.Conv` computes it. XLA's CPU backend runs the forward and input-gradient
  convolutions well, but the kernel gradient (a convolution whose "features" are the batch)
  several times slower per FLOP; and under `jax.vmap` over folds every convolution becomes a
  grouped convolution, which is slower still (and inside `lax.map` slower again).
- 'matmul': shifted views of the input concatenated on channels, then one matmul. Under vmap
  it stays a batched matmul, but it writes and reads the 9× larger patch tensor in the
  forward and backward passes.
- 'xla_chunked_wgrad': 'xla', with the kernel gradient summed over chunks of a few images
  (`custom_vjp`), which keeps XLA's layout transpose and contraction for it in cache. On
  the 2-core CPU it made one train step of the pinned benchmark network (128×128, batch 64)
  about 7–15% faster, and the default config's (64×64, batch 32) about 4% slower.
- 'winograd': Winograd F(4×4, 3×3) (`muscle_jax.runtime.winograd`) for 3×3 layers with at
  least `WINOGRAD_MIN_IN_CHANNELS` input channels, `conv_same_one_channel` for a
  one-channel input (the image), 'xla_chunked_wgrad' for the others. Winograd does a
  quarter of the multiplications, but its tile transforms cost memory traffic that only
  wide layers repay: on the 2-core CPU one train step of the pinned benchmark network ran
  at 69.4 examples/s (median) against 61.0 for 'xla_chunked_wgrad' in the same benchmark
  run; by the mean, 60.3 vs 60.9, because of slow steps on that VM (docs/performance.md).
  The one-channel input layer as fused elementwise work then made the step a few percent
  faster by the median and more by the mean (five alternating rounds), and its temporary
  memory 1,015 → 923 MiB.
- 'xla_wgrad_matmul': the forward and input gradient as XLA convolutions, the kernel
  gradient as one matmul of the patches with the output gradient (`custom_vjp`). XLA's
  kernel-gradient convolutions are its slowest per FLOP, but on the 2-core CPU measured the
  patches cost more than they save (about 1.25× the CPU time of 'xla' per example).

Measured on that CPU: 'xla' is cheapest for one model and for folds written one after
another in one program; 'matmul' is the one whose cost per example barely changes under
`vmap` or `lax.map` over folds. `experiments/benchmark.py` measures them side by side on the
whole train step (`benchmark.single_convs`), `experiments/conv_layer_times.py` layer by layer;
`docs/performance.md` has the figures. The runtime measures 'xla' against 'winograd' on the
run's own step when asked to (`runtime.measure`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from muscle_jax.runtime import winograd

FORMULATIONS = ("xla", "xla_chunked_wgrad", "winograd", "matmul", "xla_wgrad_matmul")

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def shifted_views_BxHxWxKC(x_BxHxWxC: jax.Array, kernel_size: int) -> jax.Array:
    """The kernel_size² 'same'-padded shifted copies of x, concatenated on channels.

    Channel block k = (dy * kernel_size + dx) holds x shifted by (dy - r, dx - r),
    r = kernel_size // 2, matching an HWIO kernel reshaped to (kernel_size² · C, O).
    """
    r = kernel_size // 2
    padded = jnp.pad(x_BxHxWxC, ((0, 0), (r, r), (r, r), (0, 0)))
    height, width = x_BxHxWxC.shape[1:3]
    views = [
        padded[:, dy : dy + height, dx : dx + width, :]
        for dy in range(kernel_size)
        for dx in range(kernel_size)
    ]
    return jnp.concatenate(views, axis=-1)


def conv_same_matmul(x_BxHxWxC: jax.Array, kernel_HxWxIxO: jax.Array) -> jax.Array:
    """'Same' stride-1 convolution as shifted views + one matmul (no bias)."""
    patches = shifted_views_BxHxWxKC(x_BxHxWxC, kernel_HxWxIxO.shape[0])
    kernel_KCxO = kernel_HxWxIxO.reshape(-1, kernel_HxWxIxO.shape[-1])
    return jnp.einsum("bhwk,ko->bhwo", patches, kernel_KCxO)


def conv_same_xla(x_BxHxWxC: jax.Array, kernel_HxWxIxO: jax.Array) -> jax.Array:
    """'Same' stride-1 convolution as one XLA convolution (no bias)."""
    return jax.lax.conv_general_dilated(
        x_BxHxWxC, kernel_HxWxIxO, (1, 1), "SAME", dimension_numbers=_DIMENSION_NUMBERS
    )


@jax.custom_vjp
def conv_same_xla_wgrad_matmul(x_BxHxWxC: jax.Array, kernel_HxWxIxO: jax.Array) -> jax.Array:
    """`conv_same_xla`, whose kernel gradient is computed as a matmul of patches (see module doc)."""
    return conv_same_xla(x_BxHxWxC, kernel_HxWxIxO)


def _save_inputs_fwd(x_BxHxWxC, kernel_HxWxIxO):
    return conv_same_xla(x_BxHxWxC, kernel_HxWxIxO), (x_BxHxWxC, kernel_HxWxIxO)


def _wgrad_matmul_bwd(residuals, grad_BxHxWxO):
    x_BxHxWxC, kernel_HxWxIxO = residuals
    _, input_vjp = jax.vjp(lambda x: conv_same_xla(x, kernel_HxWxIxO), x_BxHxWxC)
    (grad_x_BxHxWxC,) = input_vjp(grad_BxHxWxO)
    patches = shifted_views_BxHxWxKC(x_BxHxWxC, kernel_HxWxIxO.shape[0])
    grad_kernel_KCxO = jnp.einsum("bhwk,bhwo->ko", patches, grad_BxHxWxO)
    return grad_x_BxHxWxC, grad_kernel_KCxO.reshape(kernel_HxWxIxO.shape)


conv_same_xla_wgrad_matmul.defvjp(_save_inputs_fwd, _wgrad_matmul_bwd)

# Images per kernel-gradient chunk in 'xla_chunked_wgrad'. Measured on the 2-core CPU
# (docs/performance.md), batch 64: chunks of 8 images were fastest for every layer of the
# benchmark network (128×128×32 → 32: 202 → 129 ms; 64×64×64 → 64: 166 → 81 ms), 4 or 16
# slower, and chunking the forward or input-gradient convolution only added time.
WGRAD_CHUNK_IMAGES = 8


@jax.custom_vjp
def conv_same_xla_chunked_wgrad(x_BxHxWxC: jax.Array, kernel_HxWxIxO: jax.Array) -> jax.Array:
    """`conv_same_xla`, whose kernel gradient is summed over chunks of WGRAD_CHUNK_IMAGES images.

    XLA's CPU kernel gradient transposes the whole activation to [C, H, W, B] and contracts
    over B·H·W at once; on chunks of a few images both stay in cache.
    """
    return conv_same_xla(x_BxHxWxC, kernel_HxWxIxO)


def _chunked_wgrad_bwd(residuals, grad_BxHxWxO):
    x_BxHxWxC, kernel_HxWxIxO = residuals
    _, input_vjp = jax.vjp(lambda x: conv_same_xla(x, kernel_HxWxIxO), x_BxHxWxC)
    (grad_x_BxHxWxC,) = input_vjp(grad_BxHxWxO)
    bounds = list(range(WGRAD_CHUNK_IMAGES, x_BxHxWxC.shape[0], WGRAD_CHUNK_IMAGES))
    grad_kernel_HxWxIxO = jnp.zeros_like(kernel_HxWxIxO)
    for x_chunk, grad_chunk in zip(jnp.split(x_BxHxWxC, bounds), jnp.split(grad_BxHxWxO, bounds)):
        _, kernel_vjp = jax.vjp(lambda kernel: conv_same_xla(x_chunk, kernel), kernel_HxWxIxO)
        grad_kernel_HxWxIxO = grad_kernel_HxWxIxO + kernel_vjp(grad_chunk)[0]
    return grad_x_BxHxWxC, grad_kernel_HxWxIxO


conv_same_xla_chunked_wgrad.defvjp(_save_inputs_fwd, _chunked_wgrad_bwd)


@jax.custom_vjp
def conv_same_one_channel(x_BxHxWx1: jax.Array, kernel_HxWx1xO: jax.Array) -> jax.Array:
    """'Same' stride-1 convolution of a one-channel input as a sum of its kernel_size² shifted
    views, each scaled by one kernel row: elementwise work that XLA fuses with the bias and
    activation that follow, where its convolution writes the output first and reads it back.
    The kernel gradient is one matmul of the views with the output gradient."""
    views_BxHxWxK = shifted_views_BxHxWxKC(x_BxHxWx1, kernel_HxWx1xO.shape[0])
    kernel_KxO = kernel_HxWx1xO.reshape(-1, kernel_HxWx1xO.shape[-1])
    return sum(
        views_BxHxWxK[..., k : k + 1] * kernel_KxO[k].reshape(1, 1, 1, -1) for k in range(kernel_KxO.shape[0])
    )


def _one_channel_fwd(x_BxHxWx1, kernel_HxWx1xO):
    return conv_same_one_channel(x_BxHxWx1, kernel_HxWx1xO), (x_BxHxWx1, kernel_HxWx1xO)


conv_same_one_channel.defvjp(_one_channel_fwd, _wgrad_matmul_bwd)

# Input channels from which 'winograd' uses Winograd F(4×4, 3×3). Whole train step of the
# pinned benchmark network on the 2-core CPU, one process per setting, two rounds, median
# examples/s (docs/performance.md): from 128 67.5 / 67.2, from 64 64.7 / 66.7, from 32
# 54.8 / 55.8; with none (the chunked kernel gradient everywhere) about 56 in those sessions.
WINOGRAD_MIN_IN_CHANNELS = 128


def conv_same_winograd_wide(x_BxHxWxC: jax.Array, kernel_HxWxIxO: jax.Array) -> jax.Array:
    """Winograd F(4×4, 3×3) for wide 3×3 layers, `conv_same_one_channel` for a one-channel
    input, `conv_same_xla_chunked_wgrad` for the others."""
    if kernel_HxWxIxO.shape[:2] == (3, 3) and x_BxHxWxC.shape[-1] >= WINOGRAD_MIN_IN_CHANNELS:
        return winograd.conv_same_winograd(x_BxHxWxC, kernel_HxWxIxO)
    if x_BxHxWxC.shape[-1] == 1:
        return conv_same_one_channel(x_BxHxWxC, kernel_HxWxIxO)
    return conv_same_xla_chunked_wgrad(x_BxHxWxC, kernel_HxWxIxO)


_CONV_FUNCTIONS = {
    "xla": conv_same_xla,
    "xla_chunked_wgrad": conv_same_xla_chunked_wgrad,
    "winograd": conv_same_winograd_wide,
    "matmul": conv_same_matmul,
    "xla_wgrad_matmul": conv_same_xla_wgrad_matmul,
}


def conv_function(impl: str):
    """The (x_BxHxWxC, kernel_HxWxIxO) → y function of a formulation's name (one of `FORMULATIONS`)."""
    if impl not in _CONV_FUNCTIONS:
        raise ValueError(f"runtime.conv must be one of {FORMULATIONS}, got {impl!r}")
    return _CONV_FUNCTIONS[impl]


class FormulatedConv(nn.Module):
    """A 'same'-padded, stride-1 2-D convolution (NHWC) computed by one of the formulations above.

    It takes `flax.linen.Conv`'s arguments and creates its parameters (`kernel` HWIO, `bias`),
    so a model written with `conv: ModuleDef = nn.Conv` runs with it unchanged and its
    checkpoints load into either. `dtype` is the computation dtype; parameters stay float32.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    formulation: str = "xla"
    use_bias: bool = True
    dtype: Any = None
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        conv = conv_function(self.formulation)
        kernel_h, kernel_w = self.kernel_size
        if kernel_h != kernel_w or kernel_h % 2 == 0:
            raise ValueError(f"formulated convolutions take square, odd kernels; got {tuple(self.kernel_size)}")
        kernel_HxWxIxO = self.param("kernel", self.kernel_init, (kernel_h, kernel_w, x_BxHxWxC.shape[-1], self.features))
        dtype = self.dtype or x_BxHxWxC.dtype
        y = conv(x_BxHxWxC.astype(dtype), kernel_HxWxIxO.astype(dtype))
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,))
            y = y + bias.astype(dtype).reshape(1, 1, 1, -1)
        return y


@functools.cache
def conv_module(formulation: str) -> Callable[..., nn.Module]:
    """What a model is handed as its `conv`: `flax.linen.Conv` itself for 'xla' (the same
    computation), else `FormulatedConv` with that formulation. One object per formulation,
    so that two models built with the same formulation compare equal."""
    conv_function(formulation)  # a bad name fails here, before any module exists
    if formulation == "xla":
        return nn.Conv
    return functools.partial(FormulatedConv, formulation=formulation)
