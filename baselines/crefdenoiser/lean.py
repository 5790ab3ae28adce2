"""The memory-lean inference forward pass of the crefDenoiser network.

:func:`lean_forward` computes what :meth:`CrefUNet.forward <baselines.crefdenoiser.network.
CrefUNet.forward>` computes, with the same parameters (laid out anew whenever one changes), in a
fraction of its time and memory on a CPU:

* every tensor is ``channels_last_3d`` and every activation is freed once consumed; on the CPU
  each convolution runs through oneDNN with its bias and LeakyReLU fused (the plain path falls
  back to a slow non-oneDNN kernel for one input channel);
* the decoder never builds the nearest-upsampled tensor nor the concatenation. A 3x3x3
  convolution of ``[skip, up(h)]`` is a convolution of the skip plus one of ``up(h)``, and the
  latter, at the output voxel ``2i + p`` (``p`` in {0, 1} per axis), reads ``h`` at ``i - 1 + p``
  and ``i + p`` only, with the 3 taps folded into 2 (:func:`phase_kernels`). All 8 phases are one
  2x2x2 convolution of ``h`` with 8 times the output channels, interleaved into place;
* each level runs in z-slabs (planes along the first axis) that hold at most about
  ``slab_bytes``, each computed from its inputs' planes plus the halo its convolutions need
  (three planes at full resolution), so no full-resolution activation is ever whole.

Memory: the whole-map tensors alive at once are the input, the output, and at half
resolution the 16-channel skip and the 32-channel decoder output: about
:data:`BYTES_PER_VOXEL` bytes per input voxel, plus the slabs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.crefdenoiser.network import NEGATIVE_SLOPE, CrefUNet, check_input

CHANNELS_LAST = torch.channels_last_3d
DEFAULT_SLAB_BYTES = 512 * 1024 ** 2  # larger slabs: fewer halo planes recomputed
MIN_SLAB_PLANES = 16
# Whole-map float32 tensors alive at once, per input voxel: input and output (4 + 4) plus, at
# half resolution (1/8 of the voxels), the 16-channel skip and the 32-channel decoder output
# (64 / 8 + 128 / 8), with their predecessors alive while they are built (+ 4).
BYTES_PER_VOXEL = 36
# Taps of a 3-tap convolution of a nearest-upsampled axis, folded onto the 2 low-resolution
# voxels each output phase reads: phase 0 reads (i - 1, i), phase 1 reads (i, i + 1).
_FOLD = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))
_SKIP_CHANNELS = (16, 16, 16, 16, 1)  # skip channels of the five decoder blocks


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The 2x2x2 kernels that convolve ``h`` as ``weight`` convolves ``up(h)``.

    For a 3x3x3 kernel ``weight`` applied (zero 'same' padding) to the nearest 2x upsampling of
    ``h``, the output at ``2i + p`` (per axis) is the 2x2x2 kernel of phase ``p`` applied to ``h``
    at ``i - 1 + p`` and ``i + p``.

    Args:
        weight: ``(C_out, C_in, 3, 3, 3)``.

    Returns:
        ``(8 * C_out, C_in, 2, 2, 2)``: output channel ``((pz * 2 + py) * 2 + px) * C_out + c``
        is phase ``(pz, py, px)`` of channel ``c``. Convolved with ``h`` with padding 1, its
        output at ``j`` (per axis) holds phase ``p`` of the upsampled voxel ``2 (j - p) + p``.
    """
    # In numpy, float64, single-threaded: the arrays are tiny, and waking a thread pool for
    # each step would cost more than the arithmetic.
    c_out, c_in = weight.shape[:2]
    fold = np.array(_FOLD)  # (phase, tap2, tap3)
    # (phases, taps2, taps3) over all three axes at once, then one product with the kernels.
    folds = np.einsum("zat,ybu,xcv->zyxabctuv", fold, fold, fold).reshape(64, 27)
    kernels = weight.detach().to("cpu", torch.float64).numpy().reshape(c_out * c_in, 27)
    out = np.einsum("pt,kt->pk", folds, kernels)  # not BLAS: its threads cost more here
    out = out.reshape(8, 8, c_out, c_in).transpose(0, 2, 3, 1)
    out = torch.from_numpy(out.reshape(8 * c_out, c_in, 2, 2, 2).copy())
    return out.to(weight.dtype).to(weight.device)


class _Kernels:
    """The steps of the pass. On the CPU: convolutions through oneDNN with their bias and
    activation fused (``onednn``), and the memory-bound steps compiled
    (:mod:`baselines.crefdenoiser._lean_kernels`, ``compiled``); elsewhere plain
    PyTorch."""

    def __init__(self, onednn: bool, compiled: bool):
        self.onednn, self.compiled = onednn, compiled
        if compiled:  # numba only where it is used (a GPU machine need not have it)
            from baselines.crefdenoiser import _lean_kernels

            self.lean_kernels = _lean_kernels

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             act: bool, pad_z: int = 1) -> torch.Tensor:
        """``act(conv(x) + bias)``, padded by one voxel in y and x and ``pad_z`` in z
        (LeakyReLU when ``act``)."""
        padding = [pad_z, 1, 1]
        if self.onednn:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, padding, [1, 1, 1], [1, 1, 1], 1,
                "leaky_relu" if act else "none", [NEGATIVE_SLOPE] if act else [], "")
        out = F.conv3d(x, weight, bias, padding=padding)
        return F.leaky_relu(out, NEGATIVE_SLOPE, inplace=True) if act else out

    def add_upsampled_leaky_(self, acc: _Planes, phases: torch.Tensor, low: _Planes) -> None:
        """``acc = leaky(acc + up)`` in place, ``up`` the upsampled part held as ``phases``,
        the phase convolution (padding 1) of the low-resolution planes ``low``."""
        lo, hi = _valid(low)
        first_z = acc.start // 2 + acc.start % 2 - low.start
        last_z = (acc.stop - 1) // 2 + (acc.stop - 1) % 2 - low.start
        if first_z < lo - low.start or last_z > hi - low.start:
            raise AssertionError(f"low-resolution planes [{low.start}, {low.stop}) do not "
                                 f"cover planes [{acc.start}, {acc.stop})")
        if self.compiled:
            self.lean_kernels.add_upsampled_leaky(_as_numpy(acc.data), _as_numpy(phases), acc.start,
                                              low.start, NEGATIVE_SLOPE)
            return
        phases = phases.narrow(2, lo - low.start, hi - lo + 1)
        n, c8, _, y, x = phases.shape
        up = torch.empty((n, c8 // 8, 2 * (hi - lo), 2 * (y - 1), 2 * (x - 1)),
                         dtype=phases.dtype, device=phases.device, memory_format=CHANNELS_LAST)
        _interleave(up, phases)
        acc.data.add_(up.narrow(2, acc.start - 2 * lo, acc.stop - acc.start))
        F.leaky_relu(acc.data, NEGATIVE_SLOPE, inplace=True)

    def max_pool(self, x: torch.Tensor) -> torch.Tensor:
        """2x2x2 max pooling."""
        if not self.compiled:
            return F.max_pool3d(x, 2)
        n, c, z, y, w = x.shape
        out = torch.empty((n, c, z // 2, y // 2, w // 2), dtype=x.dtype, device=x.device,
                          memory_format=CHANNELS_LAST)
        self.lean_kernels.max_pool2(_as_numpy(x), _as_numpy(out))
        return out


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels_last_3d, with strides that say so even for one channel (where they
    would otherwise read as the default layout, and oneDNN would give a default-layout
    output)."""
    x = x.contiguous(memory_format=CHANNELS_LAST)
    if x.shape[1] != 1:
        return x
    n, _, z, y, w = x.shape
    return x.as_strided(x.shape, (z * y * w, 1, y * w, w, 1))


def _as_numpy(x: torch.Tensor):
    """Batch item 0 of a channels_last tensor as a ``(Z, Y, X, C)`` numpy view (bfloat16 as
    its uint16 bit patterns)."""
    planes = x[0].permute(1, 2, 3, 0)
    if x.dtype == torch.bfloat16:
        return planes.view(torch.int16).numpy().view(np.uint16)
    return planes.numpy()


@dataclass(frozen=True)
class _Conv:
    """One convolution's parameters, laid out for the pass."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None, like: torch.Tensor) -> _Conv:
        """The parameters in ``like``'s type and device, the kernel channels_last."""
        weight = _channels_last(weight.detach().to(like))
        return cls(weight, None if bias is None else bias.detach().to(like).contiguous())


@dataclass(frozen=True)
class _Decoder:
    """A decoder block: the first convolution split into its skip part and its upsampled
    part (as phase kernels), the second convolution, and for the last block the linear output
    convolution, its kernel split by z tap (:meth:`_Pass._conv_by_z_taps`)."""

    skip: _Conv
    up: _Conv
    second: _Conv
    output: _Conv | None

    @classmethod
    def of(cls, convs: list[nn.Conv3d], skip_channels: int, like: torch.Tensor) -> _Decoder:
        """The block of ``convs`` (the first taking ``skip_channels`` skip channels; a third
        one is the output convolution)."""
        first = convs[0].weight.detach()
        output = None
        if len(convs) == 3:
            weight = convs[2].weight.detach()  # (O, I, 3, 3, 3) -> (3 O, I, 1, 3, 3)
            taps = weight.permute(2, 0, 1, 3, 4).reshape(-1, weight.shape[1], 1, 3, 3)
            output = _Conv.of(taps, convs[2].bias, like)
        return cls(skip=_Conv.of(first[:, :skip_channels], convs[0].bias, like),
                   up=_Conv.of(phase_kernels(first[:, skip_channels:]), None, like),
                   second=_Conv.of(convs[1].weight, convs[1].bias, like), output=output)


@dataclass(frozen=True)
class _Weights:
    """The network's parameters laid out for the pass."""

    encoder: tuple[_Conv, ...]
    decoders: tuple[_Decoder, ...]


# The parameters laid out for the pass, per model, with the key they were made for: the
# parameters' storage and version counters (bumped by every in-place change, an optimiser
# step or load_state_dict), the type and the device.
_LAID_OUT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights(model: CrefUNet, like: torch.Tensor) -> _Weights:
    """``model``'s parameters laid out for a pass in ``like``'s type and device (cached until
    a parameter changes)."""
    key = (like.dtype, like.device,
           tuple((p.data_ptr(), p._version) for p in model.parameters()))
    cached = _LAID_OUT.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    enc, dec = model.encoder, model.decoder
    decoders = [_Decoder.of([dec[2 * k], dec[2 * k + 1]], _SKIP_CHANNELS[k], like)
                for k in range(4)]
    decoders.append(_Decoder.of([dec[8], dec[9], model.output], _SKIP_CHANNELS[4], like))
    weights = _Weights(encoder=tuple(_Conv.of(c.weight, c.bias, like) for c in enc),
                       decoders=tuple(decoders))
    _LAID_OUT[model] = (key, weights)
    return weights


@dataclass(frozen=True)
class _Planes:
    """Planes ``[start, start + depth)`` along z of a map of ``total`` planes at one level."""

    data: torch.Tensor
    start: int
    total: int

    @property
    def stop(self) -> int:
        return self.start + self.data.shape[2]

    def narrow(self, start: int, stop: int) -> _Planes:
        if not self.start <= start <= stop <= self.stop:
            raise AssertionError(f"planes [{start}, {stop}) not within [{self.start}, "
                                 f"{self.stop})")
        return _Planes(self.data.narrow(2, start - self.start, stop - start), start, self.total)


def _take(whole: torch.Tensor, start: int, stop: int) -> _Planes:
    """Planes ``[start, stop)`` of a whole-level tensor, clipped to the map (a view)."""
    total = whole.shape[2]
    start, stop = max(0, start), min(total, stop)
    return _Planes(whole.narrow(2, start, stop - start), start, total)


def _valid(planes: _Planes) -> tuple[int, int]:
    """Planes a padding-1 convolution of ``planes`` gets right: all, less one at each side
    that is not the map's edge (where the padding stands in for planes not given)."""
    return (planes.start + (planes.start > 0), planes.stop - (planes.stop < planes.total))


class _Pass:
    """The lean forward pass of one network on one input."""

    def __init__(self, weights: _Weights, kernels: _Kernels, slab_bytes: int):
        self.kernels, self.slab_bytes = kernels, slab_bytes
        self.like = weights.encoder[0].weight
        self.encoder, self.decoders = weights.encoder, weights.decoders

    # -- building blocks on planes --------------------------------------------------------

    def _conv(self, planes: _Planes, conv: _Conv, act: bool) -> _Planes:
        """A convolution on the planes it gets right (see :func:`_valid`)."""
        start, stop = _valid(planes)
        if start > planes.start and stop < planes.stop:  # no edge: no z-padding needed
            out = self.kernels.conv(planes.data, conv.weight, conv.bias, act, pad_z=0)
        else:
            out = self.kernels.conv(planes.data, conv.weight, conv.bias, act)
            out = out.narrow(2, start - planes.start, stop - start)
        return _Planes(out, start, planes.total)

    def _conv_by_z_taps(self, planes: _Planes, conv: _Conv) -> _Planes:
        """A linear convolution with few output channels, as one (1, 3, 3) convolution per z
        tap (three times the output channels, which oneDNN pads to 16 anyway) summed over
        neighbouring planes: a third of the work."""
        taps = self.kernels.conv(planes.data, conv.weight, None, act=False, pad_z=0)
        start, stop = _valid(planes)
        before, after = int(start == planes.start), int(stop == planes.stop)  # map edges
        if before or after:  # the zero padding beyond the map
            taps = F.pad(taps, (0, 0, 0, 0, before, after))
        first, depth, c = start - planes.start + before, stop - start, conv.bias.shape[0]
        out = taps[:, c:2 * c].narrow(2, first, depth) + conv.bias.view(1, c, 1, 1, 1)
        out += taps[:, :c].narrow(2, first - 1, depth)
        out += taps[:, 2 * c:].narrow(2, first + 1, depth)
        return _Planes(out, start, planes.total)

    def _decode(self, block: _Decoder, skip_whole: torch.Tensor, low_whole: torch.Tensor,
                start: int, stop: int) -> _Planes:
        """Planes ``[start, stop)`` of a decoder block's output."""
        depth = 2 if block.output is None else 3  # convolutions in a row, each widening the halo
        h = self._conv(_take(skip_whole, start - depth, stop + depth), block.skip, act=False)
        low = _take(low_whole, h.start // 2 - 1, -(-h.stop // 2) + 1)
        phases = self.kernels.conv(low.data, block.up.weight, None, act=False)
        self.kernels.add_upsampled_leaky_(h, phases, low)
        del phases, low
        h = self._conv(h, block.second, act=True)
        if block.output is not None:
            h = self._conv_by_z_taps(h, block.output)
        return h.narrow(start, stop)

    def _encode(self, convs: list[_Conv], whole: torch.Tensor, start: int,
                stop: int) -> _Planes:
        """Planes ``[start, stop)`` of an encoder level's pooled output."""
        h = _take(whole, 2 * start - len(convs), 2 * stop + len(convs))
        for conv in convs:
            h = self._conv(h, conv, act=True)
        pooled = self.kernels.max_pool(h.narrow(2 * start, 2 * stop).data)
        return _Planes(pooled, start, whole.shape[2] // 2)

    def _by_slabs(self, block: Callable[[int, int], _Planes], total: int,
                  bytes_per_plane: int) -> torch.Tensor:
        """A level's whole output, computed slab by slab (a single slab when it fits)."""
        planes = max(MIN_SLAB_PLANES, self.slab_bytes // max(1, bytes_per_plane))
        count = -(-total // planes)
        if count <= 1:
            return block(0, total).data
        planes = 2 * -(-total // (2 * count))  # even, balanced
        first = block(0, planes).data
        out = torch.empty((first.shape[0], first.shape[1], total, *first.shape[3:]),
                          dtype=first.dtype, device=first.device, memory_format=CHANNELS_LAST)
        out[:, :, :planes] = first
        del first
        for start in range(planes, total, planes):
            stop = min(total, start + planes)
            out[:, :, start:stop] = block(start, stop).data
        return out

    # -- the network ------------------------------------------------------------------------

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for one input ``(1, 1, D, H, W)``."""
        h = _channels_last(x.to(self.like))
        skips = [h]
        convs = [self.encoder[:2]] + [[conv] for conv in self.encoder[2:6]]
        for level, level_convs in enumerate(convs):
            area = h.shape[3] * h.shape[4]
            width = 2 * max(c.weight.shape[0] for c in level_convs)
            h = self._by_slabs(lambda a, b, c=level_convs, w=h: self._encode(c, w, a, b),
                               h.shape[2] // 2, 8 * area * width)
            if level < 4:
                skips.append(h)
        h = self.kernels.conv(h, self.encoder[6].weight, self.encoder[6].bias, act=True)
        for block in self.decoders:
            skip = skips.pop()
            area = skip.shape[3] * skip.shape[4]
            width = 2 * block.skip.weight.shape[0]
            h = self._by_slabs(lambda a, b, k=block, s=skip, w=h: self._decode(k, s, w, a, b),
                               skip.shape[2], 4 * area * width)
            del skip
        return h


def _interleave(out: torch.Tensor, phases: torch.Tensor) -> None:
    """Write the phase outputs into ``out``: ``out[2k + p] = phases[k + p][phase p]`` per axis.

    Args:
        out: ``(N, C, 2K, 2Y, 2X)`` channels_last.
        phases: ``(N, 8C, K + 1, Y + 1, X + 1)`` (any strides), channel
            ``((pz * 2 + py) * 2 + px) * C + c`` holding phase ``(pz, py, px)``.
    """
    n, c, depth, height, width = out.shape
    k, y, x = depth // 2, height // 2, width // 2
    sn, sc, sz, sy, sx = phases.stride()
    source = phases.as_strided((n, k, 2, y, 2, x, 2, c),
                               (sn, sz, sz + 4 * c * sc, sy, sy + 2 * c * sc, sx, sx + c * sc, sc),
                               phases.storage_offset())
    out.permute(0, 2, 3, 4, 1).view(n, k, 2, y, 2, x, 2, c).copy_(source)


def _kernels(x: torch.Tensor, dtype: torch.dtype, fused: bool | None) -> _Kernels:
    """The kernels for an input on ``x``'s device computed in ``dtype``."""
    cpu = x.device.type == "cpu"
    onednn = (cpu and dtype in (torch.float32, torch.bfloat16)
              and torch.backends.mkldnn.is_available()
              and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))
    if fused and not onednn:
        raise ValueError(f"fused kernels need a CPU with oneDNN and float32 or bfloat16; got "
                         f"{x.device} and {dtype}")
    if fused is False:
        return _Kernels(onednn=False, compiled=False)
    return _Kernels(onednn=onednn, compiled=onednn)


def lean_forward(model: CrefUNet, x: torch.Tensor, *, slab_bytes: int = DEFAULT_SLAB_BYTES,
                 dtype: torch.dtype = torch.float32, fused: bool | None = None) -> torch.Tensor:
    """The network's output for ``x``, computed lean (see the module docstring).

    Runs without gradients, on ``x``'s device (the parameters are copied there), one batch
    item at a time.

    Args:
        model: the network (its current parameters are used).
        x: ``(N, 1, D, H, W)``, sides multiples of 32.
        slab_bytes: about how many bytes the activations of one slab may take.
        dtype: the computation's floating-point type: float32, or bfloat16 (faster on CPUs
            with bfloat16 instructions, further from float32: see docs/methods.md).
        fused: oneDNN's fused convolutions and the compiled steps (True), plain PyTorch
            (False), or the former where available (None: on the CPU).

    Returns:
        ``(N, 1, D, H, W)`` float32, the linear output.

    Raises:
        ValueError: ``x`` is not 5D with one channel, a side is not a multiple of 32, or
            ``fused`` is asked for where it is not available.
    """
    check_input(x)
    kernels = _kernels(x, dtype, fused)
    with torch.inference_mode():
        like = torch.empty((), dtype=dtype, device=x.device)
        run = _Pass(_weights(model, like), kernels, slab_bytes)
        outputs = [run.run(x[i:i + 1]).float() for i in range(x.shape[0])]
        return outputs[0].contiguous() if len(outputs) == 1 else torch.cat(outputs)
