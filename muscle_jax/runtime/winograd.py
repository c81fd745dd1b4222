"""Winograd F(4×4, 3×3): a 'same', stride-1 3×3 convolution with 4× fewer multiplications.

Every 4×4 block of a 3×3 convolution's output depends on one 6×6 tile of its input.
Winograd's minimal filtering algorithm, as Lavin & Gray ("Fast Algorithms for Convolutional
Neural Networks", 2016) apply it to CNNs, transforms each input tile (Bᵀ d B) and the kernel
(G g Gᵀ) into 6×6 = 36 points where the convolution becomes a pointwise product, and
transforms the products back (Aᵀ m A). Summed over channels, the pointwise products are 36
independent matmuls [tiles, C_in] @ [C_in, C_out]: 36 multiplies per block and channel pair
instead of 16 · 9 = 144. The transforms cost memory traffic linear in the number of
channels (each tile becomes 36 points: 2.25× the activation), while the matmuls grow with
C_in · C_out; so the trade pays off only on wide layers. On the 2-core CPU it did for the
pinned benchmark network's layers with 128 or more input channels and did not below
(docs/performance.md), which is why `layers` uses it there only. In float32 the result
differs from a direct convolution by about 1e-5 relative.

Shapes: P = 36 transform points, T = tiles (images · ⌈H/4⌉ · ⌈W/4⌉), NHWC input, HWIO kernel.
The gradient is written out (`custom_vjp`): the input gradient is the same Winograd
convolution of the output gradient with the kernel flipped and transposed, and the kernel
gradient is 36 matmuls of the saved input tiles with the transformed output gradient.
Each 2-D transform (X ↦ M X Mᵀ on every tile) is one small matmul with kron(M, M) over the
tile points, which XLA compiles faster than the same sums written out point by point.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

OUTPUT_TILE = 4  # m: outputs per tile side
TILE = 6  # m + 3 - 1: inputs per tile side

# F(4, 3)'s transform matrices, as Lavin & Gray (2016) give them.
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


def _transform_2d(matrix: Sequence[Sequence[float]]) -> np.ndarray:
    """X ↦ M X Mᵀ on row-major flattened tiles: kron(M, M)[(i, j), (k, l)] = M[i, k] · M[j, l]."""
    matrix = np.asarray(matrix, np.float64)
    return np.kron(matrix, matrix)


_INPUT_2D = _transform_2d(INPUT_TRANSFORM_BT)  # [36, 36]
_KERNEL_2D = _transform_2d(KERNEL_TRANSFORM_G)  # [36, 9]
_OUTPUT_2D = _transform_2d(OUTPUT_TRANSFORM_AT)  # [16, 36]


def _apply_to_points(transform_PxQ: np.ndarray, points_QxN: jax.Array) -> jax.Array:
    """transform @ points over the leading (tile point) axis, as one matmul, in points' dtype."""
    flat_QxN = points_QxN.reshape(points_QxN.shape[0], -1)
    transformed = jnp.asarray(transform_PxQ, flat_QxN.dtype) @ flat_QxN
    return transformed.reshape(transform_PxQ.shape[0], *points_QxN.shape[1:])


def _num_tiles(height: int, width: int) -> tuple[int, int]:
    return -(-height // OUTPUT_TILE), -(-width // OUTPUT_TILE)


def input_tiles_PxTxC(x_BxHxWxC: jax.Array) -> jax.Array:
    """Bᵀ d B of every 6×6 input tile ('same' zero padding), as [36, tiles, channels]."""
    batch, height, width, channels = x_BxHxWxC.shape
    tiles_h, tiles_w = _num_tiles(height, width)
    padded = jnp.pad(
        x_BxHxWxC,
        ((0, 0), (1, OUTPUT_TILE * (tiles_h + 1) - height - 1), (1, OUTPUT_TILE * (tiles_w + 1) - width - 1), (0, 0)),
    )
    # Non-overlapping blocks of OUTPUT_TILE rows and columns: tile (t, u) spans blocks t and
    # t + 1 (its last TILE - OUTPUT_TILE rows come from the next block), in both directions.
    blocks = padded.reshape(batch, tiles_h + 1, OUTPUT_TILE, tiles_w + 1, OUTPUT_TILE, channels)

    def tile_point(row: int, column: int) -> jax.Array:
        first_row, first_column = row // OUTPUT_TILE, column // OUTPUT_TILE
        return blocks[
            :, first_row : first_row + tiles_h, row % OUTPUT_TILE, first_column : first_column + tiles_w, column % OUTPUT_TILE
        ]

    tiles_QxBxThxTwxC = jnp.stack([tile_point(row, column) for row in range(TILE) for column in range(TILE)])
    return _apply_to_points(_INPUT_2D, tiles_QxBxThxTwxC).reshape(TILE * TILE, batch * tiles_h * tiles_w, channels)


def kernel_tiles_PxIxO(kernel_3x3xIxO: jax.Array) -> jax.Array:
    """G g Gᵀ of a 3×3 kernel, as [36, in, out]."""
    return _apply_to_points(_KERNEL_2D, kernel_3x3xIxO.reshape(9, *kernel_3x3xIxO.shape[2:]))


def output_from_tiles_BxHxWxO(products_PxTxO: jax.Array, batch: int, height: int, width: int) -> jax.Array:
    """Aᵀ m A of every tile's products, assembled into [batch, height, width, out]."""
    tiles_h, tiles_w = _num_tiles(height, width)
    blocks = _apply_to_points(_OUTPUT_2D, products_PxTxO).reshape(
        OUTPUT_TILE, OUTPUT_TILE, batch, tiles_h, tiles_w, -1
    )
    y = blocks.transpose(2, 3, 0, 4, 1, 5).reshape(batch, OUTPUT_TILE * tiles_h, OUTPUT_TILE * tiles_w, -1)
    return y[:, :height, :width]


def output_gradient_tiles_PxTxO(grad_BxHxWxO: jax.Array) -> jax.Array:
    """The gradient of the products m from that of the output (transpose of `output_from_tiles`)."""
    batch, height, width, features = grad_BxHxWxO.shape
    tiles_h, tiles_w = _num_tiles(height, width)
    padded = jnp.pad(grad_BxHxWxO, ((0, 0), (0, OUTPUT_TILE * tiles_h - height), (0, OUTPUT_TILE * tiles_w - width), (0, 0)))
    blocks = padded.reshape(batch, tiles_h, OUTPUT_TILE, tiles_w, OUTPUT_TILE, features).transpose(2, 4, 0, 1, 3, 5)
    grad_points = blocks.reshape(OUTPUT_TILE * OUTPUT_TILE, batch * tiles_h * tiles_w, features)
    return _apply_to_points(_OUTPUT_2D.T, grad_points)


def kernel_gradient_3x3xIxO(grad_tiles_PxIxO: jax.Array) -> jax.Array:
    """The kernel's gradient from that of its transform (transpose of `kernel_tiles`)."""
    return _apply_to_points(_KERNEL_2D.T, grad_tiles_PxIxO).reshape(3, 3, *grad_tiles_PxIxO.shape[1:])


def _forward(x_BxHxWxC: jax.Array, kernel_3x3xIxO: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The convolution and the input tiles (the kernel gradient's residual)."""
    if kernel_3x3xIxO.shape[:2] != (3, 3):
        raise ValueError(f"Winograd F(4×4, 3×3) needs a 3×3 kernel, got {kernel_3x3xIxO.shape[:2]}")
    batch, height, width, _ = x_BxHxWxC.shape
    tiles_PxTxC = input_tiles_PxTxC(x_BxHxWxC)
    products_PxTxO = jnp.einsum("ptc,pco->pto", tiles_PxTxC, kernel_tiles_PxIxO(kernel_3x3xIxO))
    return output_from_tiles_BxHxWxO(products_PxTxO, batch, height, width), tiles_PxTxC


@jax.custom_vjp
def conv_same_winograd(x_BxHxWxC: jax.Array, kernel_3x3xIxO: jax.Array) -> jax.Array:
    """'Same', stride-1 3×3 convolution (NHWC, HWIO, no bias) by Winograd F(4×4, 3×3)."""
    return _forward(x_BxHxWxC, kernel_3x3xIxO)[0]


def _winograd_fwd(x_BxHxWxC, kernel_3x3xIxO):
    y, tiles_PxTxC = _forward(x_BxHxWxC, kernel_3x3xIxO)
    return y, (tiles_PxTxC, kernel_3x3xIxO)


def _winograd_bwd(residuals, grad_BxHxWxO):
    tiles_PxTxC, kernel_3x3xIxO = residuals
    # A 'same' 3×3 convolution's input gradient is the convolution of the output gradient
    # with the kernel flipped in space and transposed in channels.
    grad_x_BxHxWxC, _ = _forward(grad_BxHxWxO, jnp.flip(kernel_3x3xIxO, (0, 1)).transpose(0, 1, 3, 2))
    grad_tiles_PxIxO = jnp.einsum("ptc,pto->pco", tiles_PxTxC, output_gradient_tiles_PxTxO(grad_BxHxWxO))
    return grad_x_BxHxWxC, kernel_gradient_3x3xIxO(grad_tiles_PxIxO)


conv_same_winograd.defvjp(_winograd_fwd, _winograd_bwd)
