"""Weights of the crefDenoiser network: importing the published TensorFlow checkpoint, and
saving and loading our own PyTorch weights file.

The published checkpoint (Keras ``model.save_weights``) stores convolution ``i`` in Keras
creation order under ``layer_with_weights-{i}/{kernel,bias}/.ATTRIBUTES/VARIABLE_VALUE``.
A Keras ``Conv3D`` (channels last) holds its kernel as ``(kD, kH, kW, C_in, C_out)`` and,
like ``torch.nn.Conv3d``, computes a cross-correlation over the spatial axes ``(D, H, W)``
in that order, so the kernel becomes ``(C_out, C_in, kD, kH, kW)`` by a transpose alone
(no flip, no spatial axis swap).

Our weights file is a ``torch.save`` of a plain dictionary (loaded with
``weights_only=True``)::

    {"format": "cref-bench-weights", "format_version": 1,
     "architecture": "crefdenoiser-unet3d", "state_dict": {...}, "metadata": {...}}

``metadata`` holds JSON-like facts (where the weights came from, epoch, ...).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from baselines.crefdenoiser.errors import CheckpointError
from baselines.crefdenoiser.network import ARCHITECTURE, CrefUNet
from baselines.crefdenoiser.tf_bundle import TensorBundle
from cref_bench.atomic import atomic_path

FILE_FORMAT = "cref-bench-weights"
FORMAT_VERSION = 1
_TF_KEY = "layer_with_weights-{index}/{kind}/.ATTRIBUTES/VARIABLE_VALUE"


def _keras_names(model: CrefUNet) -> list[str]:
    """State-dict prefixes of the model's convolutions in Keras creation order."""
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(conv)] for conv in model.keras_order()]


def tf_state_dict(index_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the published TensorFlow checkpoint into a :class:`CrefUNet` state dict.

    Args:
        index_path: the checkpoint's ``.index`` file (its ``.data-00000-of-00001`` beside it).

    Returns:
        The state dict (float32 CPU tensors), keys as in ``CrefUNet().state_dict()``.

    Raises:
        CheckpointError: the index or data file is missing, not a checkpoint, truncated or
            corrupt; a convolution's variables are missing or of the wrong shape.
    """
    bundle = TensorBundle(index_path)
    model = CrefUNet()
    state = {}
    for index, (name, conv) in enumerate(zip(_keras_names(model), model.keras_order())):
        c_out, c_in = conv.weight.shape[:2]
        expected = {"kernel": (3, 3, 3, c_in, c_out), "bias": (c_out,)}
        arrays = {}
        for kind, shape in expected.items():
            key = _TF_KEY.format(index=index, kind=kind)
            if key not in bundle.entries:
                raise CheckpointError(bundle.index_path, f"no variable {key}; not a checkpoint "
                                      "of the crefDenoiser network")
            if bundle.entries[key].shape != shape:
                raise CheckpointError(bundle.index_path, f"{key} has shape "
                                      f"{bundle.entries[key].shape}, the network needs {shape}")
            arrays[kind] = bundle.read(key).astype(np.float32, copy=False)
        state[f"{name}.weight"] = torch.from_numpy(
            np.ascontiguousarray(arrays["kernel"].transpose(4, 3, 0, 1, 2)))
        state[f"{name}.bias"] = torch.from_numpy(arrays["bias"].copy())
    return state


def weights_payload(model: torch.nn.Module, metadata: dict | None = None) -> dict:
    """The dictionary our weights file holds, for ``model``'s parameters.

    The trainer adds a ``"training"`` entry to it for its checkpoints.

    Args:
        model: the network.
        metadata: JSON-like facts to keep beside the weights (strings, numbers, lists, dicts).

    Returns:
        ``{"format", "format_version", "architecture", "state_dict", "metadata"}``, the
        state dict's tensors copied to the CPU as contiguous float32.
    """
    return {"format": FILE_FORMAT, "format_version": FORMAT_VERSION,
            "architecture": ARCHITECTURE,
            "state_dict": {k: v.detach().to("cpu", torch.float32).contiguous()
                           for k, v in model.state_dict().items()},
            "metadata": dict(metadata or {})}


def save_payload(payload: dict, path: str | os.PathLike) -> Path:
    """Write a weights-file dictionary (:func:`weights_payload`, perhaps with more entries)
    atomically: under a temporary name in the same folder, then renamed into place, so a
    reader never sees a half-written file.

    Args:
        payload: the dictionary.
        path: where to write.

    Returns:
        The path written.

    Raises:
        OSError: the folder cannot be written.
    """
    path = Path(path)
    with atomic_path(path) as temp:
        torch.save(payload, temp)
    return path


def save_weights(model: torch.nn.Module, path: str | os.PathLike,
                 metadata: dict | None = None) -> Path:
    """Write the network's weights to our ``.pt`` format, atomically.

    Args:
        model: the network.
        path: where to write.
        metadata: JSON-like facts to keep beside the weights (strings, numbers, lists, dicts).

    Returns:
        The path written.

    Raises:
        OSError: the folder cannot be written.
    """
    return save_payload(weights_payload(model, metadata), path)


def read_payload(path: str | os.PathLike) -> dict:
    """Read and check a file of our format (weights, and training state if the trainer wrote it).

    Args:
        path: a file written by :func:`save_weights` or the trainer.

    Returns:
        The file's dictionary (CPU tensors): ``format``, ``format_version``,
        ``architecture``, ``state_dict``, ``metadata`` and any further keys.

    Raises:
        CheckpointError: the file is missing, not a torch file, not of our format, or for
            another architecture.
    """
    source = os.fspath(path)
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(source, "weights file not found") from None
    except Exception as err:  # torch raises several unrelated types for a bad file
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(source, f"not a readable torch weights file ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise CheckpointError(source, f"not a {FILE_FORMAT} file (write one with "
                              "`cref-bench import-weights` or the trainer)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(source, f"format version {payload.get('format_version')!r}; "
                              f"this code reads version {FORMAT_VERSION}")
    if payload.get("architecture") != ARCHITECTURE:
        raise CheckpointError(source, f"weights for architecture {payload.get('architecture')!r}, "
                              f"not {ARCHITECTURE!r}")
    return payload


def read_weights_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read our ``.pt`` weights file without building a network.

    Args:
        path: a file written by :func:`save_weights` or the trainer.

    Returns:
        ``(state_dict, metadata)``.

    Raises:
        CheckpointError: as :func:`read_payload`.
    """
    payload = read_payload(path)
    return payload["state_dict"], payload.get("metadata", {})


def _is_tf_checkpoint(path: str) -> bool:
    return path.endswith(".index") or os.path.exists(path + ".index")


def load_weights(path: str | os.PathLike) -> CrefUNet:
    """Build a :class:`CrefUNet` from a weights file: ours (``.pt``) or the TensorFlow checkpoint.

    A path ending in ``.index``, or a prefix with a ``.index`` beside it, is read as a
    TensorFlow checkpoint; anything else as our format.

    Args:
        path: the weights file.

    Returns:
        The network on the CPU, in eval mode.

    Raises:
        CheckpointError: the file is missing or unusable (see :func:`tf_state_dict` and
            :func:`read_weights_file`), or its tensors do not fit the network.
    """
    source = os.fspath(path)
    state = tf_state_dict(source) if _is_tf_checkpoint(source) else read_weights_file(source)[0]
    model = CrefUNet()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(source, f"weights do not fit the network: {err}") from None
    return model.eval()


def weights_digest(path: str | os.PathLike, length: int = 12) -> str:
    """A short SHA-256 of a weights file, for method versions and provenance.

    For a TensorFlow checkpoint the digest covers the index and its data file.

    Args:
        path: our ``.pt`` file, or a TensorFlow ``.index`` (or prefix).
        length: hex digits kept.

    Returns:
        The first ``length`` hex digits of the digest.

    Raises:
        CheckpointError: a file cannot be read.
    """
    source = os.fspath(path)
    if _is_tf_checkpoint(source):
        prefix = source[:-len(".index")] if source.endswith(".index") else source
        files = [prefix + ".index", prefix + ".data-00000-of-00001"]
    else:
        files = [source]
    digest = hashlib.sha256()
    for name in files:
        try:
            with open(name, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as err:
            raise CheckpointError(name, f"cannot read the weights file: {err.strerror}") from None
    return digest.hexdigest()[:length]
