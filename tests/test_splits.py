"""Tests of the split rule (cref_bench.corpus.splits): pinned hash rule, proportions, stability as
the corpus grows, and the test-50 subset."""

import hashlib
import random

import pytest

from cref_bench.corpus import splits

N_IDS = 20_000


def synthetic_ids(n: int, start: int = 1) -> list[str]:
    """EMDB-like ids ``EMD-<number>``."""
    return [f"EMD-{k}" for k in range(start, start + n)]


@pytest.fixture(scope="module")
def many_ids() -> list[str]:
    return synthetic_ids(N_IDS)


def test_rule_is_pinned_to_sha256_of_salted_id():
    # The documented rule, recomputed here independently: changing it needs a version bump.
    for entry_id in ("EMD-11638", "EMD-1", "phantom-0007", "Émd-ünïcode"):
        digest = hashlib.sha256(b"cref-bench/split/v1/" + entry_id.encode("utf-8")).digest()
        expected_bucket = int.from_bytes(digest[:8], "big") % 10_000
        assert splits.bucket(entry_id) == expected_bucket
        expected = ("test" if expected_bucket < 1000 else
                    "valid" if expected_bucket < 1500 else "train")
        assert splits.split_of(entry_id) == expected
        assert splits.rank_key(entry_id) == hashlib.sha256(
            b"cref-bench/test-50/v1/" + entry_id.encode("utf-8")).digest()
    assert splits.SPLIT_RULE_VERSION == 1


def test_ids_are_case_sensitive_and_taken_as_given():
    # Across 200 ids, lower-casing changes the bucket of (almost) all of them.
    ids = synthetic_ids(200)
    assert sum(splits.bucket(i) != splits.bucket(i.lower()) for i in ids) > 190


def test_proportions_within_tolerance(many_ids):
    counts = {s: 0 for s in splits.SPLITS}
    for entry_id in many_ids:
        counts[splits.split_of(entry_id)] += 1
    # binomial standard deviations at n = 20000: 0.21 % (test), 0.15 % (valid), 0.25 % (train)
    assert counts["test"] / N_IDS == pytest.approx(0.10, abs=0.01)
    assert counts["valid"] / N_IDS == pytest.approx(0.05, abs=0.008)
    assert counts["train"] / N_IDS == pytest.approx(0.85, abs=0.012)
    buckets = [splits.bucket(i) for i in many_ids]
    assert min(buckets) >= 0 and max(buckets) < splits.BUCKETS


def test_select_partitions_the_ids(many_ids):
    chosen = {s: splits.select(many_ids, s) for s in splits.SPLITS}
    union = set().union(*chosen.values())
    assert union == set(many_ids)
    assert sum(len(v) for v in chosen.values()) == len(many_ids)  # disjoint
    for name, ids in chosen.items():
        assert ids == sorted(ids)
        assert all(splits.split_of(i) == name for i in ids)
    assert splits.select(many_ids, "all") == sorted(many_ids)


def test_adding_entries_moves_no_existing_entry(many_ids):
    small = many_ids[:3000]
    before = {s: set(splits.select(small, s)) for s in splits.SPLITS}
    grown = small + synthetic_ids(5000, start=900_000)
    after = {s: set(splits.select(grown, s)) for s in splits.SPLITS}
    for name in splits.SPLITS:
        assert before[name] <= after[name]
        assert after[name] & set(small) == before[name]
    # and removing entries neither: a random half keeps its splits
    half = random.Random(1).sample(small, 1500)
    for name in splits.SPLITS:
        assert set(splits.select(half, name)) == before[name] & set(half)


def test_test50_is_the_50_smallest_rank_keys_of_test(many_ids):
    chosen = splits.choose_test50(many_ids)
    tests = splits.select(many_ids, "test")
    assert len(chosen) == 50 and len(set(chosen)) == 50
    assert set(chosen) <= set(tests)
    assert chosen == sorted(tests, key=splits.rank_key)[:50]
    shuffled = list(many_ids) + many_ids[:100]  # order and duplicates do not matter
    random.Random(3).shuffle(shuffled)
    assert splits.choose_test50(shuffled) == chosen
    assert splits.select(many_ids, "test-50") == chosen


def test_test50_with_fewer_than_50_test_entries_is_all_of_them(many_ids):
    ids = many_ids[:300]
    tests = splits.select(ids, "test")
    assert 10 < len(tests) < 50  # about 30 expected
    assert sorted(splits.choose_test50(ids)) == tests
    assert splits.choose_test50([]) == []
    assert splits.choose_test50(splits.select(ids, "train")) == []


def test_test50_only_grows_as_entries_are_added(many_ids):
    recorded: list[str] = []
    history = []
    corpus: list[str] = []
    for batch in range(0, 8000, 250):  # the corpus grows by 250 ids at a time
        corpus += many_ids[batch:batch + 250]
        new = splits.choose_test50(corpus, previous=recorded)
        assert set(recorded) <= set(new)  # no member ever leaves
        assert set(new) <= set(splits.select(corpus, "test"))
        assert new == sorted(new, key=splits.rank_key)
        assert len(new) == min(50, len(splits.select(corpus, "test")))
        assert splits.choose_test50(corpus, previous=new) == new  # a fixed point
        recorded = new
        history.append(new)
    sizes = [len(h) for h in history]
    assert sizes[0] < 50 and sizes[-1] == 50 and sizes == sorted(sizes)
    full = [h for h in history if len(h) == 50]
    assert len(full) > 20 and all(h == full[0] for h in full)  # frozen once full
    # Without history the 50 smallest rank keys of the final corpus would be chosen
    # (about 800 test ids by then), so the stable list differs from the fresh one.
    assert recorded != splits.choose_test50(corpus)


def test_test50_refills_when_a_member_leaves(many_ids):
    corpus = many_ids[:4000]
    recorded = splits.choose_test50(corpus)
    gone = recorded[7]
    smaller = [i for i in corpus if i != gone]
    refilled = splits.choose_test50(smaller, previous=recorded)
    assert gone not in refilled and len(refilled) == 50
    assert set(recorded) - {gone} <= set(refilled)
    newcomer, = set(refilled) - set(recorded)
    outside = set(splits.select(smaller, "test")) - set(recorded)
    assert newcomer == min(outside, key=splits.rank_key)
    # previous members that are not test ids of the corpus are ignored
    assert splits.choose_test50(corpus, previous=["EMD-not-there"] + splits.select(
        corpus, "train")[:5]) == recorded


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown split 'tests'"):
        splits.select(["EMD-1"], "tests")
    for bad in ("", None, 12):
        with pytest.raises(ValueError, match="non-empty str"):
            splits.split_of(bad)
    with pytest.raises(ValueError, match="non-empty str"):
        splits.select(["EMD-1", ""], "all")
