"""Tests for cref_bench.maps.io: round trips, axis permutations, other readers, modes, faults."""

from __future__ import annotations

import gzip
import io
import itertools
import warnings
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest
from mrcfile.dtypes import HEADER_DTYPE

from cref_bench.errors import MapError
from cref_bench.maps import io as mapio
from cref_bench.maps.io import MapWarning, read_header, read_map, write_map
from cref_bench.maps.volume import Volume

SHAPE = (8, 10, 12)                 # (z, y, x), deliberately non-cubic
VOXEL = (1.5, 1.25, 0.8)            # (z, y, x) Å, anisotropic


def labelled(shape=SHAPE) -> np.ndarray:
    """value = x + 100 y + 10000 z: every voxel says where it is (exact in float32)."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (x + 100 * y + 10000 * z).astype(np.float32)


def volume(origin=(0.0, 0.0, 0.0)) -> Volume:
    return Volume(labelled(), VOXEL, origin, source="test")


def raw_mrc(path, file_array, compression=None, voxel_size=None, **fields):
    """Write ``file_array`` (sections, rows, columns) with mrcfile, then set header fields."""
    with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
        mrc.set_data(file_array)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
        for name, value in fields.items():
            setattr(mrc.header, name, value)
    return path


def patch_header(path, **fields):
    """Overwrite header fields in place; ``cella_x`` style names reach sub-fields."""
    header = np.memmap(path, dtype=HEADER_DTYPE, mode="r+", shape=(1,))
    for name, value in fields.items():
        field, _, sub = name.partition("_")
        if sub:
            header[field][sub][0] = value
        else:
            header[field][0] = value
    header.flush()
    del header


def plain_map(tmp_path, name="m.mrc", **fields):
    return raw_mrc(tmp_path / name, labelled(), voxel_size=VOXEL[::-1], **fields)


def assert_fault(path, words, permissive=False):
    with pytest.raises(MapError) as caught:
        read_map(path, permissive=permissive)
    message = str(caught.value).lower()
    assert path.name in str(caught.value)
    for word in words:
        assert word.lower() in message, (word, message)


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("name, compress, gzipped", [
    ("m.mrc", None, False),
    ("m.map.gz", None, True),
    ("m.map", True, True),          # gzip by request, not by name
    ("m.mrc.gz", False, False),     # plain despite the name
])
def test_round_trip(tmp_path, name, compress, gzipped):
    original = volume(origin=(3 * 1.5, -2 * 1.25, 5 * 0.8))
    path = write_map(tmp_path / name, original, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is gzipped
    back = read_map(path)
    np.testing.assert_array_equal(back.data, original.data)
    assert back.data.dtype == np.float32 and back.data.flags.c_contiguous
    np.testing.assert_allclose(back.voxel_size, VOXEL, rtol=1e-6)
    np.testing.assert_allclose(back.origin, original.origin, atol=1e-5)
    assert back.source == str(path)
    header = read_header(path)
    assert header.shape == SHAPE and header.compressed is gzipped
    assert header.voxel_size == back.voxel_size and header.origin == back.origin


def test_fractional_origin_round_trip(tmp_path):
    original = volume(origin=(0.3, -7.77, 12.345))
    back = read_map(write_map(tmp_path / "f.mrc", original))
    np.testing.assert_array_equal(back.data, original.data)
    np.testing.assert_allclose(back.origin, original.origin, atol=1e-5)


def test_header_statistics_and_label(tmp_path):
    data = labelled()
    path = write_map(tmp_path / "s.mrc", volume(), label="my label")
    with mrcfile.open(path) as mrc:
        header = mrc.header
        assert header.dmin == data.min() and header.dmax == data.max()
        assert header.dmean == pytest.approx(data.astype(np.float64).mean(), rel=1e-6)
        assert header.rms == pytest.approx(data.astype(np.float64).std(), rel=1e-6)
        assert (header.mapc, header.mapr, header.maps) == (1, 2, 3)
        assert (header.mx, header.my, header.mz) == (12, 10, 8)
        assert header.mode == 2
    assert "my label" in read_header(path).labels


def test_write_refuses_non_finite(tmp_path):
    data = labelled()
    data[1, 2, 3] = np.nan
    with pytest.raises(MapError, match="non-finite"):
        write_map(tmp_path / "n.mrc", Volume(data, VOXEL))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- axis order

@pytest.mark.parametrize("axes", list(itertools.permutations((1, 2, 3))))
def test_permuted_axes_and_nstart(tmp_path, axes):
    """A file whose columns/rows/sections run along other axes reads to the right (z, y, x)."""
    mapc, mapr, maps = axes
    n_xyz = {1: 12, 2: 10, 3: 8}                      # voxels along X, Y, Z
    step_xyz = {1: 0.8, 2: 1.25, 3: 1.5}              # Å along X, Y, Z
    sampling_xyz = {a: 2 * n for a, n in n_xyz.items()}   # cell larger than the box
    crs_start = (3, -2, 5)                            # nxstart, nystart, nzstart (c, r, s)

    def value_at(s, r, c):
        xyz = {mapc: c, mapr: r, maps: s}
        return xyz[1] + 100 * xyz[2] + 10000 * xyz[3]

    file_shape = (n_xyz[maps], n_xyz[mapr], n_xyz[mapc])
    file_array = np.fromfunction(value_at, file_shape, dtype=int).astype(np.float32)
    path = raw_mrc(tmp_path / "p.mrc", file_array,
                   mapc=mapc, mapr=mapr, maps=maps,
                   nxstart=crs_start[0], nystart=crs_start[1], nzstart=crs_start[2],
                   mx=sampling_xyz[1], my=sampling_xyz[2], mz=sampling_xyz[3],
                   cella=tuple(sampling_xyz[a] * step_xyz[a] for a in (1, 2, 3)))

    vol = read_map(path)
    np.testing.assert_array_equal(vol.data, labelled())
    start_xyz = {mapc: crs_start[0], mapr: crs_start[1], maps: crs_start[2]}
    np.testing.assert_allclose(vol.voxel_size, VOXEL, rtol=1e-6)
    np.testing.assert_allclose(vol.origin, [start_xyz[a] * step_xyz[a] for a in (3, 2, 1)],
                               rtol=1e-6)

    # gemmi, which also honours mapc/mapr/maps and nstart, finds the same values there
    ccp4 = gemmi.read_ccp4_map(str(path))
    ccp4.setup(float("nan"))
    for k, j, i in [(0, 0, 0), (7, 9, 11), (2, 5, 3), (6, 1, 10)]:
        z, y, x = np.add(vol.origin, np.multiply((k, j, i), vol.voxel_size))
        assert ccp4.grid.get_nearest_point(gemmi.Position(x, y, z)).value == vol.data[k, j, i]


# ----------------------------------------------------------------------------- other readers

def test_written_file_in_mrcfile_and_gemmi(tmp_path):
    original = volume(origin=(3 * 1.5, -2 * 1.25, 5 * 0.8))
    for name in ("w.mrc", "w.map.gz"):
        path = write_map(tmp_path / name, original)
        with mrcfile.open(path) as mrc:
            np.testing.assert_array_equal(mrc.data, original.data)
            size = mrc.voxel_size
            np.testing.assert_allclose((size.z, size.y, size.x), VOXEL, rtol=1e-6)
            header = mrc.header
            assert (header.nzstart, header.nystart, header.nxstart) == (3, -2, 5)
            assert (header.origin.x, header.origin.y, header.origin.z) == (0, 0, 0)
            assert mrc.validate(print_file=io.StringIO())
        ccp4 = gemmi.read_ccp4_map(str(path))
        ccp4.setup(float("nan"))
        cell = ccp4.grid.unit_cell
        np.testing.assert_allclose((cell.c, cell.b, cell.a), np.multiply(SHAPE, VOXEL), rtol=1e-6)
        for k, j, i in [(0, 0, 0), (7, 9, 11), (4, 3, 8)]:
            z, y, x = np.add(original.origin, np.multiply((k, j, i), VOXEL))
            point = ccp4.grid.get_nearest_point(gemmi.Position(x, y, z))
            assert point.value == original.data[k, j, i]
            there = ccp4.grid.point_to_position(point)
            # same place, up to whole unit cells (gemmi's grid is periodic)
            for got, want, length in [(there.x, x, cell.a), (there.y, y, cell.b),
                                      (there.z, z, cell.c)]:
                turns = (got - want) / length
                assert abs(turns - round(turns)) < 1e-5


def test_fractional_origin_in_mrcfile_and_gemmi(tmp_path):
    """Exact origin in the origin header; gemmi (which ignores it) within half a voxel."""
    origin = (3.3 * 1.5, -2.2 * 1.25, 5.4 * 0.8)
    original = volume(origin=origin)
    path = write_map(tmp_path / "frac.mrc", original)
    with mrcfile.open(path) as mrc:
        header = mrc.header
        np.testing.assert_allclose((header.origin.z, header.origin.y, header.origin.x), origin,
                                   rtol=1e-6)
        assert (header.nzstart, header.nystart, header.nxstart) == (3, -2, 5)
    ccp4 = gemmi.read_ccp4_map(str(path))
    ccp4.setup(float("nan"))
    for k, j, i in [(0, 0, 0), (7, 9, 11), (4, 3, 8)]:
        z, y, x = np.add(origin, np.multiply((k, j, i), VOXEL))
        assert ccp4.grid.get_nearest_point(gemmi.Position(x, y, z)).value == \
            original.data[k, j, i]


# ----------------------------------------------------------------------------- origin rule

def test_origin_header_wins_over_zero_nstart(tmp_path):
    path = plain_map(tmp_path, origin=(10.0, 20.0, 30.0))
    np.testing.assert_allclose(read_map(path).origin, (30.0, 20.0, 10.0))


def test_origin_header_and_nstart_disagreeing_warn(tmp_path):
    path = plain_map(tmp_path, origin=(10.0, 20.0, 30.0), nxstart=1, nystart=1, nzstart=1)
    with pytest.warns(MapWarning, match="disagree"):
        vol = read_map(path)
    np.testing.assert_allclose(vol.origin, (30.0, 20.0, 10.0))


def test_origin_header_and_nstart_agreeing_are_quiet(tmp_path):
    path = plain_map(tmp_path, origin=(2 * 0.8, 3 * 1.25, 4 * 1.5),
                     nxstart=2, nystart=3, nzstart=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vol = read_map(path)
    np.testing.assert_allclose(vol.origin, (6.0, 3.75, 1.6), rtol=1e-6)


# ----------------------------------------------------------------------------- modes

@pytest.mark.parametrize("mode, values", [
    (0, np.array([-128, -1, 0, 1, 127], dtype=np.int8)),
    (1, np.array([-32768, -7, 0, 300, 32767], dtype=np.int16)),
    (2, np.array([-1.5e15, -0.1, 0.0, 3.25, 7e-20], dtype=np.float32)),
    (6, np.array([0, 1, 32768, 40000, 65535], dtype=np.uint16)),
    (12, np.array([-65504, -0.1, 0.0, 0.333, 1000.5], dtype=np.float16)),
])
def test_modes_read_as_float32(tmp_path, mode, values):
    data = np.resize(values, SHAPE[0] * SHAPE[1] * SHAPE[2]).reshape(SHAPE)
    for path, compression in [(tmp_path / "m.mrc", None), (tmp_path / "m.mrc.gz", "gzip")]:
        raw_mrc(path, data, compression=compression, voxel_size=VOXEL[::-1])
        assert read_header(path).mode == mode
        vol = read_map(path)
        assert vol.data.dtype == np.float32
        np.testing.assert_array_equal(vol.data, data.astype(np.float32))


def test_big_endian_file(tmp_path):
    data = labelled()
    path = raw_mrc(tmp_path / "be.mrc", data.astype(">f4"), voxel_size=VOXEL[::-1])
    assert read_header(path).file_dtype.byteorder == ">"
    np.testing.assert_array_equal(read_map(path).data, data)


# ----------------------------------------------------------------------------- faults

def test_missing_file(tmp_path):
    assert_fault(tmp_path / "absent.mrc", ["not found"])


def test_bad_stamp(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, map=b"XXXX")
    assert_fault(path, ["stamp"])
    with pytest.warns(MapWarning, match="stamp"):
        vol = read_map(path, permissive=True)
    np.testing.assert_array_equal(vol.data, labelled())


def test_not_a_map_at_all(tmp_path):
    path = tmp_path / "notes.mrc"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    assert_fault(path, ["stamp"])
    with pytest.warns(MapWarning, match="machine stamp"):
        assert_fault(path, ["stamp", "nonsense"], permissive=True)


def test_truncated_header(tmp_path):
    path = tmp_path / "short.mrc"
    path.write_bytes(plain_map(tmp_path).read_bytes()[:500])
    assert_fault(path, ["truncated header"])


@pytest.mark.parametrize("permissive", [False, True])
def test_truncated_data(tmp_path, permissive):
    full = plain_map(tmp_path).read_bytes()
    path = tmp_path / "cut.mrc"
    path.write_bytes(full[:-100])
    assert_fault(path, ["truncated data"], permissive=permissive)
    packed = tmp_path / "cut.mrc.gz"
    packed.write_bytes(gzip.compress(full[:-100]))   # a valid gzip of too little data
    read_header(packed)                               # the header alone is fine
    assert_fault(packed, ["truncated data"], permissive=permissive)


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(plain_map(tmp_path).read_bytes())
    path = tmp_path / "cut.map.gz"
    path.write_bytes(packed[: len(packed) // 2])
    assert_fault(path, ["truncated gzip"])
    assert_fault(path, ["truncated gzip"], permissive=True)
    path.write_bytes(packed[:20])                     # cut inside the header
    with pytest.raises(MapError, match="truncated gzip"):
        read_header(path)


def test_corrupt_gzip(tmp_path):
    packed = bytearray(gzip.compress(plain_map(tmp_path).read_bytes()))
    packed[-8] ^= 0xFF                                # break the CRC32 in the trailer
    path = tmp_path / "bad.map.gz"
    path.write_bytes(bytes(packed))
    assert_fault(path, ["corrupt gzip"])


@pytest.mark.parametrize("compressed", [False, True])
def test_longer_than_header_says(tmp_path, compressed):
    content = plain_map(tmp_path).read_bytes() + b"\0" * 64
    path = tmp_path / "long.mrc"
    path.write_bytes(gzip.compress(content) if compressed else content)
    assert_fault(path, ["inconsistent", "longer"])
    with pytest.warns(MapWarning, match="longer"):
        vol = read_map(path, permissive=True)
    np.testing.assert_array_equal(vol.data, labelled())


def test_zero_cell(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, cella_x=0.0)
    assert_fault(path, ["cell"])
    with pytest.warns(MapWarning, match="cell"):
        vol = read_map(path, permissive=True)
    np.testing.assert_allclose(vol.voxel_size, (1.5, 1.25, 1.0), rtol=1e-6)


def test_negative_sampling(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, my=-10)
    assert_fault(path, ["sampling"])
    with pytest.warns(MapWarning, match="sampling"):
        vol = read_map(path, permissive=True)
    np.testing.assert_allclose(vol.voxel_size, VOXEL, rtol=1e-6)   # my -> ny = 10


def test_non_finite_voxels(tmp_path):
    data = labelled()
    data[2, 3, 4] = np.nan
    data[5, 6, 7] = np.inf
    with pytest.warns(RuntimeWarning, match="NaN"):      # mrcfile's own, while writing
        path = raw_mrc(tmp_path / "nan.mrc", data, voxel_size=VOXEL[::-1])
    assert_fault(path, ["2 non-finite", "nan"])
    with pytest.warns(MapWarning, match="NaN"):
        vol = read_map(path, permissive=True)
    assert np.isnan(vol.data[2, 3, 4]) and np.isinf(vol.data[5, 6, 7])
    assert np.isfinite(vol.data).sum() == data.size - 2


def test_bad_axis_order(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, mapc=1, mapr=1, maps=3)
    assert_fault(path, ["mapc"])
    with pytest.warns(MapWarning, match="mapc"):
        vol = read_map(path, permissive=True)
    np.testing.assert_array_equal(vol.data, labelled())


def test_complex_mode(tmp_path):
    path = raw_mrc(tmp_path / "fft.mrc", np.ones((2, 3, 4), dtype=np.complex64))
    assert_fault(path, ["complex", "mode 4"])
    assert_fault(path, ["complex"], permissive=True)


def test_unknown_mode(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, mode=7)
    assert_fault(path, ["unknown mode 7"])


def test_machine_stamp(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, machst=np.array([0x12, 0x34, 0, 0], dtype=np.uint8))
    assert_fault(path, ["machine stamp"])
    with pytest.warns(MapWarning, match="machine stamp"):
        vol = read_map(path, permissive=True)
    np.testing.assert_array_equal(vol.data, labelled())


def test_unusable_origin_header(tmp_path):
    path = plain_map(tmp_path, nxstart=2)
    patch_header(path, origin_y=np.nan)
    assert_fault(path, ["origin"])
    with pytest.warns(MapWarning, match="origin"):
        vol = read_map(path, permissive=True)
    np.testing.assert_allclose(vol.origin, (0.0, 0.0, 2 * 0.8), rtol=1e-6)


def test_non_orthogonal_cell(tmp_path):
    path = plain_map(tmp_path)
    patch_header(path, cellb_gamma=120.0)
    assert_fault(path, ["angles"])


# ----------------------------------------------------------------------------- atomic write

def old_target(tmp_path):
    target = tmp_path / "out.mrc.gz"
    target.write_bytes(b"previous content")
    return target


def assert_untouched(tmp_path, target):
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_failure_while_writing_data_leaves_nothing(tmp_path, monkeypatch):
    def failing_new_mmap(name, **kwargs):
        Path(name).write_bytes(b"\0" * 2048)  # part of a file, then the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(mrcfile, "new_mmap", failing_new_mmap)
    new = tmp_path / "new.mrc"
    with pytest.raises(OSError, match="disk full"):
        write_map(new, volume())
    assert list(tmp_path.iterdir()) == []
    target = old_target(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        write_map(target, volume())
    assert_untouched(tmp_path, target)


def test_failure_while_compressing_leaves_nothing(tmp_path, monkeypatch):
    def failing_gzip_file(*, fileobj, **kwargs):
        fileobj.write(b"\x1f\x8b half a file")
        raise OSError("disk full")

    monkeypatch.setattr(gzip, "GzipFile", failing_gzip_file)
    target = old_target(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        write_map(target, volume())
    assert_untouched(tmp_path, target)


def test_failure_at_rename_leaves_nothing(tmp_path, monkeypatch):
    def failing_replace(source, target):
        raise OSError("rename refused")

    monkeypatch.setattr(mapio.os, "replace", failing_replace)
    target = old_target(tmp_path)
    with pytest.raises(OSError, match="rename refused"):
        write_map(target, volume())
    assert_untouched(tmp_path, target)
