"""The sweep tests share the CLI tests' fixtures: one parser per session, the tiny recipe."""

from tests.cli.conftest import resolver, tiny_recipe  # noqa: F401  (pytest fixtures)
