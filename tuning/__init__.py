"""Ready search spaces for ``kblocks search`` (installed as the package ``kblocks.tuning``)."""
