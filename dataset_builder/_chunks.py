"""Writing whole maps into zarr v3 arrays chunk by chunk, in threads.

zarr creates the arrays (their ``zarr.json``); the chunks are then compressed with
numcodecs' Blosc -- the codec behind zarr's own ``BloscCodec`` -- and put at their keys with
fsspec, each chunk one task of a thread pool (Blosc and file writes release the GIL). The
bytes are those zarr writes itself (the tests compare them), for a fraction of the cost:
zarr's asynchronous pipeline spends more per chunk than compressing it. Every chunk is
written, edge chunks padded with the fill value 0.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import fsspec
import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec

_SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE,
             "bitshuffle": Blosc.BITSHUFFLE}


def _blosc_of(array: zarr.Array) -> Blosc:
    """The numcodecs Blosc that encodes like the array's codecs (little-endian float32 bytes,
    then Blosc); refuses any other codec chain."""
    codecs = array.metadata.codecs
    if (array.dtype != np.float32 or len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
            or codecs[0].endian.value != "little" or not isinstance(codecs[1], BloscCodec)
            or array.metadata.fill_value != 0):
        raise ValueError(f"{array.path}: chunks are written here only for float32 arrays with "
                         f"little-endian bytes, Blosc and fill value 0, not {codecs}")
    blosc = codecs[1]
    return Blosc(cname=blosc.cname.value, clevel=blosc.clevel,
                 shuffle=_SHUFFLES[blosc.shuffle.value], blocksize=blosc.blocksize,
                 typesize=4)


def write_maps(location: str, storage_options: dict | None,
               maps: Iterable[tuple[zarr.Array, np.ndarray]]) -> None:
    """Fill new zarr arrays with whole maps, every chunk compressed and written in threads.

    Args:
        location: the store the arrays are in (a local path or an fsspec URL).
        storage_options: fsspec options for URLs.
        maps: ``(array, data)`` pairs: an empty float32 array of ``data``'s shape with the
            codecs little-endian bytes + Blosc and fill value 0, just created by zarr in the
            store at ``location``, and the map for it.

    Raises:
        ValueError: an array of another shape, type, fill value or codec chain.
        OSError: a chunk cannot be written.
    """
    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    tasks = []
    for array, data in maps:
        if array.shape != data.shape:
            raise ValueError(f"{array.path}: array of shape {array.shape}, map of {data.shape}")
        codec = _blosc_of(array)
        grid = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks)]
        keys = {}
        for coords in itertools.product(*grid):
            keys[coords] = f"{root}/{array.path}/{array.metadata.encode_chunk_key(coords)}"
        for folder in {key.rsplit("/", 1)[0] for key in keys.values()}:
            fs.makedirs(folder, exist_ok=True)
        tasks += [(data, array.chunks, coords, key, codec) for coords, key in keys.items()]
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1))
    try:
        for done in [pool.submit(_write_chunk, fs, *task) for task in tasks]:
            done.result()
    finally:  # on a failure (or an interrupt) the chunks not begun are dropped
        pool.shutdown(cancel_futures=True)


def _write_chunk(fs, data: np.ndarray, chunks: tuple[int, ...], coords: tuple[int, ...],
                 key: str, codec: Blosc) -> None:
    """Compress and write one chunk of ``data`` (padded with zeros past its edges)."""
    region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunks))
    part = data[region]
    if part.shape == chunks:
        block = np.ascontiguousarray(part, dtype="<f4")
    else:
        block = np.zeros(chunks, dtype="<f4")
        block[tuple(slice(0, n) for n in part.shape)] = part
    fs.pipe_file(key, codec.encode(block))
