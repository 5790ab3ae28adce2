"""Tests of the corpus store writer (dataset_builder.store) read back through
cref_bench.corpus.reader: zarr v3 layout, bit-exact round trip, attributes and statistics, the
manifest, the patch index, finalisation and the content hash, interrupted writes, bad input,
concurrent writers, and an fsspec ``memory://`` store."""

import hashlib
import inspect
import itertools
import pickle
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import zarr

from baselines.crefdenoiser.patches import PatchDataset
from cref_bench.corpus import layout as store_layout
from cref_bench.corpus import splits
from cref_bench.corpus.layout import MAP_ROLES
from cref_bench.corpus.reader import Entry, open_corpus
from cref_bench.errors import (
    BadMask,
    ConstantMap,
    CorpusError,
    GeometryMismatch,
    MapError,
    NonFiniteMap,
)
from cref_bench.maps.volume import Volume
from dataset_builder.store import (
    create_store,
    finalize,
    grid_origins,
    is_complete,
    open_store,
    patch_origins,
    record_rejection,
    write_entry,
)

PATCH = 16
VOXEL = (1.1, 1.2, 1.3)
ORIGIN = (-5.5, 12.0, 3.25)


def make_maps(seed: int, shape=(40, 40, 40), truth: bool = True) -> dict[str, Volume]:
    """Random half-maps, a soft ball mask (values 0, 0.3 and 1) and a truth map."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    centre = np.asarray(shape, dtype=np.float32).reshape(3, 1, 1, 1) / 2
    radius = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    mask = np.where(radius < 8, 1.0, np.where(radius < 10, 0.3, 0.0)).astype(np.float32)
    signal = np.exp(-radius ** 2 / 40).astype(np.float32)
    maps = {"half1": signal + rng.normal(0, 0.5, shape).astype(np.float32),
            "half2": signal + rng.normal(0, 0.5, shape).astype(np.float32) + 2.0,
            "mask": mask}
    if truth:
        maps["truth"] = signal
    return {k: Volume(v, VOXEL, ORIGIN, source=f"synthetic {k}") for k, v in maps.items()}


def new_store(tmp_path, name="corpus.zarr", **options):
    return create_store(tmp_path / name, source="unit-test phantoms", patch_size=PATCH,
                        **options)


def read(location):
    """Open a corpus without the staleness warning."""
    return open_corpus(location, warn_stale=False)


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()


def test_round_trip_is_bit_exact_with_geometry(tmp_path):
    store = new_store(tmp_path)
    maps = make_maps(1)
    write_entry(store, "EMD-1001", **maps, metadata={"resolution": 3.4})
    no_truth = make_maps(2, shape=(32, 36, 44), truth=False)
    write_entry(store, "EMD-1002", **no_truth)
    corpus = read(store.location)
    entry = corpus.entry("EMD-1001")
    for name, vol in maps.items():
        got = getattr(entry, name)
        assert isinstance(got, Volume)
        assert got.data.dtype == np.float32 and got.shape == (40, 40, 40)
        assert np.array_equal(got.data, vol.data)
        assert got.voxel_size == VOXEL and got.origin == ORIGIN
        assert got.source.endswith(f"entries/EMD-1001/{name}")
    other = corpus.entry("EMD-1002")
    assert other.truth is None
    assert other.half1.shape == (32, 36, 44)
    assert np.array_equal(other.half2.data, no_truth["half2"].data)


def test_layout_is_zarr_v3_chunked_and_compressed(tmp_path):
    store = new_store(tmp_path, chunk=24)
    write_entry(store, "EMD-1001", **make_maps(1))
    root = zarr.open_group(store.location, mode="r")
    assert root.metadata.zarr_format == 3
    group = root["entries/EMD-1001"]
    assert sorted(group.array_keys()) == ["half1", "half2", "mask", "patches", "truth"]
    for name in ("half1", "half2", "mask", "truth"):
        array = group[name]
        assert array.metadata.zarr_format == 3
        assert array.dtype == np.float32 and array.chunks == (24, 24, 24)
        codec, = array.compressors
        assert isinstance(codec, zarr.codecs.BloscCodec) and codec.cname.value == "lz4"
    # compressed on disk: the mask (three values) takes far less than its raw 256 KB
    mask_dir = tmp_path / "corpus.zarr" / "entries" / "EMD-1001" / "mask"
    stored = sum(p.stat().st_size for p in mask_dir.rglob("*") if p.is_file())
    assert stored < 0.05 * 40 ** 3 * 4
    # the default chunk is the patch stride (the default patch size, 96), at most 64
    big = create_store(tmp_path / "default.zarr", source="x")
    write_entry(big, "EMD-1", **make_maps(1, shape=(100, 40, 40)))
    half1 = zarr.open_group(big.location, mode="r")["entries/EMD-1/half1"]
    assert half1.chunks == (64, 40, 40)
    assert read(big.location).patch_size == 96
    small = new_store(tmp_path, "small.zarr")  # a stride of 16: chunks of 16
    write_entry(small, "EMD-1", **make_maps(1))
    assert zarr.open_group(small.location, mode="r")["entries/EMD-1/half1"].chunks == (16,) * 3


def test_content_hash_does_not_depend_on_the_chunking(tmp_path):
    """The same entries in stores chunked 96³, 64³ and 7³ (edge chunks on every axis): the
    same maps read back and the same content hash."""
    maps = make_maps(4, shape=(40, 36, 44))
    digests = set()
    for chunk in (96, 64, 7):
        store = new_store(tmp_path, f"c{chunk}.zarr", chunk=chunk)
        write_entry(store, "EMD-1", **maps, metadata={"resolution": 3.0})
        digests.add(finalize(store))
        entry = read(store.location).entry("EMD-1")
        for name, vol in maps.items():
            assert np.array_equal(getattr(entry, name).data, vol.data)
    assert len(digests) == 1


def test_attributes_checksums_and_statistics(tmp_path):
    store = new_store(tmp_path)
    maps = make_maps(3)
    digests = {"EMD-1001_half1.map.gz": "a" * 64, "EMD-1001_half2.map.gz": "b" * 64}
    metadata = {"resolution": 3.4, "source": "emdb", "release_date": "2021-03-04",
                "source_sha256": digests, "title": "a phantom", "symmetry": "C1"}
    row = write_entry(store, "EMD-1001", **maps, metadata=metadata,
                      models={"6xyz": "data_6xyz\n#\n"})
    entry = read(store.location).entry("EMD-1001")
    meta = entry.metadata
    assert meta["id"] == "EMD-1001" and meta["complete"] is True
    assert meta["format_version"] == 1 and meta["split_rule_version"] == 1
    assert meta["split"] == splits.split_of("EMD-1001") == entry.split
    assert meta["voxel_size"] == list(VOXEL) and meta["origin"] == list(ORIGIN)
    assert meta["shape"] == [40, 40, 40]
    assert entry.resolution == 3.4 and meta["source"] == "emdb"
    assert meta["release_date"] == "2021-03-04" and meta["source_sha256"] == digests
    assert meta["title"] == "a phantom" and meta["symmetry"] == "C1"
    assert meta["maps"] == ["half1", "half2", "mask", "truth"]
    assert meta["models"] == ["6xyz"] and meta["fitted_models"] == ["6xyz"]
    assert entry.model("6xyz") == "data_6xyz\n#\n"
    expected_sha = {n: sha256_of(v.data) for n, v in maps.items()}
    expected_sha["models/6xyz"] = hashlib.sha256(b"data_6xyz\n#\n").hexdigest()
    expected_sha["patches"] = hashlib.sha256(entry.patches.astype("<i4").tobytes()).hexdigest()
    assert meta["array_sha256"] == expected_sha
    inside = maps["mask"].data > 0.5
    for name in ("half1", "half2", "truth"):
        values = maps[name].data.astype(np.float64)
        for where, sel in (("box", np.ones_like(inside)), ("inside", inside),
                           ("outside", ~inside)):
            got = meta["stats"][name][where]
            part = values[sel]
            assert got["count"] == part.size
            assert got["mean"] == pytest.approx(part.mean(), rel=1e-12, abs=1e-12)
            assert got["std"] == pytest.approx(part.std(), rel=1e-10)
            assert got["min"] == part.min() and got["max"] == part.max()
        assert entry.standardisation(name) == (meta["stats"][name]["box"]["mean"],
                                               meta["stats"][name]["box"]["std"])
    assert meta["stats"]["mask"] == {"inside_voxels": int(inside.sum()),
                                     "inside_fraction": inside.mean(), "min": 0.0, "max": 1.0}
    assert row["status"] == "ok" and row["resolution"] == 3.4 and row["box"] == [40, 40, 40]


def test_reference_map_round_trip_and_hash(tmp_path):
    store = new_store(tmp_path)
    maps = make_maps(5)
    sharper = np.exp(-np.sum((np.indices((40, 40, 40)) - 20.0) ** 2, axis=0) / 10.0)
    reference = maps["half1"].like(sharper.astype(np.float32), source="reference.map")
    write_entry(store, "EMD-1", **maps, reference=reference)
    write_entry(store, "EMD-2", **make_maps(6))
    corpus = read(store.location)
    entry = corpus.entry("EMD-1")
    assert np.array_equal(entry.reference.data, reference.data)
    assert entry.reference.voxel_size == VOXEL and entry.reference.origin == ORIGIN
    assert entry.map("reference") is entry.reference  # read once, then kept
    assert entry.metadata["maps"] == ["half1", "half2", "mask", "truth", "reference"]
    assert entry.metadata["array_sha256"]["reference"] == sha256_of(reference.data)
    box = entry.metadata["stats"]["reference"]["box"]
    assert box["mean"] == pytest.approx(reference.data.astype(np.float64).mean(), rel=1e-9)
    assert entry.standardisation("reference") == (box["mean"], box["std"])
    assert corpus.entry("EMD-2").reference is None  # optional, like the truth
    with pytest.raises(CorpusError, match="no map role 'sharpened'"):
        entry.map("sharpened")
    # hashed like the other maps: one voxel of the reference changes the content hash
    digest = finalize(store)
    changed = reference.data.copy()
    changed[20, 20, 20] += 1e-3
    write_entry(store, "EMD-1", **maps, reference=reference.like(changed), overwrite=True)
    assert finalize(store) != digest
    write_entry(store, "EMD-1", **maps, reference=reference, overwrite=True)
    assert finalize(store) == digest
    # held to the halves' grid
    shifted = Volume(reference.data, VOXEL, (ORIGIN[0] + 2.0, ORIGIN[1], ORIGIN[2]))
    with pytest.raises(GeometryMismatch, match="entry EMD-3 reference .*origin"):
        write_entry(store, "EMD-3", **maps, reference=shifted)


def test_map_roles_are_one_table_for_writer_reader_and_docs():
    parameters = inspect.signature(write_entry).parameters
    for role in MAP_ROLES:
        assert (parameters[role.name].default is inspect.Parameter.empty) == role.required
        assert isinstance(getattr(Entry, role.name), property)
        assert role.name in store_layout.__doc__ and role.meaning in store_layout.__doc__
    assert [r.name for r in MAP_ROLES if r.required] == ["half1", "half2", "mask"]


def brute_force_origins(mask: np.ndarray, size: int, stride: int) -> set:
    """Every origin that lies on the grid (a multiple of the stride, or flush with the far
    edge) and whose patch holds a mask voxel > 0.5."""
    kept = set()
    for origin in itertools.product(*(range(n - size + 1) for n in mask.shape)):
        on_grid = all(o % stride == 0 or o == n - size for o, n in zip(origin, mask.shape))
        window = tuple(slice(o, o + size) for o in origin)
        if on_grid and (mask[window] > 0.5).any():
            kept.add(origin)
    return kept


def test_grid_origins_known_answers():
    assert grid_origins(40, 16, 16) == [0, 16, 24]
    assert grid_origins(48, 16, 16) == [0, 16, 32]
    assert grid_origins(16, 16, 16) == [0]
    assert grid_origins(15, 16, 16) == []
    assert grid_origins(40, 16, 8) == [0, 8, 16, 24]
    assert grid_origins(384, 96, 96) == [0, 96, 192, 288]


@pytest.mark.parametrize("shape, stride", [((40, 40, 40), 16), ((40, 36, 44), 16),
                                           ((33, 40, 40), 8)])
def test_patch_index_matches_brute_force(shape, stride):
    rng = np.random.default_rng(sum(shape) + stride)
    mask = np.zeros(shape, np.float32)
    for _ in range(3):  # three small blobs, and some sub-threshold voxels
        z, y, x = (rng.integers(0, n - 4) for n in shape)
        mask[z:z + 4, y:y + 4, x:x + 4] = 1.0
    mask[rng.random(shape) < 0.01] = 0.5  # not above the threshold: never keeps a patch
    found = patch_origins(mask, PATCH, stride)
    assert found.dtype == np.int32 and found.shape[1] == 3
    assert len({tuple(o) for o in found}) == len(found)
    assert {tuple(int(v) for v in o) for o in found} == brute_force_origins(mask, PATCH, stride)


def test_patch_index_single_voxel_known_counts(tmp_path):
    store = new_store(tmp_path)
    maps = make_maps(4)
    for voxel, expected in (((20, 20, 20), [(16, 16, 16)]),
                            ((30, 30, 30), list(itertools.product((16, 24), repeat=3))),
                            ((3, 39, 17), [(0, 24, 16)])):
        mask = np.zeros((40, 40, 40), np.float32)
        mask[voxel] = 1.0
        entry_id = "EMD-" + "-".join(map(str, voxel))
        write_entry(store, entry_id, half1=maps["half1"], half2=maps["half2"],
                    mask=maps["mask"].like(mask))
        entry = read(store.location).entry(entry_id)
        assert [tuple(o) for o in entry.patches.tolist()] == expected
        assert entry.metadata["patches"] == {"size": PATCH, "stride": PATCH,
                                             "threshold": 0.5, "count": len(expected)}


def test_box_smaller_than_a_patch_has_no_patches(tmp_path):
    store = create_store(tmp_path / "c.zarr", source="x", patch_size=48)
    write_entry(store, "EMD-1", **make_maps(5))
    entry = read(store.location).entry("EMD-1")
    assert entry.patches.shape == (0, 3) and entry.metadata["patches"]["count"] == 0


def test_manifest_has_one_row_per_entry_considered(tmp_path):
    store = new_store(tmp_path)
    write_entry(store, "EMD-1001", **make_maps(1), metadata={"resolution": 3.0})
    write_entry(store, "EMD-1002", **make_maps(2), metadata={"resolution": 4.5,
                                                             "title": "two"})
    record_rejection(store, "EMD-1003", "resolution 9.1 Å is worse than 6 Å",
                     {"resolution": 9.1, "voxel_size": [1.0, 1.0, 1.0], "box": [64, 64, 64]})
    record_rejection(store, "EMD-1004", MapError("EMD-1004_half1.map", "truncated file"),
                     status="failed")
    frame = read(store.location).manifest
    assert list(frame["id"]) == ["EMD-1001", "EMD-1002", "EMD-1003", "EMD-1004"]
    assert list(frame.columns[:11]) == ["id", "status", "reason", "split", "source",
                                        "resolution", "voxel_size", "box", "release_date",
                                        "fitted_models", "considered_at"]
    by_id = frame.set_index("id")
    assert list(by_id["status"]) == ["ok", "ok", "rejected", "failed"]
    assert by_id.loc["EMD-1003", "reason"] == "resolution 9.1 Å is worse than 6 Å"
    assert by_id.loc["EMD-1004", "reason"] == "MapError: EMD-1004_half1.map: truncated file"
    assert pd.isna(by_id.loc["EMD-1001", "reason"])  # missing values are NA in pandas
    assert list(by_id["split"]) == [splits.split_of(i) for i in by_id.index]
    assert by_id["resolution"].tolist()[:3] == [3.0, 4.5, 9.1]
    assert pd.isna(by_id.loc["EMD-1004", "resolution"])
    assert by_id.loc["EMD-1001", "voxel_size"] == list(VOXEL)
    assert by_id.loc["EMD-1003", "box"] == [64, 64, 64]
    assert by_id.loc["EMD-1002", "title"] == "two"
    assert set(by_id["source"]) == {"unit-test phantoms"}
    # a later verdict replaces the row and removes the entry's data
    record_rejection(store, "EMD-1002", "duplicate of EMD-1001")
    corpus = read(store.location)
    assert "EMD-1002" not in corpus and len(corpus.manifest) == 4
    assert corpus.manifest.set_index("id").loc["EMD-1002", "status"] == "rejected"
    assert not is_complete(store, "EMD-1002")


def test_finalize_records_versions_hash_and_test50(tmp_path):
    store = new_store(tmp_path)
    test_ids = [i for i in (f"EMD-{k}" for k in range(2000, 2100))
                if splits.split_of(i) == "test"][:3]
    train_id = next(i for i in (f"EMD-{k}" for k in range(3000, 3100))
                    if splits.split_of(i) == "train")
    for seed, entry_id in enumerate(test_ids + [train_id]):
        write_entry(store, entry_id, **make_maps(seed, shape=(32, 32, 32), truth=False))
    record_rejection(store, "EMD-9", "no half-maps")
    with pytest.warns(UserWarning, match="never finalised"):
        open_corpus(store.location)
    digest = finalize(store)
    attrs = zarr.open_group(store.location, mode="r").attrs.asdict()
    assert attrs["format_version"] == 1 and attrs["split_rule_version"] == 1
    assert attrs["content_hash"] == digest and len(digest) == 64
    assert attrs["test_50"] == sorted(test_ids, key=splits.rank_key)
    assert attrs["counts"]["test"] == 3 and attrs["counts"]["train"] == 1
    assert attrs["counts"]["ok"] == 4 and attrs["counts"]["rejected"] == 1
    assert attrs["patch"]["size"] == PATCH and attrs["source"] == "unit-test phantoms"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corpus = open_corpus(store.location)  # finalised and unchanged: no warning
    assert corpus.content_hash == digest == corpus.current_hash()
    assert corpus.format_version == 1 and corpus.split_rule_version == 1
    assert corpus.version == f"f1-s1-{digest[:12]}"
    assert corpus.ids("test-50") == attrs["test_50"]


def test_content_hash_changes_with_content_only(tmp_path):
    first = new_store(tmp_path, "a.zarr")
    maps = {i: make_maps(k, shape=(32, 32, 32), truth=False)
            for k, i in enumerate(["EMD-1", "EMD-2", "EMD-3"])}
    for entry_id, m in maps.items():
        write_entry(first, entry_id, **m, metadata={"resolution": 3.0})
    digest = finalize(first)
    assert finalize(first) == digest  # stable when nothing changed
    # the same entries written in another order, at another time, give the same hash
    second = new_store(tmp_path, "b.zarr")
    for entry_id in reversed(maps):
        write_entry(second, entry_id, **maps[entry_id], metadata={"resolution": 3.0})
    assert finalize(second) == digest
    # one voxel of one map changes the hash; restoring it restores the hash
    changed = maps["EMD-2"]["half1"].data.copy()
    changed[5, 6, 7] += 1e-3
    write_entry(second, "EMD-2", **{**maps["EMD-2"], "half1": maps["EMD-2"]["half1"].like(
        changed)}, metadata={"resolution": 3.0}, overwrite=True)
    with pytest.warns(UserWarning, match="changed since"):
        open_corpus(second.location)
    voxel_hash = finalize(second)
    assert voxel_hash != digest
    write_entry(second, "EMD-2", **maps["EMD-2"], metadata={"resolution": 3.0},
                overwrite=True)
    assert finalize(second) == digest
    # so do a metadata change, the origin, and removing an entry
    write_entry(second, "EMD-2", **maps["EMD-2"], metadata={"resolution": 3.1},
                overwrite=True)
    resolution_hash = finalize(second)
    moved = {k: Volume(v.data, VOXEL, (0.0, 0.0, 0.0)) for k, v in maps["EMD-2"].items()}
    write_entry(second, "EMD-2", **moved, metadata={"resolution": 3.0}, overwrite=True)
    origin_hash = finalize(second)
    record_rejection(second, "EMD-2", "withdrawn")
    removed_hash = finalize(second)
    hashes = [digest, voxel_hash, resolution_hash, origin_hash, removed_hash]
    assert len(set(hashes)) == len(hashes)


def test_rewrite_is_skipped_unless_overwrite(tmp_path):
    store = new_store(tmp_path)
    maps = make_maps(1, truth=False)
    write_entry(store, "EMD-1", **maps, metadata={"resolution": 3.0})
    written = read(store.location).entry("EMD-1").metadata["written_at"]
    other = make_maps(2, truth=False)
    row = write_entry(store, "EMD-1", **other, metadata={"resolution": 5.0})
    entry = read(store.location).entry("EMD-1")
    assert row["resolution"] == 3.0 and entry.resolution == 3.0  # left as it was
    assert entry.metadata["written_at"] == written
    assert np.array_equal(entry.half1.data, maps["half1"].data)
    write_entry(store, "EMD-1", **other, metadata={"resolution": 5.0}, overwrite=True)
    entry = read(store.location).entry("EMD-1")
    assert entry.resolution == 5.0 and np.array_equal(entry.half1.data, other["half1"].data)


def test_interrupted_write_is_invisible_and_a_rerun_completes_it(tmp_path, monkeypatch):
    store = new_store(tmp_path)
    maps = make_maps(6)
    write_entry(store, "EMD-1", **make_maps(7))
    real_create_array = zarr.Group.create_array

    def dies_after_half1(self, name, **kwargs):
        array = real_create_array(self, name, **kwargs)
        if name == "half1":
            raise KeyboardInterrupt("killed after half1")
        return array

    monkeypatch.setattr(zarr.Group, "create_array", dies_after_half1)
    with pytest.raises(KeyboardInterrupt):
        write_entry(store, "EMD-2", **maps)
    monkeypatch.undo()
    # half1 is on disk, but the entry is not complete and no reader lists it
    assert (tmp_path / "corpus.zarr" / "entries" / "EMD-2" / "half1" / "zarr.json").exists()
    assert not is_complete(store, "EMD-2") and is_complete(store, "EMD-1")
    corpus = read(store.location)
    assert corpus.ids() == ["EMD-1"] and "EMD-2" not in corpus
    with pytest.raises(CorpusError, match="no complete entry 'EMD-2'"):
        corpus.entry("EMD-2")
    assert "EMD-2" not in set(corpus.manifest["id"])
    # a rerun completes it
    write_entry(store, "EMD-2", **maps)
    corpus = read(store.location)
    assert corpus.ids() == ["EMD-1", "EMD-2"]
    for name, vol in maps.items():
        assert np.array_equal(getattr(corpus.entry("EMD-2"), name).data, vol.data)


def test_interrupted_overwrite_hides_the_entry_and_finalize_repairs_the_manifest(
        tmp_path, monkeypatch):
    store = new_store(tmp_path)
    write_entry(store, "EMD-1", **make_maps(1, truth=False))
    write_entry(store, "EMD-2", **make_maps(2, truth=False))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    real_create_group = zarr.Group.create_group

    def killed_at_the_manifest(self, name, **kwargs):
        if self.basename == "manifest":
            raise KeyboardInterrupt("killed")
        return real_create_group(self, name, **kwargs)

    # killed while overwriting EMD-1 (at its first array): the old entry is gone, the new
    # one incomplete
    monkeypatch.setattr(zarr.Group, "create_array", killed)
    with pytest.raises(KeyboardInterrupt):
        write_entry(store, "EMD-1", **make_maps(3, truth=False), overwrite=True)
    monkeypatch.undo()
    # killed between EMD-3's completion mark and its manifest row
    monkeypatch.setattr(zarr.Group, "create_group", killed_at_the_manifest)
    with pytest.raises(KeyboardInterrupt):
        write_entry(store, "EMD-3", **make_maps(4, truth=False))
    monkeypatch.undo()
    assert is_complete(store, "EMD-3") and not is_complete(store, "EMD-1")
    corpus = read(store.location)
    assert corpus.ids() == ["EMD-2", "EMD-3"]
    rows = corpus.manifest.set_index("id")
    assert list(rows.index) == ["EMD-1", "EMD-2"]  # EMD-1's ok row is stale, EMD-3 has none
    finalize(store)
    rows = read(store.location).manifest.set_index("id")
    assert list(rows.index) == ["EMD-1", "EMD-2", "EMD-3"]
    assert list(rows["status"]) == ["failed", "ok", "ok"]
    assert rows.loc["EMD-1", "reason"].startswith("entry data missing")


def test_bad_input_is_refused_and_nothing_is_written(tmp_path):
    store = new_store(tmp_path)
    maps = make_maps(8, truth=False)
    shifted = Volume(maps["half2"].data, VOXEL, (ORIGIN[0] + 2.0, ORIGIN[1], ORIGIN[2]),
                     source="half2.map")
    with pytest.raises(GeometryMismatch, match="entry EMD-1 half2 .*origin"):
        write_entry(store, "EMD-1", **{**maps, "half2": shifted})
    small = Volume(np.zeros((32, 40, 40), np.float32) + 1, VOXEL, ORIGIN)
    with pytest.raises(GeometryMismatch, match="entry EMD-1 mask .*shape"):
        write_entry(store, "EMD-1", **{**maps, "mask": small})
    nan = maps["half2"].data.copy()
    nan[1, 2, 3] = np.nan
    with pytest.raises(NonFiniteMap, match=r"entry EMD-1 half2 .*1 non-finite voxel"):
        write_entry(store, "EMD-1", **{**maps, "half2": maps["half2"].like(nan)})
    with pytest.raises(BadMask, match=r"mask values must lie in \[0, 1\]"):
        write_entry(store, "EMD-1", **{**maps, "mask": maps["mask"].like(
            maps["mask"].data * 2)})
    with pytest.raises(BadMask, match="mask is empty"):
        write_entry(store, "EMD-1", **{**maps, "mask": maps["mask"].like(
            maps["mask"].data * 0.4)})
    with pytest.raises(ConstantMap, match="entry EMD-1 half1 .*constant map"):
        write_entry(store, "EMD-1", **{**maps, "half1": maps["half1"].like(
            np.full((40, 40, 40), 3.0))})
    with pytest.raises(ValueError, match=r"metadata keys \['shape'\]"):
        write_entry(store, "EMD-1", **maps, metadata={"shape": [1, 2, 3]})
    with pytest.raises(ValueError, match="resolution must be a positive"):
        write_entry(store, "EMD-1", **maps, metadata={"resolution": -3})
    with pytest.raises(ValueError, match="source_sha256"):
        write_entry(store, "EMD-1", **maps, metadata={"source_sha256": {"a.map": "xyz"}})
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        write_entry(store, "EMD-1", **maps, metadata={"when": object()})
    with pytest.raises(TypeError, match="half1 must be a cref_bench Volume"):
        write_entry(store, "EMD-1", **{**maps, "half1": maps["half1"].data})
    with pytest.raises(ValueError, match="entry id 'EMD 1'"):
        write_entry(store, "EMD 1", **maps)
    with pytest.raises(ValueError, match="needs a reason"):
        record_rejection(store, "EMD-1", " ")
    corpus = read(store.location)
    assert len(corpus) == 0 and len(corpus.manifest) == 0
    assert list(zarr.open_group(store.location, mode="r")["entries"].group_keys()) == []


def test_create_and_open_store_rules(tmp_path):
    location = tmp_path / "c.zarr"
    store = create_store(location, source="first", patch_size=PATCH)
    write_entry(store, "EMD-1", **make_maps(1, truth=False))
    with pytest.raises(CorpusError, match="something exists here already"):
        create_store(location, source="second")
    assert open_store(location).attrs["source"] == "first"  # "a" opens what is there
    assert is_complete(str(location), "EMD-1")  # a location works as well as a Store
    replaced = open_store(location, mode="w", source="second")
    assert replaced.attrs["source"] == "second" and not replaced.is_complete("EMD-1")
    with pytest.raises(CorpusError, match="no corpus store here"):
        open_store(tmp_path / "absent.zarr", mode="r+")
    with pytest.raises(ValueError, match="needs a source"):
        open_store(tmp_path / "absent.zarr")
    other = tmp_path / "not-a-store"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(CorpusError, match="not a corpus store; refusing to delete"):
        create_store(other, source="x", overwrite=True)
    assert (other / "notes.txt").read_text() == "precious"
    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    with pytest.raises(CorpusError, match="not a cref-bench corpus store"):
        open_store(tmp_path / "plain.zarr")
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        create_store(tmp_path / "z.zarr", source="x", patch_size=0)


def test_memory_url_store_round_trip():
    location = f"memory://cref-bench-test-{uuid.uuid4().hex}/corpus.zarr"
    store = open_store(location, source="in memory", patch_size=PATCH)
    maps = make_maps(9)
    write_entry(store, "EMD-1", **maps, metadata={"resolution": 2.5})
    record_rejection(store, "EMD-2", "no mask")
    digest = finalize(store)
    corpus = open_corpus(location)
    assert corpus.location == location and corpus.content_hash == digest
    entry = corpus.entry("EMD-1")
    for name, vol in maps.items():
        got = getattr(entry, name)
        assert np.array_equal(got.data, vol.data)
        assert got.voxel_size == VOXEL and got.origin == ORIGIN
    assert list(corpus.manifest["status"]) == ["ok", "rejected"]
    assert entry.metadata["array_sha256"] == {
        **{n: sha256_of(v.data) for n, v in maps.items()},
        "patches": hashlib.sha256(entry.patches.astype("<i4").tobytes()).hexdigest()}
    patches = PatchDataset(corpus, "all", progress=False)
    assert len(patches) == len(entry.patches) > 0
    assert patches[0][2].shape == (1, PATCH, PATCH, PATCH)
    # overwrite and removal work through fsspec too
    other = make_maps(10, truth=False)
    write_entry(store, "EMD-1", **other, overwrite=True)
    write_entry(store, "EMD-3", **other)
    record_rejection(store, "EMD-3", "withdrawn")
    corpus = open_corpus(location, warn_stale=False)
    assert corpus.ids() == ["EMD-1"] and corpus.entry("EMD-1").truth is None
    assert np.array_equal(corpus.entry("EMD-1").half1.data, other["half1"].data)
    assert finalize(store) != digest


def test_concurrent_writers_of_different_entries(tmp_path):
    store = pickle.loads(pickle.dumps(new_store(tmp_path)))  # as dask ships it to workers
    ids = [f"EMD-{k}" for k in range(1, 7)]

    def work(index: int) -> dict:
        entry_id = ids[index]
        if index % 3 == 2:
            return record_rejection(store, entry_id, "no mask")
        return write_entry(store, entry_id, **make_maps(index, shape=(32, 32, 32),
                                                        truth=False))

    with ThreadPoolExecutor(max_workers=3) as pool:
        rows = list(pool.map(work, range(len(ids))))
    assert [r["status"] for r in rows] == ["ok", "ok", "rejected"] * 2
    finalize(store)
    corpus = read(store.location)
    assert corpus.ids() == [i for k, i in enumerate(ids) if k % 3 != 2]
    assert list(corpus.manifest["id"]) == ids
    assert list(corpus.manifest["status"]) == ["ok", "ok", "rejected"] * 2
