"""Code that runs inside ops, not in the engine: ``tracking`` (outputs from a job) and ``step_runner`` (the
wrapper of a ``%%polyaxon_python`` step).

Stdlib only and import-free here: these modules start in every op's process, locally or in a pod.
"""
