"""Reading a TensorFlow tensor bundle: the checkpoint format of ``tf.train.Checkpoint`` and Keras
``model.save_weights``, with numpy and the standard library only (no TensorFlow, no protobuf).

A checkpoint ``PREFIX`` is ``PREFIX.index`` (a LevelDB-format table, see
:mod:`baselines.crefdenoiser.sstable`) and the data shards ``PREFIX.data-SSSSS-of-NNNNN``.
In the index the empty key holds a ``BundleHeaderProto`` (number of shards, endianness) and
every other key a ``BundleEntryProto`` describing one tensor; the fields read here are:

* ``BundleHeaderProto``: 1 ``num_shards``, 2 ``endianness`` (0 little, 1 big);
* ``BundleEntryProto``: 1 ``dtype``, 2 ``shape`` (a ``TensorShapeProto`` whose repeated
  field 2 is a ``Dim`` with field 1 ``size``), 3 ``shard_id``, 4 ``offset``, 5 ``size``,
  6 ``crc32c`` (fixed32, masked), 7 ``slices`` (partitioned variables; not supported).

A numeric tensor is ``size`` bytes at ``offset`` of its shard, C order, in the header's
endianness; its checksum is the masked CRC-32C of those bytes.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from baselines.crefdenoiser.errors import CheckpointError
from baselines.crefdenoiser.sstable import crc32c, mask_crc, read_table, read_varint

# TensorFlow DataType enum values of the numeric types read here.
_NUMPY_DTYPES = {1: "f4", 2: "f8", 3: "i4", 9: "i8", 19: "f2"}
_DT_STRING = 7
# Python type each BundleEntryProto field decodes to (varints as int, the rest as bytes).
_ENTRY_FIELD_TYPES = {1: int, 2: bytes, 3: int, 4: int, 5: int, 6: bytes}
_SHARD_NAME = re.compile(r"\.data-\d{5}-of-\d{5}$")


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor of a bundle lives and what it is.

    Attributes:
        dtype: the TensorFlow ``DataType`` enum value (1 is float32, 7 is string).
        shape: the tensor's shape.
        shard_id: which data shard holds it.
        offset: its byte offset in that shard.
        size: its size in bytes.
        crc32c: the masked CRC-32C of its bytes, or ``None`` when not recorded.
        sliced: whether the entry describes a partitioned variable (not readable here).
    """

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    sliced: bool = False


def _fields(buf: bytes):
    """Yield ``(field number, value)`` of a protobuf message; varints as int, others as bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("protobuf field runs past the end of its message")
        yield field, value


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, value in _fields(buf):
        if field == 2:
            size = next((v for f, v in _fields(value) if f == 1), 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)  # int64, -1 = unknown
    return tuple(dims)


def parse_entry(value: bytes) -> BundleEntry:
    """Decode a serialized ``BundleEntryProto``.

    Args:
        value: the bytes stored under a tensor's key in the index.

    Returns:
        The :class:`BundleEntry`.

    Raises:
        ValueError: the bytes are not a well-formed message.
    """
    found = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": None,
             "sliced": False}
    for field, item in _fields(value):
        expected = _ENTRY_FIELD_TYPES.get(field)
        if expected is not None and not isinstance(item, expected):
            raise ValueError(f"field {field} has the wrong wire type")
        if field == 1:
            found["dtype"] = item
        elif field == 2:
            found["shape"] = _parse_shape(item)
        elif field in (3, 4, 5):
            found[("shard_id", "offset", "size")[field - 3]] = item
        elif field == 6:
            if len(item) != 4:
                raise ValueError("the crc32c field is not 4 bytes")
            (found["crc32c"],) = struct.unpack("<I", item)
        elif field == 7:
            found["sliced"] = True
    return BundleEntry(**found)


def _shard_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


class TensorBundle:
    """An open TensorFlow checkpoint: its index parsed and its data shards checked.

    Args:
        index_path: the ``.index`` file (or the checkpoint prefix without ``.index``).

    Raises:
        CheckpointError: the path is a data shard rather than the index; the index is
            unreadable or corrupt; a data shard is missing; an
            entry lies past the end of its shard (truncated data file) or its byte size does
            not match its shape.
    """

    def __init__(self, index_path: str | os.PathLike):
        path = os.fspath(index_path)
        if _SHARD_NAME.search(path):
            raise CheckpointError(path, "this is a checkpoint data shard; give the checkpoint's "
                                  ".index file (beside it) instead")
        self.prefix = path[:-len(".index")] if path.endswith(".index") else path
        # A path naming an existing file is read as the index whatever its name.
        self.index_path = path if os.path.isfile(path) else self.prefix + ".index"
        self.entries: dict[str, BundleEntry] = {}
        header = None
        for key, value in read_table(self.index_path):
            try:
                if key == b"":
                    header = dict(_fields(value))
                else:
                    self.entries[key.decode("utf-8")] = parse_entry(value)
            except (ValueError, UnicodeDecodeError) as err:
                raise CheckpointError(self.index_path,
                                      f"corrupt entry {key!r}: {err}") from None
        if header is None:
            raise CheckpointError(self.index_path, "no bundle header (empty key); not a "
                                  "TensorFlow checkpoint index")
        self.num_shards = int(header.get(1, 1))
        self.byteorder = "<" if header.get(2, 0) == 0 else ">"
        self._check_data()

    def _check_data(self) -> None:
        sizes = {}
        for shard in range(self.num_shards):
            name = _shard_path(self.prefix, shard, self.num_shards)
            try:
                sizes[shard] = os.path.getsize(name)
            except OSError:
                raise CheckpointError(name, f"data file missing: the index {self.index_path} "
                                      "needs it beside it") from None
        for key, entry in self.entries.items():
            if entry.sliced:
                raise CheckpointError(self.index_path, f"{key} is a partitioned (sliced) "
                                      "variable; not supported")
            if entry.shard_id not in sizes:
                raise CheckpointError(self.index_path, f"{key} names shard {entry.shard_id} "
                                      f"of {self.num_shards}")
            name = _shard_path(self.prefix, entry.shard_id, self.num_shards)
            if entry.offset + entry.size > sizes[entry.shard_id]:
                raise CheckpointError(name, f"truncated: {key} needs bytes {entry.offset} to "
                                      f"{entry.offset + entry.size}, the file has "
                                      f"{sizes[entry.shard_id]}")
            if entry.dtype in _NUMPY_DTYPES:
                expected = math.prod(entry.shape) * np.dtype(_NUMPY_DTYPES[entry.dtype]).itemsize
                if entry.size != expected:
                    raise CheckpointError(self.index_path, f"{key} has shape {entry.shape} "
                                          f"({expected} bytes) but {entry.size} bytes of data")

    def keys(self) -> list[str]:
        """The keys of every entry, in the index's (sorted) order."""
        return list(self.entries)

    def is_numeric(self, key: str) -> bool:
        """Whether the entry ``key`` is a numeric tensor (as opposed to, e.g., a string)."""
        return self.entries[key].dtype in _NUMPY_DTYPES

    def read(self, key: str, verify: bool = True) -> np.ndarray:
        """Read one numeric tensor.

        Args:
            key: the entry's key.
            verify: check the bytes against the entry's CRC-32C when one is recorded.

        Returns:
            A new array of the entry's shape, in native byte order.

        Raises:
            KeyError: no entry ``key``.
            CheckpointError: the entry is not numeric, the read comes up short, or the
                checksum does not match (corrupt data file).
        """
        entry = self.entries[key]
        name = _shard_path(self.prefix, entry.shard_id, self.num_shards)
        if entry.dtype not in _NUMPY_DTYPES:
            kind = "string" if entry.dtype == _DT_STRING else f"DataType {entry.dtype}"
            raise CheckpointError(self.index_path, f"{key} is a {kind} tensor, not numeric")
        with open(name, "rb") as handle:
            handle.seek(entry.offset)
            raw = handle.read(entry.size)
        if len(raw) != entry.size:
            raise CheckpointError(name, f"truncated: {key} needs {entry.size} bytes at offset "
                                  f"{entry.offset}, got {len(raw)}")
        if verify and entry.crc32c is not None and mask_crc(crc32c(raw)) != entry.crc32c:
            raise CheckpointError(name, f"checksum mismatch for {key}; the data file is corrupt "
                                  "or does not belong to this index")
        dtype = np.dtype(self.byteorder + _NUMPY_DTYPES[entry.dtype])
        return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
