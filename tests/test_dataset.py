"""Tests of the corpus reader (cref_bench.corpus.reader): the Corpus / Entry API, splits and
test-50 as the store records them, refusals, the cube rotations, and PatchDataset
(standardise-then-mask known answer, deterministic augmentation, DataLoader, pickling)."""

import itertools
import pickle

import numpy as np
import pytest
import torch
import zarr

from baselines.crefdenoiser.patches import PatchDataset, cube_rotation
from cref_bench.corpus import splits
from cref_bench.corpus.reader import Entry, open_corpus
from cref_bench.errors import CorpusError
from cref_bench.maps.volume import Volume
from dataset_builder.store import create_store, finalize, write_entry
from tests.test_store import ORIGIN, PATCH, VOXEL, make_maps


def ids_of_split(split: str, count: int, start: int = 5000) -> list[str]:
    found = (f"EMD-{k}" for k in itertools.count(start))
    return list(itertools.islice((i for i in found if splits.split_of(i) == split), count))


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory):
    """A finalised store: 2 train, 1 valid, 2 test entries (40^3 with truth, 32^3 without)."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.zarr"
    store = create_store(path, source="unit-test phantoms", patch_size=PATCH)
    chosen = ids_of_split("train", 2) + ids_of_split("valid", 1) + ids_of_split("test", 2)
    for seed, entry_id in enumerate(chosen):
        shape = (40, 40, 40) if seed % 2 == 0 else (32, 32, 32)
        write_entry(store, entry_id, **make_maps(seed, shape=shape, truth=seed % 2 == 0),
                    metadata={"resolution": 2.0 + seed})
    finalize(store)
    return path


@pytest.fixture(scope="module")
def corpus(corpus_path):
    return open_corpus(corpus_path)


def test_ids_by_split(corpus):
    everything = corpus.ids()
    assert everything == corpus.ids("all") == sorted(everything) and len(everything) == 5
    assert len(corpus) == 5
    for name, count in (("train", 2), ("valid", 1), ("test", 2)):
        chosen = corpus.ids(name)
        assert len(chosen) == count
        assert all(splits.split_of(i) == name == corpus.entry(i).split for i in chosen)
    assert corpus.ids("test-50") == sorted(corpus.ids("test"), key=splits.rank_key)
    assert [e.id for e in corpus.entries("train")] == corpus.ids("train")
    assert [e.id for e in corpus] == everything
    assert everything[0] in corpus and "EMD-0" not in corpus
    with pytest.raises(CorpusError, match="unknown split 'tests'"):
        corpus.ids("tests")
    with pytest.raises(CorpusError, match="no complete entry 'EMD-0'"):
        corpus.entry("EMD-0")


def test_entry_gives_volumes_and_metadata(corpus):
    train_id = corpus.ids("train")[0]
    entry = corpus.entry(train_id)
    assert isinstance(entry, Entry) and entry.id == train_id
    assert entry.shape == (40, 40, 40) and entry.voxel_size == VOXEL and entry.origin == ORIGIN
    expected = make_maps(0)
    for name in ("half1", "half2", "mask", "truth"):
        vol = getattr(entry, name)
        assert isinstance(vol, Volume) and vol.voxel_size == VOXEL and vol.origin == ORIGIN
        assert np.array_equal(vol.data, expected[name].data)
    assert entry.half1 is entry.half1  # read once, then kept
    assert entry.resolution == 2.0 and entry.metadata["resolution"] == 2.0
    assert np.array_equal(entry.array("half2")[3:5, :, 7], expected["half2"].data[3:5, :, 7])
    with pytest.raises(CorpusError, match="has no array 'halfmap'"):
        entry.array("halfmap")
    with pytest.raises(CorpusError, match="has no model '1abc'"):
        entry.model("1abc")
    no_truth = corpus.entry(corpus.ids("train")[1])
    assert no_truth.truth is None and no_truth.shape == (32, 32, 32)
    assert repr(no_truth) == f"Entry('{no_truth.id}', shape=(32, 32, 32), split='train')"


def test_provenance_fields(corpus, corpus_path):
    root = zarr.open_group(corpus_path, mode="r").attrs
    assert corpus.content_hash == root["content_hash"] == corpus.current_hash()
    assert corpus.format_version == 1 and corpus.split_rule_version == 1
    assert corpus.source == "unit-test phantoms" and corpus.patch_size == PATCH
    assert corpus.location == str(corpus_path)
    assert len(corpus.manifest) == 5 and set(corpus.manifest["status"]) == {"ok"}


def test_refusals(tmp_path, corpus_path):
    with pytest.raises(CorpusError, match="no corpus store here"):
        open_corpus(tmp_path / "absent.zarr")
    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    with pytest.raises(CorpusError, match="not a cref-bench corpus store"):
        open_corpus(tmp_path / "plain.zarr")
    zarr.create_array(tmp_path / "array.zarr", shape=(2,), dtype="f4")
    with pytest.raises(CorpusError, match="zarr array, not a corpus store"):
        open_corpus(tmp_path / "array.zarr")
    store = create_store(tmp_path / "future.zarr", source="x")
    zarr.open_group(store.location, mode="r+").attrs["format_version"] = 99
    with pytest.raises(CorpusError, match="store format version 99"):
        open_corpus(store.location)
    assert open_corpus(f"file://{corpus_path}").location == str(corpus_path)


def test_test50_keeps_recorded_members_as_the_corpus_grows(tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "TEST50_SIZE", 2)  # a "test-2" shows the rule on 4 entries
    tests = sorted(ids_of_split("test", 4), key=splits.rank_key)
    late_smaller, early_larger = tests[:2], tests[2:]  # the later ones rank first
    store = create_store(tmp_path / "c.zarr", source="x", patch_size=PATCH)
    maps = make_maps(0, shape=(32, 32, 32), truth=False)
    for entry_id in early_larger:
        write_entry(store, entry_id, **maps)
    finalize(store)
    assert open_corpus(store.location).ids("test-50") == early_larger
    for entry_id in late_smaller:
        write_entry(store, entry_id, **maps)
    with pytest.warns(UserWarning, match="changed since"):
        grown = open_corpus(store.location)
    assert grown.ids("test-50") == early_larger  # before finalize
    finalize(store)
    assert open_corpus(store.location).ids("test-50") == early_larger  # and after
    assert splits.choose_test50(tests) == late_smaller  # what a fresh build would choose
    fresh = create_store(tmp_path / "fresh.zarr", source="x", patch_size=PATCH)
    for entry_id in tests:
        write_entry(fresh, entry_id, **maps)
    finalize(fresh)
    assert open_corpus(fresh.location).ids("test-50") == late_smaller


def proper_rotations(array: np.ndarray) -> list[np.ndarray]:
    """The 24 proper rotations as signed axis permutations with determinant +1."""
    out = []
    for perm in itertools.permutations(range(3)):
        parity = np.linalg.det(np.eye(3)[list(perm)])
        for flips in itertools.product((False, True), repeat=3):
            if parity * (-1) ** sum(flips) > 0:
                axes = tuple(a for a, f in enumerate(flips) if f)
                out.append(np.flip(np.transpose(array, perm), axis=axes))
    return out


def test_cube_rotation_gives_the_24_proper_rotations():
    cube = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    ours = {cube_rotation(cube, f, t).tobytes() for f in range(6) for t in range(4)}
    expected = {r.tobytes() for r in proper_rotations(cube)}
    assert len(expected) == 24 and ours == expected
    assert np.array_equal(cube_rotation(cube, 0, 0), cube)
    with pytest.raises(ValueError, match="face must be 0..5"):
        cube_rotation(cube, 6, 0)


def test_patch_items_are_standardised_then_masked(corpus):
    dataset = PatchDataset(corpus, "all", progress=False)
    assert len(dataset) == sum(len(e.patches) for e in corpus) > 0
    assert dataset.entry_ids == [e.id for e in corpus if len(e.patches)]
    where = [(e.id, tuple(origin)) for e in corpus for origin in e.patches]  # items in order
    for index in range(0, len(dataset), 3):
        entry_id, (z, y, x) = where[index]
        entry = corpus.entry(entry_id)
        window = (slice(z, z + PATCH), slice(y, y + PATCH), slice(x, x + PATCH))
        mask = entry.mask.data
        item = dataset[index]
        assert [t.shape for t in item] == [(1, PATCH, PATCH, PATCH)] * 3
        assert all(t.dtype == torch.float32 for t in item)
        for tensor, half in zip(item[:2], (entry.half1.data, entry.half2.data)):
            whole = half.astype(np.float64)  # whole-box mean 0 / std 1, then the mask
            expected = ((whole - whole.mean()) / whole.std() * mask)[window]
            np.testing.assert_allclose(tensor[0].numpy(), expected, rtol=1e-5, atol=1e-5)
        assert np.array_equal(item[2][0].numpy(), mask[window])
    assert dataset.rotation(0) == (0, 0)
    with pytest.raises(IndexError, match="out of range"):
        dataset[len(dataset)]


def test_patch_dataset_split_selects_entries(corpus):
    for name in ("train", "valid", "test", "test-50"):
        dataset = PatchDataset(corpus, name, progress=False)
        assert set(dataset.entry_ids) <= set(corpus.ids(name))
        assert len(dataset) == sum(len(corpus.entry(i).patches) for i in corpus.ids(name))


def test_augmentation_is_deterministic_and_shared_by_the_three_arrays(corpus):
    plain = PatchDataset(corpus, "all", progress=False)
    first = PatchDataset(corpus, "all", augment=True, seed=5, progress=False)
    again = PatchDataset(corpus, "all", augment=True, seed=5, progress=False)
    other = PatchDataset(corpus, "all", augment=True, seed=6, progress=False)
    count = len(plain)
    rotations = [first.rotation(i) for i in range(count)]
    assert rotations == [again.rotation(i) for i in range(count)]
    assert rotations != [other.rotation(i) for i in range(count)]
    assert len(set(rotations)) > 8  # about 15 of the 24 expected among 24 items
    rotated_somewhere = False
    for index in range(count):
        face, turns = rotations[index]
        ours, theirs = first[index], again[index]
        for a, b, unrotated in zip(ours, theirs, plain[index]):
            assert torch.equal(a, b)
            assert np.array_equal(a[0].numpy(), cube_rotation(unrotated[0].numpy(), face, turns))
        rotated_somewhere |= not torch.equal(ours[0], plain[index][0])
    assert rotated_somewhere
    halves = PatchDataset(corpus, "all", augment=True, seed=5, progress=False,
                          with_mask=False)
    for index in range(count):  # the trainer's items: the same halves, no mask
        item = halves[index]
        assert len(item) == 2 and all(torch.equal(a, b) for a, b in zip(item, first[index]))
    first.set_epoch(1)
    assert [first.rotation(i) for i in range(count)] != rotations
    first.set_epoch(0)
    assert [first.rotation(i) for i in range(count)] == rotations


def test_dataloader_and_pickling(corpus_path):
    dataset = PatchDataset(corpus_path, "all", augment=True, seed=2, progress=False)
    fresh = pickle.dumps(dataset)
    expected = [dataset[i] for i in range(len(dataset))]  # opens zarr in this process
    assert pickle.dumps(dataset) == fresh  # the open zarr handles are not pickled
    clone = pickle.loads(fresh)
    assert len(clone) == len(dataset)
    for index in (0, len(dataset) - 1):
        assert all(torch.equal(a, b) for a, b in zip(clone[index], expected[index]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False, num_workers=0)
    batches = list(loader)
    assert len(batches) == -(-len(dataset) // 4)
    half1, half2, mask = batches[0]
    assert half1.shape == (4, 1, PATCH, PATCH, PATCH) and mask.dtype == torch.float32
    assert torch.equal(half2, torch.stack([item[1] for item in expected[:4]]))
    assert sum(b[0].shape[0] for b in batches) == len(dataset)
    background = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                             prefetch_factor=2)  # as the trainer on a GPU
    for theirs, ours in zip(background, batches, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(theirs, ours, strict=True))
