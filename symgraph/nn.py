"""``sg.nn``: activations, softmax family, losses and dropout (numpy/Keras names)."""

from symgraph.ops import (
    binary_cross_entropy,
    cross_entropy,
    dropout,
    hard_tanh,
    leaky_relu,
    log_softmax,
    logsumexp,
    mse,
    one_hot,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)

__all__ = ["binary_cross_entropy", "cross_entropy", "dropout", "hard_tanh", "leaky_relu",
           "log_softmax", "logsumexp", "mse", "one_hot", "relu", "sigmoid", "softmax",
           "softplus", "tanh"]
