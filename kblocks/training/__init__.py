"""Training: configuration, recipe, data, augmentation, feed, callbacks, run folder, transfer,
distribution.

    from kblocks.training import train, TrainConfig
    result = train("[[CONV(32)-RELU]*2-POOL]*1-FC(10)", TrainConfig(data="digits", epochs=5),
                   out="runs/digits")

Owns :mod:`config` (``TrainConfig`` and its checks), :mod:`trainer` (``train`` as named phases,
``evaluate``, the wrapped model), :mod:`data` (sources, splits; per-pixel masks too),
:mod:`segmentation` (IoU and pixel accuracy of per-pixel predictions, in NumPy),
:mod:`augment`, :mod:`feed`, :mod:`callbacks`, :mod:`schedules`, :mod:`runfolder` (the files of a
run), :mod:`transfer`, :mod:`distribute` and :mod:`interrupts`.

May import: :mod:`kblocks.lang`, :mod:`kblocks.common`, :mod:`kblocks.zoo`. Never search, inspect
or cli. The names below are its public API; search and the command line use only these.
"""
from kblocks.training.config import (MONITORS, NORMALIZE, PRECISIONS, RESUME_OPTIONS, TrainConfig,
                                     resolve_precision, validate_config)
from kblocks.training.trainer import (TrainingDiverged, TrainingInterrupted, TrainResult,
                                      channel_stats, compile_for_training, declared_input_shape,
                                      evaluate, format_metrics, format_value, load_model,
                                      main_output, make_loss, make_pixel_loss, one_hot,
                                      per_pixel_output, prepare_data, set_seed, train, wrap)

__all__ = ["MONITORS", "NORMALIZE", "PRECISIONS", "RESUME_OPTIONS", "TrainConfig",
           "TrainingDiverged", "TrainingInterrupted", "TrainResult", "channel_stats",
           "compile_for_training", "declared_input_shape", "evaluate", "format_metrics",
           "format_value", "load_model", "main_output", "make_loss", "make_pixel_loss", "one_hot",
           "per_pixel_output", "prepare_data",
           "resolve_precision", "set_seed", "train", "validate_config", "wrap"]
