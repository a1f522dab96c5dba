"""polynb: Polyaxon-style ML pipelines with events and hooks, native to Jupyter."""

__version__ = "0.1.0"
