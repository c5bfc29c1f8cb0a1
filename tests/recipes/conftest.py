"""The recipe tests share the CLI tests' fixtures: one parser per session."""

from tests.cli.conftest import resolver  # noqa: F401  (pytest fixture)
