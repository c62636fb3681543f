"""The architecture language: text and YAML -> syntax tree -> layer graph -> figures -> Keras model.

Owns the grammar (``grammar.lark``, :mod:`parser`, :mod:`syntax`), expansion of repeats, variables
and blocks (:mod:`expand`, :mod:`blocks`, ``builtin_blocks.yaml``, :mod:`spec`, :mod:`limits`), the
layer vocabulary (:mod:`vocab`, :mod:`keras_keywords`), the layer graph and its figures
(:mod:`ir`, :mod:`graph`, :mod:`shapes`, :mod:`analysis`, :mod:`table`, :mod:`plot`), the emitter to
Keras (:mod:`emit`, :mod:`layers`, the model class :mod:`models`), the input/output conventions
of the models it makes (:mod:`conventions`) and the functions ``kblocks`` exports (:mod:`api`).

May import: :mod:`kblocks.common` and itself; never training, search, inspect, zoo or cli (a zoo
name is found by reading the zoo's folder as package data, :func:`api.zoo_file`). Only :mod:`emit`,
:mod:`layers`, :mod:`models` and :mod:`conventions` import Keras, and :mod:`expand` once for a
keyword missing from :mod:`keras_keywords`; the rest runs without it. These rules are import-linter contracts
(``.importlinter``), checked by ``make test``.
"""
