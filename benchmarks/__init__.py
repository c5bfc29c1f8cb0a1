"""The overhead benchmark (``python benchmarks/overhead.py``, see ``benchmarks/README.md``).

A package so that its pure parts (:mod:`benchmarks.report`: the estimators and the tables) are
importable by name, e.g. by the tests; the scripts themselves run from their files.
"""
