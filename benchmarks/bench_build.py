"""Speed of the EMDB build from a local mirror, as a ratio to just reading the entry's files.

The EMDB stand-in (``tests/emdb_server.py``) serves phantom-like entries (a smooth random
field plus noise, gzip'd half-maps, a plain mask, v3.0 headers) on 127.0.0.1.

* Per entry, at 128³ and 256³, from the stand-in over HTTP and from the archive folder as a
  ``file://`` mirror: :func:`~dataset_builder.emdb.build.process_entry` against the time
  :func:`~cref_bench.maps.io.read_map` takes to decompress and read the same three files from
  disk, one after the other, read just before each round (the load of a shared machine
  drifts). Reported: the median over rounds of the ratio of the entry's time to that read
  (target 2) and of each phase's (and the ratio of the medians): fetching (header and
  files), the reading and validating not hidden behind the downloads (asserted: fetch +
  read at most 2) and the store write (checksums, statistics, patch index and the
  compressed zarr write of :func:`dataset_builder.store.write_entry`).
* Chunking, at 128³ and 256³: one entry written into a store with 96³ chunks (the patch
  edge) and one with 64³ chunks; the time to read every patch of its patch index (the three
  windows :class:`baselines.crefdenoiser.patches.PatchDataset` reads) and to write the entry,
  64³ against
  96³ (medians of the same run).
* Scaling: :func:`~dataset_builder.emdb.build.build` of all the 128³ entries on a warm local
  dask cluster of 1 and of 2 single-threaded worker processes: MB/s per worker (of
  decompressed map data) and the speed-up from 1 to 2 workers (reported; it depends on the
  free cores).

Run: ``python -m pytest benchmarks/bench_build.py --benchmark-enable -s``.
"""

from __future__ import annotations

import itertools
import statistics
import time
from contextlib import ExitStack

import numpy as np
import pytest
import zarr
from scipy import ndimage

from benchmarks.timing import median_seconds, report_ratio
from cref_bench.maps.io import read_map
from cref_bench.maps.volume import Volume
from dataset_builder.emdb.build import BuildOptions, build, process_entry
from dataset_builder.store import create_store, open_store, write_entry
from tests.emdb_server import EmdbStandIn, make_entry_files

BOXES = (128, 256)
ENTRIES = {128: 6, 256: 1}  # entries served per box (the scaling test builds the 128³ ones)
ROUNDS = 5


def _entry_maps(seed: int, box: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (box, box, box)
    signal = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 3.0) * 10
    halves = [signal + 0.5 * rng.standard_normal(shape, dtype=np.float32) for _ in range(2)]
    z, y, x = np.ogrid[:box, :box, :box]
    radius = np.sqrt((z - box / 2) ** 2 + (y - box / 2) ** 2 + (x - box / 2) ** 2)
    mask = np.clip((box * 0.4 - radius) / 4 + 0.5, 0, 1).astype(np.float32)
    return halves[0], halves[1], mask


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory):
    """``{box: (stand-in server, entries)}``: a stand-in per box, serving ``ENTRIES[box]``
    entries of ``box``³, made when first asked for."""
    made = {}
    with ExitStack() as servers:

        def mirror(box: int):
            if box not in made:
                root = tmp_path_factory.mktemp(f"archive{box}")
                entries = [make_entry_files(root, f"EMD-{9000 + i}", *_entry_maps(i, box),
                                            voxel=1.1, write_map=False)
                           for i in range(ENTRIES[box])]
                made[box] = (servers.enter_context(EmdbStandIn(root)), entries)
            return made[box]

        yield mirror


@pytest.mark.parametrize("kind", ["http", "file"])
@pytest.mark.parametrize("box", BOXES)
def test_entry_processing_vs_reading_its_files(benchmark, mirrors, tmp_path, box, kind):
    server, entries = mirrors(box)
    entry = entries[0]
    files = (*entry.half_maps, *entry.masks)
    base = server.mirror_url if kind == "http" else server.root.resolve().as_uri()
    options = BuildOptions(mirrors=(base,), download_dir=str(tmp_path / "downloads"))
    stores = (open_store(tmp_path / f"store{i}.zarr", source="bench") for i in itertools.count())
    outcomes, reads = [], []

    def read_files():
        for path in files:
            read_map(path)

    def setup():  # the baseline, read just before each round (the machine's load drifts)
        reads.append(median_seconds(read_files, 1))
        return (entry.emdb_id, next(stores), options), {}

    def process(emdb_id, store, opts):
        outcomes.append(process_entry(emdb_id, store, opts))
        assert outcomes[-1].status == "ok"

    benchmark.pedantic(process, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    reads, timed = reads[1:], outcomes[1:]                 # the warm-up round left out
    baseline = statistics.median(reads)
    mb = sum(read_map(p).data.nbytes for p in files) / 1e6
    phase = {name: statistics.median(o.phases[name] / r for o, r in zip(timed, reads))
             for name in ("fetch", "read", "write")}
    ours = statistics.median((o.phases["fetch"] + o.phases["read"]) / r
                             for o, r in zip(timed, reads))
    paired = statistics.median(o.seconds / r for o, r in zip(timed, reads))
    total = report_ratio(benchmark, f"process_entry {box}³ ({kind} mirror)", "read_map_x3",
                         baseline)
    print(f"entry of {mb:.0f} MB of maps: reading alone {mb / baseline:.0f} MB/s; processed "
          f"{mb / benchmark.stats.stats.median:.0f} MB/s; median ratios of each round to the "
          f"read just before it: total {paired:.2f} (target 2), fetch {phase['fetch']:.2f}, "
          f"read + validate {phase['read']:.2f}, checksums + store write "
          f"{phase['write']:.2f}; ratio of the medians {total:.2f}")
    benchmark.extra_info.update(paired_ratio=paired, fetch_read_ratio=ours,
                                write_ratio=phase["write"])
    # The part this builder controls most directly: fetching, reading and validating at
    # most 2x reading (the total is reported against its target of 2 above).
    assert ours <= 2.0


@pytest.mark.parametrize("box", BOXES)
def test_patch_reads_with_96_and_64_chunks(mirrors, tmp_path, box):
    """Reading every patch of an entry's patch index, and writing the entry, with 96³ chunks
    (a grid patch is one chunk) and with 64³ chunks (no padding at 128³ and 256³)."""
    _, entries = mirrors(box)
    maps = {name: Volume(read_map(path).data, (1.1,) * 3, (0.0,) * 3)
            for name, path in zip(("half1", "half2", "mask"),
                                  (*entries[0].half_maps, *entries[0].masks))}
    seconds, stored = {}, {}
    for chunk in (96, 64):
        stores = (create_store(tmp_path / f"c{chunk}_{i}.zarr", source="bench", chunk=chunk)
                  for i in itertools.count())
        seconds[f"write {chunk}"] = median_seconds(
            lambda stores=stores: write_entry(next(stores), "EMD-1", **maps), ROUNDS)
        stored[chunk] = zarr.open_group(str(tmp_path / f"c{chunk}_0.zarr"), mode="r")
    patches = stored[96]["entries/EMD-1/patches"][...]
    assert len(patches) > 0

    def read_patches(root):
        arrays = [root[f"entries/EMD-1/{name}"] for name in ("half1", "half2", "mask")]
        for z, y, x in patches:
            for array in arrays:
                array[z:z + 96, y:y + 96, x:x + 96]

    for _ in range(2):  # interleaved, the better median of two kept per chunk size
        for chunk in (96, 64):
            got = median_seconds(lambda chunk=chunk: read_patches(stored[chunk]), ROUNDS)
            key = f"read {chunk}"
            seconds[key] = min(seconds.get(key, got), got)
    read_ratio = seconds["read 64"] / seconds["read 96"]
    write_ratio = seconds["write 64"] / seconds["write 96"]
    print(f"\n{box}³ entry, {len(patches)} patches of 96³ x 3 arrays: reading them all "
          f"{seconds['read 96']:.3f} s with 96³ chunks, {seconds['read 64']:.3f} s with 64³ "
          f"(ratio 64/96 {read_ratio:.2f}; per patch {seconds['read 96'] / len(patches) * 1e3:.1f}"
          f" vs {seconds['read 64'] / len(patches) * 1e3:.1f} ms); write_entry "
          f"{seconds['write 96']:.3f} s vs {seconds['write 64']:.3f} s (ratio 64/96 "
          f"{write_ratio:.2f})")
    for array in ("half1", "mask"):
        assert np.array_equal(stored[64][f"entries/EMD-1/{array}"][...], maps[array].data)


def _timed_build(server, entries, tmp_path, workers: int) -> float:
    """Seconds to build all entries on a warm local cluster of ``workers`` processes."""
    from dask.distributed import LocalCluster

    options = BuildOptions(mirrors=(server.mirror_url,),
                           download_dir=str(tmp_path / f"dl{workers}"))
    ids = [e.emdb_id for e in entries]
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        build(ids[:1], str(tmp_path / f"warm{workers}.zarr"), options=options, scheduler=address,
              progress=False)      # workers import everything once
        start = time.perf_counter()
        report = build(ids, str(tmp_path / f"w{workers}.zarr"), options=options, scheduler=address,
                       progress=False)
        seconds = time.perf_counter() - start
    assert report.counts() == {"ok": len(ids)}
    return seconds


def test_build_scaling_one_to_two_workers(mirrors, tmp_path):
    server, entries = mirrors(128)
    mb = len(entries) * 3 * 128 ** 3 * 4 / 1e6
    one = _timed_build(server, entries, tmp_path, 1)
    two = _timed_build(server, entries, tmp_path, 2)
    print(f"\nbuild of {len(entries)} entries ({mb:.0f} MB of maps): 1 worker {one:.2f} s "
          f"({mb / one:.0f} MB/s per worker); 2 workers {two:.2f} s "
          f"({mb / two / 2:.0f} MB/s per worker); speed-up {one / two:.2f}")
    # a second worker must not make it much slower, even on a busy machine
    assert two < one * 1.5
