"""The crefDenoiser network: the published 3D U-Net, in PyTorch.

Architecture (Agarwal et al., IUCrJ 2024, and the published Keras code): every convolution
is 3x3x3, stride 1, zero 'same' padding, with bias, followed by LeakyReLU(0.1) except the
last, which is linear. Shapes below are for a 96^3 input.

* Encoder: conv16 -> conv16 -> maxpool2 (48^3), then three times conv16 -> maxpool2
  (24^3, 12^3, 6^3), then conv16 -> maxpool2 (3^3) -> conv16.
* Decoder: five blocks, each nearest upsampling x2 -> concatenate ``[skip, upsampled]`` ->
  conv -> conv. The first four use 32 and 32 filters and take as skips the pooled encoder
  outputs (6^3, 12^3, 24^3, 48^3); the last uses 16 then 8 filters and takes the raw input.
* Output: conv to one channel, linear.

18 convolutions, 322,881 parameters. Five poolings make the network equivariant to shifts
by multiples of :data:`SIZE_MULTIPLE` = 32 only, and every side of the input must be such a
multiple. An output voxel depends on input voxels up to :data:`RECEPTIVE_RADIUS` = 158
away along each axis; the voxels of a block whose edges lie on multiples of 32 depend on
input voxels up to :data:`ALIGNED_RECEPTIVE_RADIUS` = 128 beyond those edges.
:meth:`CrefUNet.keras_order` lists the convolutions in the order Keras created them, which is
the order of the checkpoint keys ``layer_with_weights-{0..17}``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "crefdenoiser-unet3d"
SIZE_MULTIPLE = 32
NEGATIVE_SLOPE = 0.1
PARAMETER_COUNT = 322_881
# Farthest input voxel (along one axis) any output voxel depends on, over all alignments to
# the pooling grid: three convolutions at full resolution plus the deeper levels, counted
# through each 3-wide convolution, 2-wide pooling and nearest upsampling of the graph.
RECEPTIVE_RADIUS = 158
# Farthest input voxel beyond a block's edge that the block's output voxels depend on, when the
# edge lies on a multiple of 32 (the pooling grid): the voxels that reach farther (158) lie
# far enough inside the block. Tiles cut on that grid are exact with this much context.
ALIGNED_RECEPTIVE_RADIUS = 128

# (in, out) channels in Keras creation order: encoder, decoder, output.
_ENCODER = [(1, 16)] + [(16, 16)] * 6
_DECODER = [(32, 32), (32, 32), (48, 32), (32, 32), (48, 32), (32, 32), (48, 32), (32, 32),
            (33, 16), (16, 8)]
_OUTPUT = (8, 1)
# Full-resolution voxels per voxel of each convolution, for FLOP counts (Keras order).
_CONV_STRIDES = [1, 1, 2, 4, 8, 16, 32, 16, 16, 8, 8, 4, 4, 2, 2, 1, 1, 1]


def _conv(channels: tuple[int, int]) -> nn.Conv3d:
    return nn.Conv3d(channels[0], channels[1], kernel_size=3, stride=1, padding=1, bias=True)


def he_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Initialise a convolution kernel in place as Keras's ``he_normal`` does.

    A normal of standard deviation ``sqrt(2 / fan_in)`` truncated at two standard deviations,
    its scale corrected for the truncation (Keras ``VarianceScaling(2, 'fan_in',
    'truncated_normal')``).

    Args:
        weight: a kernel of shape ``(C_out, C_in, k, k, k)``.

    Returns:
        ``weight``, filled.
    """
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def check_multiple(name: str, value: int, *, positive: bool = False) -> None:
    """Refuse a length that is not a multiple of :data:`SIZE_MULTIPLE`.

    Args:
        name: what the value is, for the message.
        value: the length.
        positive: refuse 0 as well.

    Raises:
        ValueError: ``value`` is not an integer multiple of 32 (not negative; not 0 when
            ``positive``).
    """
    if (not isinstance(value, int) or isinstance(value, bool) or value < 0
            or value % SIZE_MULTIPLE or (positive and value == 0)):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} multiple of {SIZE_MULTIPLE}, got {value!r}")


def check_input_shape(shape: tuple[int, ...]) -> None:
    """Refuse a spatial shape the network cannot take.

    Args:
        shape: the spatial shape ``(D, H, W)``.

    Raises:
        ValueError: a side is not a positive multiple of :data:`SIZE_MULTIPLE`.
    """
    bad = [n for n in shape if n <= 0 or n % SIZE_MULTIPLE]
    if len(shape) != 3 or bad:
        raise ValueError(f"the crefDenoiser network needs three sides that are positive "
                         f"multiples of {SIZE_MULTIPLE} (five 2x poolings); got {tuple(shape)}. "
                         "Pad the map first (baselines.crefdenoiser.inference does).")


def check_input(x: torch.Tensor) -> None:
    """Refuse an input the network cannot take.

    Args:
        x: the network's input.

    Raises:
        ValueError: ``x`` is not ``(N, 1, D, H, W)`` with sides multiples of 32.
    """
    if x.dim() != 5 or x.shape[1] != 1:
        raise ValueError(f"the crefDenoiser network takes (N, 1, D, H, W); got {tuple(x.shape)}")
    check_input_shape(tuple(x.shape[2:]))


def conv_flops(shape: tuple[int, int, int]) -> int:
    """Floating-point operations of the network's convolutions for one input of ``shape``.

    Counts ``2 * 27 * C_in * C_out`` per output voxel of each convolution (a multiply and an
    add per weight); biases, activations, pooling and upsampling are left out.

    Args:
        shape: the spatial input shape ``(D, H, W)``, sides multiples of 32.

    Returns:
        The FLOP count.

    Raises:
        ValueError: the shape is not valid for the network.
    """
    check_input_shape(shape)
    voxels = math.prod(shape)
    layers = _ENCODER + _DECODER + [_OUTPUT]
    return sum(2 * 27 * cin * cout * voxels // stride ** 3
               for (cin, cout), stride in zip(layers, _CONV_STRIDES))


class CrefUNet(nn.Module):
    """The crefDenoiser 3D U-Net.

    Input ``(N, 1, D, H, W)`` float32 with ``D, H, W`` multiples of 32 (the map already
    standardised and padded); output the same shape, the raw (linear) network output.
    Parameters are He-normal initialised (Keras style), biases zero.
    """

    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleList(_conv(c) for c in _ENCODER)
        self.decoder = nn.ModuleList(_conv(c) for c in _DECODER)
        self.output = _conv(_OUTPUT)
        for conv in self.keras_order():
            he_normal_(conv.weight)
            nn.init.zeros_(conv.bias)

    def keras_order(self) -> list[nn.Conv3d]:
        """The 18 convolutions in Keras creation order (checkpoint ``layer_with_weights-i``)."""
        return [*self.encoder, *self.decoder, self.output]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network.

        Args:
            x: ``(N, 1, D, H, W)``, sides multiples of 32.

        Returns:
            ``(N, 1, D, H, W)``, the linear output.

        Raises:
            ValueError: the input is not 5D with one channel, or a side is not a multiple of 32.
        """
        check_input(x)
        enc = self.encoder
        h = self._act(enc[1](self._act(enc[0](x))))
        skips = [x]
        for conv in enc[2:6]:
            h = F.max_pool3d(h, 2)
            skips.append(h)
            h = self._act(conv(h))
        h = self._act(enc[6](F.max_pool3d(h, 2)))
        for block in range(5):
            up = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([skips.pop(), up], dim=1)
            del up
            h = self._act(self.decoder[2 * block](h))
            h = self._act(self.decoder[2 * block + 1](h))
        return self.output(h)

    @staticmethod
    def _act(x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, NEGATIVE_SLOPE, inplace=True)
