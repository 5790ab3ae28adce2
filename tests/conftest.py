"""Shared pytest fixtures: the EMDB stand-in server (``emdb_server``) and the runner's small
corpus (``corpus_path``)."""

from tests.emdb_server import emdb_server  # noqa: F401 -- re-exported as a fixture
from tests.runner_corpus import corpus_path  # noqa: F401 -- re-exported as a fixture
