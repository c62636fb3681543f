"""The kblocks zoo: one YAML architecture file per network (installed as ``kblocks.architectures``)."""
