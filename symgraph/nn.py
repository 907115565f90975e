"""``sg.nn``: activations, softmax family, losses, dropout, convolution and pooling
(numpy/Keras/torch names)."""

from symgraph.ops import (  # noqa: F401  (re-exported: sg.nn's names)
    activations,
    conv,
    dropout,
    hard_tanh,
    leaky_relu,
    log_softmax,
    logsumexp,
    losses,
    one_hot,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from symgraph.ops.activations import *  # noqa: F403
from symgraph.ops.conv import *  # noqa: F403
from symgraph.ops.losses import *  # noqa: F403

__all__ = sorted(["dropout", "hard_tanh", "leaky_relu", "log_softmax", "logsumexp", "one_hot",
                  "relu", "sigmoid", "softmax", "softplus", "tanh",
                  *activations.__all__, *conv.__all__, *losses.__all__])
