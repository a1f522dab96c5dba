"""The notebook face of polynb: magics, the kernel-side scheduler, the run widget and the ``polynb`` comm.

Everything that imports IPython, ipywidgets or Jupyter lives in this package; the core never imports it.
This ``__init__`` stays import-free, because ``python -m polynb.runtime.step_runner`` (the wrapper of a
``%%polyaxon_python`` step) runs in every step's process and must start fast.
"""
