"""The corpus: its read-only reader, the store's layout and content hash, splits, releases.

Modules: :mod:`~cref_bench.corpus.reader` (``open_corpus``, :class:`Corpus`, :class:`Entry`),
:mod:`~cref_bench.corpus.layout` (what the store's writer and reader share),
:mod:`~cref_bench.corpus.splits` (the fixed train / valid / test rule),
:mod:`~cref_bench.corpus.releases` (the published corpus versions).
"""

from cref_bench._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "open_corpus": "reader", "Corpus": "reader", "Entry": "reader",
    "MapRole": "layout", "content_hash": "layout",
    "split_of": "splits",
    "PublishedCorpus": "releases", "published_corpus": "releases",
})
