"""The one error family (cref_bench.errors): its branches, its messages, and that every
error class of every package belongs to it."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import baselines
import cref_bench
import dataset_builder
import leaderboard
from baselines.crefdenoiser.errors import CheckpointError
from cref_bench import errors
from dataset_builder.emdb.download import DownloadError, NotFoundError, SizeMismatchError
from dataset_builder.emdb.header import HeaderError
from dataset_builder.emdb.listing import ListingError

BAD_INPUT = (errors.MapError, errors.MapNotFound, errors.CorruptGzip, errors.TruncatedMap,
             errors.NonFiniteMap, errors.ConstantMap, errors.BadMask, errors.GeometryMismatch,
             errors.ModelError, errors.CorpusError, errors.ResultsError, errors.MethodError,
             HeaderError, CheckpointError)
ENVIRONMENT = (DownloadError, NotFoundError, SizeMismatchError, ListingError)

NOT_ERRORS = {"dataset_builder.emdb.validate.Rejection",    # a verdict on an entry, recorded
              "dataset_builder.emdb.download._Transient",   # control flow between attempts
              "dataset_builder.emdb.download._Final",
              "dataset_builder.emdb.build._Excluded",   # an entry outside the selection
              "cref_bench.run.isolation.ChannelError"}  # a bad reply: the entry fails, kind output


def test_the_branches_and_their_exit_statuses():
    for kind in BAD_INPUT:
        assert issubclass(kind, errors.InputError) and issubclass(kind, ValueError)
        assert not issubclass(kind, errors.UnavailableError)
        assert kind.exit_status == 2
    for kind in ENVIRONMENT:
        assert issubclass(kind, errors.UnavailableError)
        assert not issubclass(kind, errors.InputError)
        assert kind.exit_status == 2
    assert issubclass(errors.WorkFailed, errors.CrefBenchError)
    assert errors.WorkFailed.exit_status == 1
    # the kinds of map fault are told apart by type, never by the words of the message
    faults = BAD_INPUT[1:8]
    assert all(issubclass(kind, errors.MapError) for kind in faults)
    assert len({kind for kind in faults}) == len(faults)
    assert not issubclass(HeaderError, errors.MapError)
    assert not issubclass(CheckpointError, errors.MapError)
    assert not issubclass(errors.ModelError, errors.MapError)


def test_messages_name_the_place_and_the_fault():
    located = errors.CorpusError("s3://bucket/corpus.zarr", "no corpus store here")
    assert str(located) == "s3://bucket/corpus.zarr: no corpus store here"
    assert located.source == located.location == "s3://bucket/corpus.zarr"
    assert located.fault == "no corpus store here"
    plain = errors.InputError("give at least one method")
    assert str(plain) == plain.fault == "give at least one method" and plain.source is None
    assert str(NotFoundError("https://x/y.map", "HTTP 404 Not Found")) == \
        "https://x/y.map: HTTP 404 Not Found"
    for error in (located, plain, CheckpointError("w.pt", "truncated")):  # as dask ships them
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert (copy.source, copy.fault) == (error.source, error.fault)


def _modules(package):
    yield package
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        yield importlib.import_module(info.name)


def test_every_error_class_of_every_package_is_in_the_family():
    found = {}
    for package in (cref_bench, dataset_builder, baselines, leaderboard):
        for module in _modules(package):
            for name, kind in inspect.getmembers(module, inspect.isclass):
                if (kind.__module__ == module.__name__ and issubclass(kind, BaseException)
                        and not issubclass(kind, Warning)):
                    found[f"{module.__name__}.{name}"] = kind
    assert {name for name, kind in found.items()
            if not issubclass(kind, errors.CrefBenchError)} == NOT_ERRORS
    assert set(BAD_INPUT + ENVIRONMENT) <= set(found.values())

