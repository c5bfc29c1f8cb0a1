"""The claims a report decides, one module each, and the registry that names them.

Every module's docstring states its decision rule; :data:`registry.CLAIMS` carries the papers'
numbers. Evaluators read :class:`~shiftkit.report.cohort.Cohort` data only (no Lightning).
"""
