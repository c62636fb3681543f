"""The architecture language: text and YAML -> syntax tree -> layer graph -> figures -> Keras model.

Owns, stage by stage: the grammar and syntax tree (``grammar.lark``, :mod:`parser`, :mod:`syntax`);
architecture files and blocks (:mod:`spec`, :mod:`yamlfile` the safe YAML loader, :mod:`blocks`,
``builtin_blocks.yaml``); expansion of repeats, variables, blocks and placeholders (:mod:`expand`,
:mod:`limits`) into the program of :mod:`ir` and its canonical text; the layer vocabulary
(:mod:`vocab` the tokens, :mod:`kinds` one record per kind of layer — shape, parameters, cost,
receptive-field window, Keras factory, colour — and :mod:`keras_keywords`); the layer graph and its
figures (:mod:`graph`, :mod:`shapes`, :mod:`analysis`, :mod:`table`, :mod:`plot`), the emitter to
Keras (:mod:`emit`, :mod:`layers`, the model class :mod:`models`, the layer that holds a whole
network for users' own models :mod:`compose`), the input/output conventions
of the models it makes (:mod:`conventions`) and the functions ``kblocks`` exports (:mod:`api`).

May import: :mod:`kblocks.common` and itself; never training, search, inspect, zoo or cli (a zoo
name is found by reading the zoo's folder as package data, :func:`api.zoo_file`). Only :mod:`emit`,
:mod:`layers`, :mod:`models`, :mod:`compose` and :mod:`conventions` import Keras, and :mod:`expand` once for a
keyword missing from :mod:`keras_keywords`; the rest runs without it. These rules are import-linter contracts
(``.importlinter``), checked by ``make test``.
"""
