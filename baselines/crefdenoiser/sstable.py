"""Reading a LevelDB-format sorted table, the format of a TensorFlow checkpoint's ``.index`` file.

Layout (the LevelDB table format, which TensorFlow's ``tensorflow/core/lib/io/table`` keeps):

* a sequence of blocks, each followed by a 5-byte trailer: one byte of compression type
  (0 = none, 1 = snappy) and the masked CRC-32C of the block contents plus that byte;
* inside a block, entries ``varint shared | varint unshared | varint value_length |
  key suffix | value`` (keys are prefix-compressed against the previous key), then an array of
  ``uint32`` restart offsets and their ``uint32`` count;
* a 48-byte footer: the block handles (``varint offset | varint size``) of the metaindex
  and index blocks, zero padding, and the 8-byte magic number ``0xdb4775248b80fb57``;
* the index block maps, for each data block, a key at or past its last key to the
  block's handle.

Only uncompressed tables are read (TensorFlow writes checkpoint indexes uncompressed); a
compressed block is refused with a clear error. Everything here uses the standard library.
"""

from __future__ import annotations

import os
import struct

from baselines.crefdenoiser.errors import CheckpointError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
_CRC_MASK_DELTA = 0xA282EAD8


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """The CRC-32C (Castagnoli) checksum of ``data``.

    Args:
        data: the bytes to check.
        crc: a previous checksum to continue from (0 to start afresh).

    Returns:
        The checksum as an unsigned 32-bit integer.
    """
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """The masked form of a CRC-32C that LevelDB and TensorFlow store (rotate, add a constant).

    Args:
        crc: an unsigned 32-bit checksum.

    Returns:
        The masked checksum.
    """
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def read_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decode one unsigned base-128 varint (protobuf and LevelDB encoding).

    Args:
        buf: the bytes.
        pos: where the varint starts.
        end: where the readable region ends (default: the end of ``buf``).

    Returns:
        ``(value, position after the varint)``.

    Raises:
        ValueError: the varint runs past ``end`` or is longer than 10 bytes.
    """
    end = len(buf) if end is None else end
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise ValueError("varint runs past the end of its region")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")


def _block_handle(buf: bytes, pos: int, end: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(buf, pos, end)
    size, pos = read_varint(buf, pos, end)
    return (offset, size), pos


def _read_block(content: bytes, handle: tuple[int, int], source: str) -> bytes:
    offset, size = handle
    if offset + size + BLOCK_TRAILER_SIZE > len(content) - FOOTER_SIZE:
        raise CheckpointError(source, f"block at offset {offset} (size {size}) runs past the "
                              "end of the file; the file is truncated or corrupt")
    block = content[offset:offset + size]
    kind = content[offset + size]
    (stored_crc,) = struct.unpack_from("<I", content, offset + size + 1)
    if mask_crc(crc32c(content[offset:offset + size + 1])) != stored_crc:
        raise CheckpointError(source, f"checksum mismatch in the block at offset {offset}; "
                              "the file is corrupt")
    if kind != 0:
        name = "snappy" if kind == 1 else f"type {kind}"
        raise CheckpointError(source, f"the block at offset {offset} is {name}-compressed; "
                              "only uncompressed tables (as TensorFlow writes them) are supported")
    return block


def _block_entries(block: bytes, source: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise CheckpointError(source, "a block is shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise CheckpointError(source, f"a block claims {num_restarts} restart points, more "
                              "than fit")
    entries = []
    key = b""
    pos = 0
    try:
        while pos < end:
            shared, pos = read_varint(block, pos, end)
            unshared, pos = read_varint(block, pos, end)
            value_length, pos = read_varint(block, pos, end)
            if shared > len(key) or pos + unshared + value_length > end:
                raise ValueError("entry runs past the end of its block")
            key = key[:shared] + block[pos:pos + unshared]
            pos += unshared
            entries.append((key, block[pos:pos + value_length]))
            pos += value_length
    except ValueError as err:
        raise CheckpointError(source, f"corrupt block entry: {err}") from None
    return entries


def read_table(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """Read every ``(key, value)`` entry of an uncompressed LevelDB-format table, in key order.

    Args:
        path: the table file (a TensorFlow checkpoint's ``.index``).

    Returns:
        The entries, as a list of ``(key, value)`` byte strings.

    Raises:
        CheckpointError: the file is missing, too short, has the wrong magic number (not a
            table), is truncated, fails a block checksum, or holds a compressed block.
    """
    source = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as err:
        raise CheckpointError(source, f"cannot read the checkpoint index: {err.strerror}") from None
    if len(content) < FOOTER_SIZE:
        raise CheckpointError(source, f"only {len(content)} bytes, shorter than a table footer; "
                              "not a TensorFlow checkpoint index, or truncated")
    (magic,) = struct.unpack_from("<Q", content, len(content) - 8)
    if magic != TABLE_MAGIC:
        raise CheckpointError(source, f"bad magic number {magic:#018x} (expected "
                              f"{TABLE_MAGIC:#018x}); not a TensorFlow checkpoint index, or "
                              "truncated")
    footer_start = len(content) - FOOTER_SIZE
    try:
        _metaindex, pos = _block_handle(content, footer_start, len(content) - 8)
        index_handle, _ = _block_handle(content, pos, len(content) - 8)
    except ValueError as err:
        raise CheckpointError(source, f"corrupt table footer: {err}") from None
    entries = []
    index_block = _read_block(content, index_handle, source)
    for _last_key, handle_bytes in _block_entries(index_block, source):
        try:
            handle, _ = _block_handle(handle_bytes, 0, len(handle_bytes))
        except ValueError as err:
            raise CheckpointError(source, f"corrupt index entry: {err}") from None
        entries.extend(_block_entries(_read_block(content, handle, source), source))
    return entries
