"""Custom Keras layers that kblocks emits. Each is registered serialisable under the package
``kblocks`` so saved models load with ``safe_mode=True`` and no Lambda layers."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kblocks")
class LRN(keras.layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3).

    ``b_c = a_c / (k + alpha * sum_{c' in window(c)} a_{c'}^2) ** beta`` where the window holds the
    ``size`` channels centred on ``c`` (clipped at the ends), exactly as in the AlexNet paper
    (``alpha`` is not divided by ``size``, unlike PyTorch's ``LocalResponseNorm``).

    Args:
        size: number of adjacent channels summed over (odd; 5 in AlexNet).
        alpha: scale of the sum (1e-4).
        beta: exponent (0.75).
        k: additive constant (2).

    Input shape: any tensor with channels last. Output shape: the same.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"LRN size must be a positive integer, received size={size}")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs):
        squared = ops.square(inputs)
        half = self.size // 2
        rank = len(inputs.shape)
        pad = [[0, 0]] * (rank - 1) + [[half, self.size - 1 - half]]
        padded = ops.pad(squared, pad)
        channels = inputs.shape[-1]
        total = padded[..., 0:channels]
        for shift in range(1, self.size):
            total = total + padded[..., shift:shift + channels]
        return inputs / ops.power(self.k + self.alpha * total, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta,
                "k": self.k}
