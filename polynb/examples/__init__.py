"""Example programs the example pipelines run (``python -m polynb.examples.train``)."""
