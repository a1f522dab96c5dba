"""The local executor: every op a process tree on this machine, supervised by a shim (``shim``) that records
each transition in the run folder (its names: ``layout``), so an engine that restarts re-attaches without loss.

Import-free: ``shim`` runs in a bare interpreter (``-I -S``) per op and must start fast; import
``polynb.executors.local.executor`` for :class:`LocalExecutor`.
"""
