"""Code that runs inside ops, not in the engine: ``tracking`` (outputs from a job), ``step_runner`` (the
wrapper of a ``%%polyaxon_python`` step) and ``store_sync`` (a run's folder to and from its bucket artifacts store,
beside a local run or as a pod's sidecar).

Stdlib only and import-free here: these modules start in every op's process, locally or in a pod (``store_sync``
alone uses fsspec, through :mod:`polynb.buckets`).
"""
