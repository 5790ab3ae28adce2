"""Shared pytest fixtures: the EMDB stand-in server (``emdb_server``)."""

from tests.emdb_server import emdb_server  # noqa: F401 -- re-exported as a fixture
