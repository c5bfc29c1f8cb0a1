"""The recipe tests share the CLI tests' fixtures: one parser per session, one thread."""

from tests.cli.conftest import _one_thread, resolver  # noqa: F401  (pytest fixtures)
