"""Winograd F(4×4, 3×3): a 'same', stride-1 3×3 convolution with 4× fewer multiplications.

Every 4×4 block of a 3×3 convolution's output depends on one 6×6 tile of its input.
Winograd's minimal filtering algorithm, as Lavin & Gray ("Fast Algorithms for Convolutional
Neural Networks", 2016) apply it to CNNs, transforms each input tile (Bᵀ d B) and the kernel
(G g Gᵀ) into 6×6 = 36 points where the convolution becomes a pointwise product, and
transforms the products back (Aᵀ m A). Summed over channels, the pointwise products are 36
independent matmuls [tiles, C_in] @ [C_in, C_out]: 36 multiplies per block and channel pair
instead of 16 · 9 = 144. The transforms are additions with small constants, linear in the
number of channels, while the matmuls grow with C_in · C_out; so the trade pays off only on
wide layers. On the 2-core CPU it did for the pinned benchmark network's layers with 128 or
more input channels and did not below (docs/performance.md), which is why `layers` uses it
there only. In float32 the result differs from a direct convolution by about 1e-5 relative.

Shapes: P = 36 transform points, T = tiles (images · ⌈H/4⌉ · ⌈W/4⌉), NHWC input, HWIO kernel.
The gradient is written out (`custom_vjp`): the input gradient is the same Winograd
convolution of the output gradient with the kernel flipped and transposed, and the kernel
gradient is 36 matmuls of the saved input tiles with the transformed output gradient. Images
are processed in chunks of `CHUNK_IMAGES`, so that a chunk's tiles stay in cache between
their transform and their matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

OUTPUT_TILE = 4  # m: outputs per tile side
TILE = 6  # m + 3 - 1: inputs per tile side

# F(4, 3)'s transform matrices (Lavin & Gray 2016, section 4.2).
INPUT_TRANSFORM_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
KERNEL_TRANSFORM_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
OUTPUT_TRANSFORM_AT = (
    (1, 1, 1, 1, 1, 0),
    (0, 1, -1, 2, -2, 0),
    (0, 1, 1, 4, 4, 0),
    (0, 1, -1, 8, -8, 1),
)

# Images per chunk. Measured on the 2-core CPU, whole train step of the pinned benchmark
# network: 16 (docs/performance.md).
CHUNK_IMAGES = 16


def _transposed(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    return [list(column) for column in zip(*matrix)]


def _combine(matrix: Sequence[Sequence[float]], parts: Sequence[jax.Array]) -> list[jax.Array]:
    """[Σ_j matrix[i][j] · parts[j] for each row i], skipping zeros (additions, mostly)."""
    combined = []
    for row in matrix:
        total = None
        for coefficient, part in zip(row, parts):
            if coefficient == 0:
                continue
            term = part if coefficient == 1 else -part if coefficient == -1 else part * coefficient
            total = term if total is None else total + term
        combined.append(total)
    return combined


def _num_tiles(height: int, width: int) -> tuple[int, int]:
    return -(-height // OUTPUT_TILE), -(-width // OUTPUT_TILE)


def _overlapping_tile_parts(blocks: jax.Array, axis: int) -> list[jax.Array]:
    """The TILE rows of every tile along `axis`, from non-overlapping blocks of OUTPUT_TILE rows.

    `blocks` has (tiles + 1) blocks on `axis` and the OUTPUT_TILE rows of a block on axis + 1;
    tile t spans block t and the first TILE - OUTPUT_TILE rows of block t + 1.
    """
    num_tiles = blocks.shape[axis] - 1
    parts = []
    for row in range(TILE):
        first_block = row // OUTPUT_TILE
        tile_blocks = jax.lax.slice_in_dim(blocks, first_block, first_block + num_tiles, axis=axis)
        parts.append(jax.lax.index_in_dim(tile_blocks, row % OUTPUT_TILE, axis + 1, keepdims=False))
    return parts


def input_tiles_PxTxC(x_BxHxWxC: jax.Array) -> jax.Array:
    """Bᵀ d B of every 6×6 input tile ('same' zero padding), as [36, tiles, channels]."""
    batch, height, width, channels = x_BxHxWxC.shape
    tiles_h, tiles_w = _num_tiles(height, width)
    padded = jnp.pad(
        x_BxHxWxC,
        ((0, 0), (1, OUTPUT_TILE * (tiles_h + 1) - height - 1), (1, OUTPUT_TILE * (tiles_w + 1) - width - 1), (0, 0)),
    )
    blocks = padded.reshape(batch, tiles_h + 1, OUTPUT_TILE, tiles_w + 1, OUTPUT_TILE, channels)
    rows = _combine(INPUT_TRANSFORM_BT, _overlapping_tile_parts(blocks, 1))
    points = [p for row in rows for p in _combine(INPUT_TRANSFORM_BT, _overlapping_tile_parts(row, 2))]
    return jnp.stack(points).reshape(TILE * TILE, batch * tiles_h * tiles_w, channels)


def kernel_tiles_PxIxO(kernel_3x3xIxO: jax.Array) -> jax.Array:
    """G g Gᵀ of a 3×3 kernel, as [36, in, out]."""
    rows = _combine(KERNEL_TRANSFORM_G, list(kernel_3x3xIxO))
    return jnp.stack([p for row in rows for p in _combine(KERNEL_TRANSFORM_G, list(row))])


def output_from_tiles_BxHxWxO(products_PxTxO: jax.Array, batch: int, height: int, width: int) -> jax.Array:
    """Aᵀ m A of every tile's products, assembled into [batch, height, width, out]."""
    tiles_h, tiles_w = _num_tiles(height, width)
    products = products_PxTxO.reshape(TILE, TILE, batch, tiles_h, tiles_w, -1)
    rows = _combine(OUTPUT_TRANSFORM_AT, list(products))  # each [TILE, B, th, tw, O]
    blocks = jnp.stack([jnp.stack(_combine(OUTPUT_TRANSFORM_AT, list(row)), axis=3) for row in rows], axis=2)
    return blocks.reshape(batch, OUTPUT_TILE * tiles_h, OUTPUT_TILE * tiles_w, -1)[:, :height, :width]


def output_gradient_tiles_PxTxO(grad_BxHxWxO: jax.Array) -> jax.Array:
    """The gradient of the products m from that of the output (transpose of `output_from_tiles`)."""
    batch, height, width, features = grad_BxHxWxO.shape
    tiles_h, tiles_w = _num_tiles(height, width)
    padded = jnp.pad(grad_BxHxWxO, ((0, 0), (0, OUTPUT_TILE * tiles_h - height), (0, OUTPUT_TILE * tiles_w - width), (0, 0)))
    blocks = padded.reshape(batch, tiles_h, OUTPUT_TILE, tiles_w, OUTPUT_TILE, features)
    output_transform_a = _transposed(OUTPUT_TRANSFORM_AT)
    rows = _combine(output_transform_a, [blocks[:, :, i] for i in range(OUTPUT_TILE)])
    points = [p for row in rows for p in _combine(output_transform_a, [row[:, :, :, j] for j in range(OUTPUT_TILE)])]
    return jnp.stack(points).reshape(TILE * TILE, batch * tiles_h * tiles_w, features)


def kernel_gradient_3x3xIxO(grad_tiles_PxIxO: jax.Array) -> jax.Array:
    """The kernel's gradient from that of its transform (transpose of `kernel_tiles`)."""
    grad_tiles = grad_tiles_PxIxO.reshape(TILE, TILE, *grad_tiles_PxIxO.shape[1:])
    kernel_transform_gt = _transposed(KERNEL_TRANSFORM_G)
    rows = _combine(kernel_transform_gt, list(grad_tiles))
    return jnp.stack([jnp.stack(_combine(kernel_transform_gt, list(row))) for row in rows])


def _chunks(batch: int) -> list[slice]:
    return [slice(start, min(start + CHUNK_IMAGES, batch)) for start in range(0, batch, CHUNK_IMAGES)]


def _forward(x_BxHxWxC: jax.Array, kernel_3x3xIxO: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    """The convolution and each chunk's input tiles (the kernel gradient's residuals)."""
    if kernel_3x3xIxO.shape[:2] != (3, 3):
        raise ValueError(f"Winograd F(4×4, 3×3) needs a 3×3 kernel, got {kernel_3x3xIxO.shape[:2]}")
    _, height, width, _ = x_BxHxWxC.shape
    kernel_tiles = kernel_tiles_PxIxO(kernel_3x3xIxO)
    input_tiles, outputs = [], []
    for chunk in _chunks(x_BxHxWxC.shape[0]):
        x_chunk = x_BxHxWxC[chunk]
        tiles_PxTxC = input_tiles_PxTxC(x_chunk)
        products_PxTxO = jnp.einsum("ptc,pco->pto", tiles_PxTxC, kernel_tiles)
        input_tiles.append(tiles_PxTxC)
        outputs.append(output_from_tiles_BxHxWxO(products_PxTxO, x_chunk.shape[0], height, width))
    return jnp.concatenate(outputs), input_tiles


@jax.custom_vjp
def conv_same_winograd(x_BxHxWxC: jax.Array, kernel_3x3xIxO: jax.Array) -> jax.Array:
    """'Same', stride-1 3×3 convolution (NHWC, HWIO, no bias) by Winograd F(4×4, 3×3)."""
    return _forward(x_BxHxWxC, kernel_3x3xIxO)[0]


def _winograd_fwd(x_BxHxWxC, kernel_3x3xIxO):
    y, input_tiles = _forward(x_BxHxWxC, kernel_3x3xIxO)
    return y, (input_tiles, kernel_3x3xIxO)


def _winograd_bwd(residuals, grad_BxHxWxO):
    input_tiles, kernel_3x3xIxO = residuals
    # A 'same' 3×3 convolution's input gradient is the convolution of the output gradient
    # with the kernel flipped in space and transposed in channels.
    grad_x_BxHxWxC, _ = _forward(grad_BxHxWxO, jnp.flip(kernel_3x3xIxO, (0, 1)).transpose(0, 1, 3, 2))
    grad_tiles_PxIxO = sum(
        jnp.einsum("ptc,pto->pco", tiles_PxTxC, output_gradient_tiles_PxTxO(grad_BxHxWxO[chunk]))
        for tiles_PxTxC, chunk in zip(input_tiles, _chunks(grad_BxHxWxO.shape[0]))
    )
    return grad_x_BxHxWxC, kernel_gradient_3x3xIxO(grad_tiles_PxIxO)


conv_same_winograd.defvjp(_winograd_fwd, _winograd_bwd)
