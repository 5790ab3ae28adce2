"""The tamper-evident corpus: every array is checked against the sha256 recorded when the
store was written; a changed store is refused, naming the entry and the array."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import zarr

from cref_bench.corpus.reader import open_corpus, verify_store
from cref_bench.errors import CorpusError
from cref_bench.maps.volume import Volume
from tests.runner_corpus import phantom_maps

MODEL = "data_x\n_cell.length_a 10\n"


@pytest.fixture
def store_path(tmp_path):
    from dataset_builder.store import create_store, finalize, write_entry

    path = tmp_path / "corpus.zarr"
    store = create_store(path, source="digest tests", patch_size=8)
    rng = np.random.default_rng(3)
    for entry_id in ("PH-0001", "PH-0002"):
        write_entry(store, entry_id, **phantom_maps(rng, 16, with_truth=True),
                    models={"fit": MODEL})
    finalize(store)
    return path


def _tamper(path, entry_id, name, change):
    array = zarr.open_group(str(path), mode="r+")[f"entries/{entry_id}/{name}"]
    data = array[...]
    array[...] = change(data)


def test_every_array_has_its_digest_recorded_at_write(store_path):
    entry = open_corpus(store_path).entry("PH-0001")
    digests = entry.metadata["array_sha256"]
    assert set(digests) == {"half1", "half2", "mask", "truth", "patches", "models/fit"}
    stored = zarr.open_group(str(store_path), mode="r")["entries/PH-0001"]
    assert digests["patches"] == hashlib.sha256(
        stored["patches"][...].astype("<i4").tobytes()).hexdigest()
    assert digests["truth"] == hashlib.sha256(
        stored["truth"][...].astype("<f4").tobytes()).hexdigest()
    assert verify_store(open_corpus(store_path)) == []


def test_a_truth_changed_after_writing_is_refused_naming_entry_and_array(store_path):
    _tamper(store_path, "PH-0002", "truth", lambda d: d + np.float32(0.001))
    corpus = open_corpus(store_path, warn_stale=False)
    assert corpus.entry("PH-0001").truth is not None  # the other entry is as written
    entry = corpus.entry("PH-0002")
    entry.half1  # noqa: B018 (an unchanged array of the entry still reads)
    with pytest.raises(CorpusError, match=r"entry PH-0002: array 'truth' was changed"):
        entry.truth  # noqa: B018
    faults = verify_store(open_corpus(store_path, warn_stale=False))
    assert len(faults) == 1 and "PH-0002: array 'truth'" in faults[0]


@pytest.mark.parametrize("name, read", [
    ("patches", lambda e: e.patches), ("models/fit", lambda e: e.model("fit")),
    ("mask", lambda e: e.mask)])
def test_the_patch_index_models_and_masks_are_checked_too(store_path, name, read):
    _tamper(store_path, "PH-0001", name, lambda d: d[::-1].copy() if name != "mask"
            else np.clip(d + np.float32(0.01), 0, 1))
    with pytest.raises(CorpusError, match=f"array '{name}' was changed"):
        read(open_corpus(store_path, warn_stale=False).entry("PH-0001"))


def test_reading_all_maps_at_once_checks_each(store_path):
    maps = open_corpus(store_path).entry("PH-0001").maps()
    assert set(maps) == {"half1", "half2", "mask", "truth", "reference"}
    assert maps["reference"] is None and maps["truth"].shape == (16, 16, 16)
    _tamper(store_path, "PH-0001", "half2", lambda d: d * 2)
    with pytest.raises(CorpusError, match="array 'half2' was changed"):
        open_corpus(store_path, warn_stale=False).entry("PH-0001").maps()


def test_changed_attributes_are_found_by_the_content_hash(store_path):
    group = zarr.open_group(str(store_path), mode="r+")["entries/PH-0001"]
    group.attrs["resolution"] = 1.0
    faults = verify_store(open_corpus(store_path, warn_stale=False))
    assert faults and "content hash recorded by finalize" in faults[0]


def test_the_reader_opens_the_store_read_only(store_path):
    array = open_corpus(store_path).entry("PH-0001").array("truth")
    with pytest.raises(Exception, match="read.only|read-only"):
        array[0, 0, 0] = 5.0


def test_reading_without_verification_is_possible_and_says_so(store_path):
    _tamper(store_path, "PH-0001", "half1", lambda d: d * 2)
    entry = open_corpus(store_path, warn_stale=False, verify=False).entry("PH-0001")
    assert isinstance(entry.half1, Volume)


def test_check_corpus_reports_a_changed_store(store_path, capsys):
    from cref_bench.cli import main

    assert main(["check", "--corpus", str(store_path)]) == 0
    _tamper(store_path, "PH-0002", "half2", lambda d: -d)
    assert main(["check", "--corpus", str(store_path)]) == 1
    out = capsys.readouterr().out
    assert "PH-0002: array 'half2' was changed" in out
