"""The published corpus versions: the corpora whose results may be published.

``cref-bench check`` accepts a results folder as fit to publish only when its corpus is a
published one: its content hash is in :data:`PUBLISHED`, or the checker is given the corpus
store (``--corpus``) or the expected hash (``--expect-hash``).

The table is empty: no corpus has been released yet. It does not hold the demo corpus on
purpose: the phantoms of ``cref-bench synth`` / ``cref-bench demo`` are deterministic on one
machine, but their maps pass through FFTs whose last bits depend on the CPU and the library
builds, and the content hash covers every bit of every map, so a pinned demo hash would
refuse honest demo results made elsewhere. The demo is a tutorial, not a benchmark.

To release a corpus (a maintainer's steps):

1. build it (``cref-bench build --out corpus.zarr ...``) and let it finalise; its hash is
   the root attribute ``content_hash`` (``cref_bench.corpus.reader.open_corpus(path).content_hash``,
   also printed by ``cref-bench synth``);
2. publish the store where users can fetch it;
3. add one :class:`PublishedCorpus` row below (name, hash, the split results are published
   on, where to get it) and release cref-bench; ``tests/test_check.py`` checks every row's
   form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
"""A corpus content hash: sha256, lower-case hex."""


@dataclass(frozen=True)
class PublishedCorpus:
    """One released corpus version.

    Attributes:
        name: its name and version, e.g. ``"cref-bench EMDB 2026.1"``.
        content_hash: its content hash (:func:`cref_bench.corpus.layout.content_hash`).
        split: the split results are published on (``test`` or ``test-50``).
        location: where to get it (a URL).
    """

    name: str
    content_hash: str
    split: str
    location: str


PUBLISHED: tuple[PublishedCorpus, ...] = ()
"""Every released corpus version, oldest first (none yet; see the module docstring)."""


def published_corpus(content_hash: str | None) -> PublishedCorpus | None:
    """The published corpus of a content hash.

    Args:
        content_hash: a corpus content hash (``None`` matches nothing).

    Returns:
        Its :class:`PublishedCorpus`, or ``None`` when no released corpus has that hash.
    """
    return next((c for c in PUBLISHED if c.content_hash == content_hash), None)
