"""The fixed train / valid / test splits of the corpus, decided from an entry's id alone.

Rule (version :data:`SPLIT_RULE_VERSION` = 1):

* **Bucket.** ``bucket(id) = int.from_bytes(sha256(b"cref-bench/split/v1/" + id)[:8], "big")
  % 10000``, with the id encoded as UTF-8 exactly as given (no case folding). Buckets
  ``0..999`` are *test* (10 %), ``1000..1499`` *valid* (5 %), ``1500..9999`` *train* (85 %).
  An entry's split depends on nothing but its id, so adding or removing other entries never
  moves it, and two stores holding the same id agree on its split.
* **test-50.** The paper evaluates on 50 maps. ``test-50`` is a subset of at most 50 *test*
  entries, ordered by the *rank key* ``sha256(b"cref-bench/test-50/v1/" + id)`` (a second,
  independent hash). It is chosen by :func:`choose_test50` from the test ids and the
  previously recorded ``test-50`` list (empty for a fresh store): every previous member still
  in the corpus stays, and the free places (up to 50) go to the other test entries with the
  smallest rank keys. So it is deterministic (a fresh build of a set of ids always gets the 50
  smallest rank keys; fewer than 50 test entries -> all of them), and stable as the corpus
  grows: it only gains members until it holds 50, and a member leaves only when its entry
  leaves the corpus. The list is recorded in the store at finalisation, so results name the
  exact maps they were computed on.

Changing anything above (salts, fractions, the byte count, the size of test-50) changes the
splits and must bump :data:`SPLIT_RULE_VERSION`; ``tests/test_splits.py`` pins the rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLIT_RULE_VERSION = 1
"""Version of the rule below; stores record it and readers refuse other versions."""

SPLITS = ("train", "valid", "test")
"""The three disjoint splits."""

SELECTIONS = ("train", "valid", "test", "test-50", "all")
"""Every name a reader accepts: the three splits, the ``test-50`` subset and ``all``."""

BUCKETS = 10_000
TEST_BUCKETS = range(0, 1000)
VALID_BUCKETS = range(1000, 1500)
TEST50_SIZE = 50

_SPLIT_SALT = b"cref-bench/split/v1/"
_RANK_SALT = b"cref-bench/test-50/v1/"


def _check_id(entry_id: str) -> bytes:
    if not isinstance(entry_id, str) or not entry_id:
        raise ValueError(f"an entry id must be a non-empty str, got {entry_id!r}")
    return entry_id.encode("utf-8")


def bucket(entry_id: str) -> int:
    """The split bucket of an entry, in ``0 .. BUCKETS - 1``.

    Args:
        entry_id: the entry's id (e.g. ``"EMD-11638"``), taken exactly as given.

    Returns:
        The first 8 bytes of ``sha256(salt + id)``, big-endian, modulo :data:`BUCKETS`.

    Raises:
        ValueError: the id is not a non-empty string.
    """
    digest = hashlib.sha256(_SPLIT_SALT + _check_id(entry_id)).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def split_of(entry_id: str) -> str:
    """The split (``"train"``, ``"valid"`` or ``"test"``) of an entry.

    Args:
        entry_id: the entry's id.

    Returns:
        The split name, decided by :func:`bucket` alone.

    Raises:
        ValueError: the id is not a non-empty string.
    """
    b = bucket(entry_id)
    if b in TEST_BUCKETS:
        return "test"
    if b in VALID_BUCKETS:
        return "valid"
    return "train"


def rank_key(entry_id: str) -> bytes:
    """The key that orders test entries for ``test-50`` (smaller comes first).

    Args:
        entry_id: the entry's id.

    Returns:
        ``sha256(rank salt + id)`` as 32 bytes (compared lexicographically).

    Raises:
        ValueError: the id is not a non-empty string.
    """
    return hashlib.sha256(_RANK_SALT + _check_id(entry_id)).digest()


def choose_test50(entry_ids: Iterable[str], size: int | None = None,
                  previous: Iterable[str] = ()) -> list[str]:
    """The ``test-50`` subset of a set of ids, in rank order (see the module docstring).

    (Not named ``test50...`` so that pytest never collects it from a test that imports it.)

    Args:
        entry_ids: ids of the corpus (any split; non-test ids are ignored, duplicates too).
        size: how many to keep at most (default :data:`TEST50_SIZE`, 50, as in the paper).
        previous: the list recorded before (e.g. at the last finalisation); its members that
            are still test ids of the corpus are kept (the first ``size`` of them).

    Returns:
        Up to ``size`` test ids: the kept previous members plus the other test ids with the
        smallest :func:`rank_key`, all sorted by rank key.

    Raises:
        ValueError: an id is not a non-empty string.
    """
    size = TEST50_SIZE if size is None else size
    tests = {i for i in entry_ids if split_of(i) == "test"}
    kept = list(dict.fromkeys(i for i in previous if i in tests))[:size]
    others = sorted(tests.difference(kept), key=rank_key)
    return sorted(kept + others[:size - len(kept)], key=rank_key)


def select(entry_ids: Iterable[str], selection: str,
           previous_test50: Iterable[str] = ()) -> list[str]:
    """The ids of a selection (``train``, ``valid``, ``test``, ``test-50`` or ``all``).

    Args:
        entry_ids: ids of the corpus.
        selection: one of :data:`SELECTIONS`.
        previous_test50: the recorded ``test-50`` list, for :func:`choose_test50`.

    Returns:
        The selected ids, sorted by id (``test-50`` in rank order, see :func:`choose_test50`).

    Raises:
        ValueError: an unknown selection name, or an id that is not a non-empty string.
    """
    ids = set(entry_ids)
    if selection == "all":
        for i in ids:
            _check_id(i)
        return sorted(ids)
    if selection == "test-50":
        return choose_test50(ids, previous=previous_test50)
    if selection in SPLITS:
        return sorted(i for i in ids if split_of(i) == selection)
    raise ValueError(f"unknown split {selection!r}; expected one of {', '.join(SELECTIONS)}")
