"""Tests of the builder's one-pass scan of a map (dataset_builder._moments: sha256 and masked
statistics against numpy and hashlib) and of its threaded chunk writer
(dataset_builder._chunks: the bytes zarr itself writes, on disk and in ``memory://``)."""

import hashlib
import uuid

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from dataset_builder._chunks import write_maps
from dataset_builder._moments import hashed_moments


def _expected(data: np.ndarray, inside: np.ndarray) -> dict:
    values = data.astype(np.float64)
    out = {}
    for group, sel in (("box", np.ones_like(inside)), ("inside", inside), ("outside", ~inside)):
        part = values[sel]
        out[group] = (part.size, part.mean(), part.std(), part.min(), part.max()) if part.size \
            else (0, None, None, None, None)
    return out


def _check(stats: dict, expected: dict) -> None:
    for group, (count, mean, std, lo, hi) in expected.items():
        got = stats[group]
        assert got["count"] == count
        if count == 0:
            assert got == {"count": 0, "mean": None, "std": None, "min": None, "max": None}
            continue
        assert got["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-12)
        assert got["std"] == pytest.approx(std, rel=1e-9)
        assert got["min"] == lo and got["max"] == hi  # exact: float32 values


def test_hash_and_statistics_over_many_slabs_equal_numpy():
    """A map of ~20 slabs with a large offset (the shifted sums keep the small std), negative
    values and signed zeros; the sha256 is that of its float32 little-endian bytes."""
    rng = np.random.default_rng(0)
    shape = (37, 300, 301)  # 361 kB planes: 2 planes a slab
    data = (1.0e4 + rng.normal(0, 0.01, shape)).astype(np.float32)
    data[5, :10, :10] = -3.5
    data[30, 0, :4] = [-0.0, 0.0, -0.0, 0.0]
    mask = rng.random(shape, dtype=np.float32)
    digest, stats = hashed_moments(data, mask, 0.5)
    assert digest == hashlib.sha256(data.astype("<f4").tobytes()).hexdigest()
    _check(stats, _expected(data, mask > 0.5))
    assert stats["box"]["min"] == -3.5 and stats["box"]["max"] == float(data.max())


@pytest.mark.parametrize("kind", ["float64", "big-endian", "transposed"])
def test_other_layouts_hash_as_float32_little_endian(kind):
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, (20, 24, 28)).astype(np.float32)
    data = {"float64": base.astype(np.float64), "big-endian": base.astype(">f4"),
            "transposed": np.ascontiguousarray(base.transpose(2, 1, 0)).transpose(2, 1, 0)}[kind]
    mask = (np.indices(base.shape).sum(axis=0) % 3 == 0).astype(np.uint8)
    digest, stats = hashed_moments(data, mask, 0.5)  # 0.5 on a uint8 mask: compared as float
    assert digest == hashlib.sha256(base.tobytes()).hexdigest()
    _check(stats, _expected(base, mask > 0.5))


def test_empty_groups_have_no_statistics():
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) - 50
    for mask, empty in ((np.zeros(data.shape, np.float32), "inside"),
                        (np.ones(data.shape, np.float32), "outside")):
        _, stats = hashed_moments(data, mask, 0.5)
        assert stats[empty]["count"] == 0 and stats[empty]["mean"] is None
        assert stats["box"]["min"] == -50.0 and stats["box"]["max"] == 69.0
        _check(stats, _expected(data, mask > 0.5))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["inside", "outside", "first voxel"])
def test_non_finite_voxels_give_no_statistics_but_the_hash(bad, where):
    rng = np.random.default_rng(2)
    data = rng.normal(0, 1, (30, 200, 200)).astype(np.float32)
    mask = np.zeros(data.shape, np.float32)
    mask[:, :100] = 1.0
    index = {"inside": (25, 50, 7), "outside": (25, 150, 7), "first voxel": (0, 0, 0)}[where]
    data[index] = bad
    digest, stats = hashed_moments(data, mask, 0.5)
    assert stats is None
    assert digest == hashlib.sha256(data.tobytes()).hexdigest()


def test_shapes_must_agree():
    with pytest.raises(ValueError, match=r"\(4, 4, 4\) and \(4, 4, 5\)"):
        hashed_moments(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), 0.5)


def _codec() -> BloscCodec:
    return BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")


def _chunk_files(fs, root: str) -> dict[str, bytes]:
    return {path[len(root):]: fs.cat_file(path) for path in fs.find(root)
            if "/c/" in path}


@pytest.mark.parametrize("location", ["local", "memory"])
def test_chunks_are_the_bytes_zarr_writes(tmp_path, location):
    """Maps with edge chunks on every axis, written by write_maps and by zarr itself: the
    same chunk files, byte for byte, and the same arrays read back."""
    import fsspec

    rng = np.random.default_rng(3)
    maps = {"a": rng.normal(0, 1, (40, 33, 50)).astype(np.float32),
            "b": np.ascontiguousarray(rng.normal(5, 2, (50, 33, 40)).astype(np.float32)
                                      .transpose(2, 1, 0))}
    base = str(tmp_path) if location == "local" else f"memory://scan-{uuid.uuid4().hex}"
    ours, theirs = f"{base}/ours.zarr", f"{base}/zarr.zarr"
    group = zarr.open_group(ours, mode="w")
    write_maps(ours, None, [(group.create_array(name, shape=m.shape, dtype=np.float32,
                                                chunks=(16, 16, 16), compressors=_codec(),
                                                fill_value=0.0), m)
                            for name, m in maps.items()])
    reference = zarr.open_group(theirs, mode="w")
    for name, m in maps.items():
        reference.create_array(name, data=m, chunks=(16, 16, 16), compressors=_codec(),
                               fill_value=0.0)
    fs, _ = fsspec.core.url_to_fs(base)
    ours_root, theirs_root = (fs._strip_protocol(p) for p in (ours, theirs))
    written = _chunk_files(fs, ours_root)
    assert len(written) == 2 * 3 * 3 * 4
    assert written == _chunk_files(fs, theirs_root)
    read_back = zarr.open_group(ours, mode="r")
    for name, m in maps.items():
        assert np.array_equal(read_back[name][...], m)


def test_chunk_writer_refuses_other_arrays(tmp_path):
    group = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    data = np.zeros((8, 8, 8), np.float32)
    zstd = group.create_array("zstd", shape=data.shape, dtype=np.float32, chunks=(4, 4, 4),
                              compressors=ZstdCodec(level=1), fill_value=0.0)
    with pytest.raises(ValueError, match="zstd: chunks are written here only"):
        write_maps(str(tmp_path / "x.zarr"), None, [(zstd, data)])
    small = group.create_array("small", shape=(4, 8, 8), dtype=np.float32, chunks=(4, 4, 4),
                               compressors=_codec(), fill_value=0.0)
    with pytest.raises(ValueError, match=r"small: array of shape \(4, 8, 8\), map of"):
        write_maps(str(tmp_path / "x.zarr"), None, [(small, data)])
