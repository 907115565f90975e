"""Layers of the model API; ``get(name)`` finds a layer class by name (spec files use it)."""

from frontends.layers.activations import (
    ELU,
    GELU,
    RBF,
    Abs,
    Activation,
    Cos,
    HardTanh,
    LeakyReLU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from frontends.layers.attention import (
    MultiHeadAttention,
    PositionEmbedding,
    TransformerEncoder,
)
from frontends.layers.base import Layer
from frontends.layers.conv import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from frontends.layers.conv1d import AvgPool1D, Conv1D, GlobalAvgPool1D, MaxPool1D
from frontends.layers.core import (
    Add,
    Concatenate,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Permute,
    Reshape,
)
from frontends.layers.normalization import BatchNorm, LayerNorm, Normalization
from frontends.layers.recurrent import GRU, LSTM, Bidirectional, Masking, SimpleRNN

LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (
        Dense, Dropout, BatchNorm, LayerNorm, Normalization, Embedding, Flatten, Reshape, Permute,
        Add,
        Concatenate, Activation, ReLU, LeakyReLU, PReLU, ELU, Tanh, Sigmoid, Softplus, HardTanh,
        Abs, Cos, GELU, SiLU, Softmax, Maxout, RBF, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D,
        Conv1D, MaxPool1D, AvgPool1D, GlobalAvgPool1D, SimpleRNN, LSTM, GRU, Bidirectional, Masking,
        MultiHeadAttention, PositionEmbedding, TransformerEncoder)
}


def get(name: str) -> type[Layer]:
    """The layer class called ``name`` (``"Dense"``)."""
    try:
        return LAYERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer type {name!r}; valid: {', '.join(sorted(LAYERS))}") \
            from None


__all__ = ["LAYERS", "get", *LAYERS]
