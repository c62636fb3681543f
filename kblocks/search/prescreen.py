"""Zero-cost pre-screening (``--prescreen SCORE:K``): score K candidates per trial, train the best.

Training is what a search pays for; a score computed at initialisation, without training, can
sort out candidates that are unlikely to train well. At every new trial the oracle's own
suggestion and ``K - 1`` more candidates drawn the same way (within the budgets, see
:class:`kblocks.search.oracles.BudgetedOracle`) are built and scored, and only the best-scoring
one becomes the trial. Two scores:

* ``naswot`` -- Mellor, Turner, Storkey and Crowley 2021, "Neural Architecture Search without
  Training" (ICML), section 3: on one batch of N real training images, each image's binary code
  is which units of the ReLU-like layers are on (output > 0); ``K[i, j]`` is the number of units
  where the codes of images i and j agree (``N_A`` minus their Hamming distance) and the score is
  ``log|det K|``. A net whose units do not tell the images apart (all dead, all on) has a
  singular K and the lowest score, minus infinity.
* ``synflow`` -- Tanaka, Kunin, Yamins and Ganguli 2020, "Pruning neural networks without any
  data by iteratively conserving synaptic flow" (NeurIPS), as a whole-network score (Abdelfattah
  et al. 2021, "Zero-Cost Proxies for Lightweight NAS"): every parameter replaced by its absolute
  value, R = the sum of the outputs for an all-ones input, score = sum over parameters of
  ``theta * dR/dtheta``. It needs no data. The gradient comes from Keras itself, backend-agnostic:
  one SGD step with learning rate 1 on R moves each parameter by exactly ``-dR/dtheta``
  (BatchNormalization in inference mode, dropout off, no regulariser losses).

Where each source of candidates comes from: random search and evolution ask their own
``populate_space`` again (random draws; evolution's tournament-and-mutate children); Hyperband's
new candidates and Bayesian optimisation draw the extra ones at random; Hyperband trials that
continue an earlier trial are not screened (their architecture is already chosen); grid search
is refused (it trains every grid point, in order).

Each screened trial writes ``trial_NN/prescreen.json`` in the Keras Tuner project (the score,
every candidate's values, fixed text and score, which was chosen); :func:`load` reads them back.
A resumed search screens a trial that had not started again, with the same seed, so the same
candidates get the same scores.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from kblocks.common.errors import ConfigError

SCORES = ("naswot", "synflow")
FILE = "prescreen.json"  #: per screened trial, in its trial_NN folder
MAX_K = 1000

#: names of activation functions counted as ReLU-like by naswot (output > 0 means "on")
RELU_LIKE = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish",
                       "hard_silu", "hard_swish", "mish", "celu"})


@dataclass(frozen=True)
class Prescreen:
    """``SCORE:K``: which zero-cost score, and how many candidates per trial."""

    score: str
    k: int

    def text(self) -> str:
        return f"{self.score}:{self.k}"


def parse(text, *, what="prescreen") -> Prescreen:
    """``"naswot:8"`` (or a :class:`Prescreen`) -> ``Prescreen("naswot", 8)``; a clear error
    otherwise."""
    if isinstance(text, Prescreen):
        text = text.text()
    hint = f"e.g. naswot:8 (SCORE one of {', '.join(SCORES)}; K a whole number >= 2)"
    score, sep, k = str(text).strip().partition(":")
    score = score.strip().lower()
    if not sep or not score or not k.strip():
        raise ConfigError(f"takes SCORE:K, got {text!r}", what=what, hint=hint)
    if score not in SCORES:
        raise ConfigError(f"unknown zero-cost score {score!r}", what=what, hint=hint)
    try:
        number = int(k.strip())
    except ValueError:
        raise ConfigError(f"K must be a whole number, got {k.strip()!r}", what=what,
                          hint=hint) from None
    if not 2 <= number <= MAX_K:
        raise ConfigError(f"K must be 2..{MAX_K} (K=1 trains the oracle's own suggestion: no "
                          f"pre-screening), got {number}", what=what, hint=hint)
    return Prescreen(score, number)


# -- the scores -------------------------------------------------------------------------------------
def relu_like_layers(model) -> list:
    """The layers of ``model`` whose output is a ReLU-like activation (top level; a layer called
    more than once has no single output and is left out)."""
    import keras

    out = []
    for layer in model.layers:
        kinds = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ELU)
        fn = getattr(layer, "activation", None)
        name = getattr(fn, "__name__", "") if fn is not None else ""
        if isinstance(layer, kinds) or name in RELU_LIKE:
            try:
                layer.output  # noqa: B018 - raises for a layer with several outputs
            except (AttributeError, ValueError):
                continue
            out.append(layer)
    return out


def activation_codes(model, x) -> list:
    """Per ReLU-like layer, the ``(N, units)`` booleans "unit on" for the images ``x``."""
    import keras

    layers = relu_like_layers(model)
    if not layers:
        return []
    probe = keras.Model(_inputs(model), [layer.output for layer in layers])
    outputs = probe(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    n = len(x)
    return [np.asarray(keras.ops.convert_to_numpy(o)).reshape(n, -1) > 0 for o in outputs]


def naswot_kernel(codes) -> np.ndarray:
    """``K[i, j]`` = units where the codes of images i and j agree, summed over the layers."""
    n = len(codes[0]) if codes else 0
    kernel = np.zeros((n, n), dtype=np.float64)
    for c in codes:
        on = c.astype(np.float64)
        kernel += on @ on.T + (1.0 - on) @ (1.0 - on).T
    return kernel


def naswot(model, x) -> float:
    """Mellor et al. 2021's score of ``model`` on the images ``x`` (already as the model takes
    them): ``log|det K|``, minus infinity when K is singular or there is no ReLU-like unit."""
    codes = activation_codes(model, x)
    if not codes:
        return -math.inf
    sign, logdet = np.linalg.slogdet(naswot_kernel(codes))
    return float(logdet) if sign != 0 and math.isfinite(logdet) else -math.inf


def synflow(model) -> float:
    """Tanaka et al. 2020's synaptic flow of ``model`` at its current weights, summed over the
    trainable parameters. Changes ``model``'s weights (absolute values, then one step): pass a
    network built for scoring only."""
    import keras
    from keras import ops

    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # Keras 3: inference mode (moving statistics)
        elif isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    for v in model.weights:
        v.assign(ops.abs(v))
    probe = _SynflowProbe(_inputs(model), model.outputs)
    theta = [np.asarray(ops.convert_to_numpy(v), dtype=np.float64)
             for v in probe.trainable_weights]
    probe.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), run_eagerly=True)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    probe.train_on_batch(np.ones((1,) + shape, dtype="float32"))
    after = [np.asarray(ops.convert_to_numpy(v), dtype=np.float64)
             for v in probe.trainable_weights]
    total = sum(float(np.sum(t * (t - a))) for t, a in zip(theta, after))
    return total if math.isfinite(total) else math.inf


def _inputs(model):
    """The model's input tensor (its list when it has several), as a new Model takes it."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _all_layers(model):
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _probe_class():
    import keras

    class SynflowProbe(keras.Model):
        """The network's layers with R = sum of the outputs as the loss (no regulariser losses)."""

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
            if isinstance(y_pred, (list, tuple)):
                return sum(ops_sum(p) for p in y_pred)
            return ops_sum(y_pred)

    def ops_sum(t):
        return keras.ops.sum(keras.ops.cast(t, "float32"))

    return SynflowProbe


class _LazyProbe:
    """``_SynflowProbe(inputs, outputs)``: the Keras class is made on first use (no import of Keras
    when this module is imported)."""

    cls = None

    def __call__(self, *args, **kwargs):
        if _LazyProbe.cls is None:
            _LazyProbe.cls = _probe_class()
        return _LazyProbe.cls(*args, **kwargs)


_SynflowProbe = _LazyProbe()


# -- scoring candidates of a space ------------------------------------------------------------------
class Scorer:
    """``values -> score`` for the architectures of ``space``: each candidate's network is built
    fresh with the search's seed (so a candidate always gets the same score) and scored on one
    batch of the training images ``x``, normalised as the trials' models normalise them."""

    def __init__(self, space, recipe, x, prescreen: Prescreen, *, seed=0):
        self.space = space
        self.prescreen = prescreen
        self.seed = int(seed)
        self.batch = None
        if prescreen.score == "naswot":
            self.batch = _batch(recipe, x, self.seed)
        self._cache = {}

    def __call__(self, values) -> float:
        import keras

        from kblocks.training import main_output

        key = repr(sorted((k, v) for k, v in values.items() if not str(k).startswith("tuner/")))
        if key in self._cache:
            return self._cache[key]
        keras.utils.set_random_seed(self.seed)
        network = main_output(self.space.build(values))
        try:
            if self.prescreen.score == "naswot":
                score = naswot(network, self.batch)
            else:
                score = synflow(network)
        finally:  # the trial's own release_memory() collects the garbage afterwards
            del network
            keras.backend.clear_session()
        self._cache[key] = score
        return score


def _batch(recipe, x, seed):
    """One batch (``recipe.config.batch_size`` images, drawn with ``seed``) of ``x``, normalised
    by the recipe's normalisation layer."""
    from kblocks.lang.conventions import normalization_layer

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    n = min(len(x), int(recipe.config.batch_size))
    rows = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    kind = recipe.config.normalize
    mean, variance = recipe.mean, recipe.variance
    if kind == "standardize" and mean is None:
        layer = normalization_layer(kind, data=x)
    else:
        layer = normalization_layer(kind if kind in ("standardize", "scale") else "none",
                                    mean=mean, variance=variance)
    import keras

    return np.asarray(keras.ops.convert_to_numpy(layer(x[rows].astype("float32"))))


# -- the oracle mixin -------------------------------------------------------------------------------
class PrescreenOracle:
    """Mixin in front of a kblocks oracle: each new trial is the best of K scored candidates."""

    prescreen: Prescreen
    scorer = None

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") != "RUNNING" or not values or "tuner/trial_id" in values:
            return response
        tuner_keys = {k: v for k, v in values.items() if str(k).startswith("tuner/")}
        candidates = [_own(values)]
        seen = {self._hash(candidates[0])}
        for _ in range(self.prescreen.k - 1):
            other = self._another_candidate(trial_id)
            if other is None:
                break
            other = _own(other)
            key = self._hash(other)
            if key not in seen:
                seen.add(key)
                candidates.append(other)
        scores = [self.scorer(c) for c in candidates]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))  # ties: the first
        self._record_screen(trial_id, candidates, scores, best)
        return {**response, "values": {**candidates[best], **tuner_keys}}

    def _another_candidate(self, trial_id):
        """One more candidate drawn the way this oracle draws (see the module doc)."""
        from keras_tuner.oracles import RandomSearchOracle

        from kblocks.search.evolution import RegularizedEvolutionOracle

        if isinstance(self, (RandomSearchOracle, RegularizedEvolutionOracle)):
            response = super().populate_space(trial_id)
            return response.get("values") if response.get("status") == "RUNNING" else None
        return self._random_values()

    def _record_screen(self, trial_id, candidates, scores, best):
        from kblocks.common import atomic

        rows = []
        for i, (values, score) in enumerate(zip(candidates, scores)):
            try:
                text = self.scorer.space.fixed(values)
            except Exception:  # noqa: BLE001 - a record line never stops a search
                text = ""
            rows.append({"values": values, "text": text, "score": _json_number(score),
                         "chosen": i == best})
        record = {"score": self.prescreen.score, "k": self.prescreen.k, "trial_id": trial_id,
                  "chosen": best, "candidates": rows}
        atomic.write_json(os.path.join(self._get_trial_dir(trial_id), FILE), record)


def _own(values) -> dict:
    return {k: v for k, v in values.items() if not str(k).startswith("tuner/")}


def _json_number(score):
    """A score for JSON: None stands for minus infinity (a singular naswot kernel)."""
    return float(score) if math.isfinite(score) else (None if score < 0 else "inf")


def check_tuner(kind):
    """Refuse pre-screening where it has no meaning: grid search (which trains every point)."""
    if str(kind or "").lower() == "grid":
        raise ConfigError("grid search trains every point of the grid in order; pre-screening "
                          "would skip points", what="prescreen",
                          hint="use the random, evolution, hyperband or bayesian tuner with it")


def attach(oracle, prescreen, scorer):
    """Make ``oracle`` (a kblocks oracle, already constructed) pre-screen with ``scorer``."""
    from keras_tuner.oracles import GridSearchOracle

    prescreen = parse(prescreen)
    if isinstance(oracle, GridSearchOracle):
        check_tuner("grid")
    base = type(oracle)
    oracle.__class__ = type(f"Prescreened{base.__name__}", (PrescreenOracle, base), {})
    oracle.prescreen = prescreen
    oracle.scorer = scorer
    return oracle


def screen(oracle, prescreen, *, space, recipe, data=None, seed=None):
    """Make ``oracle`` pre-screen its candidates of ``space`` (``make_tuner(prescreen=...)``);
    ``data`` (``x`` or ``(x, y)``, the training images) gives naswot its batch."""
    spec = parse(prescreen, what="prescreen")
    x = data[0] if isinstance(data, tuple) else data
    if x is None and spec.score == "naswot":
        raise ConfigError("prescreen=naswot scores on one batch of training images: give data=",
                          what="prescreen", hint="e.g. data=(x_train, y_train)")
    scorer = Scorer(space, recipe, x, spec, seed=recipe.seed if seed is None else seed)
    return attach(oracle, spec, scorer)


def load(project_dir) -> dict:
    """``{trial_id: record}`` of the screened trials of a Keras Tuner project folder (``kt/``)."""
    import json
    from pathlib import Path

    out = {}
    for path in sorted(Path(project_dir).glob(f"trial_*/{FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[str(record.get("trial_id", path.parent.name[len("trial_"):]))] = record
    return out
