"""Small pieces every package shares: the error types (:mod:`errors`) and safe saving (:mod:`saving`).

May import: nothing of kblocks outside this package. Keras only inside functions that save or load.
"""
