"""``make demo``: the seed pipeline run for real on the local executor (``app``), with the probes that check
TensorBoard serves while the experiment trains and that the webhook hook reported (``probes``)."""
