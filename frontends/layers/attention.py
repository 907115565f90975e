"""``MultiHeadAttention``: scaled dot-product self-attention over a sequence, the layer a
transformer block is made of (with ``LayerNorm``, ``Dense`` on 3-d input and ``Add``), and
``PositionEmbedding``, the learned positions attention needs to tell them apart."""

from __future__ import annotations

import math

import numpy as np

import symgraph as sg
from frontends import initializers
from frontends.config import flag, integer
from frontends.layers.base import Layer, fixed_features, weight_dtype
from frontends.layers.core import MaskStream, dropout_rate


class MultiHeadAttention(Layer):
    """Self-attention of a sequence (batch, length, features) -> (batch, length, features),
    as ``torch.nn.MultiheadAttention(features, num_heads)`` called with ``(x, x, x)`` (and
    Keras's ``MultiHeadAttention(num_heads, key_dim)`` called on ``(x, x)``).

    Each head projects the sequence to queries, keys and values of ``key_dim`` (default
    ``features // num_heads``) and mixes the values by ``softmax(q k^T / sqrt(key_dim))``
    over the positions; the heads' outputs are concatenated and projected back to
    ``features``. ``causal=True`` lets each position attend to itself and earlier ones only
    (a decoder: torch's ``attn_mask`` of ``is_causal``). ``dropout`` drops attention
    weights in training, as torch's ``dropout``. The projections are one (rows, features)
    gemm each over every position of the batch; the scores and the mixing are batched
    products over (batch x heads).
    """

    config_args = ("num_heads", "key_dim", "causal", "dropout", "use_bias", "init")
    has_mode = True

    def __init__(self, num_heads: int, key_dim: int | None = None, causal: bool = False,
                 dropout: float = 0.0, use_bias: bool = True, init="glorot_uniform",
                 name: str | None = None):
        super().__init__(name)
        self.num_heads = integer("MultiHeadAttention", "num_heads", num_heads)
        self.key_dim = None if key_dim is None else integer("MultiHeadAttention", "key_dim",
                                                            key_dim)
        self.causal = flag("MultiHeadAttention", "causal", causal)
        self.dropout = dropout_rate("MultiHeadAttention", "dropout", dropout)
        self.use_bias = flag("MultiHeadAttention", "use_bias", use_bias)
        self.init = initializers.checked("MultiHeadAttention", "init", init)
        self.masks = MaskStream(self)

    def build(self, x):
        if x.ndim != 3 or not isinstance(x.shape[1], int):
            raise ValueError(f"layer {self.name}: MultiHeadAttention takes (batch, length, "
                             f"features) with a fixed length, got shape {x.shape}")
        d, dt = fixed_features(self, x), weight_dtype(x)
        if self.key_dim is None and d % self.num_heads:
            raise ValueError(f"layer {self.name}: {d} features do not split into "
                             f"{self.num_heads} heads; give key_dim")
        k = self.key_dim or d // self.num_heads
        inner = self.num_heads * k
        # torch's in_proj: one Xavier-uniform draw over (3 * inner, d), i.e. these fans
        for p in "qkv":
            setattr(self, f"W{p}", self.add_weight(f"W{p}", (d, inner), self.init, dt,
                                                   regularizable=True))
        self.Wo = self.add_weight("Wo", (inner, d), self.init, dt, regularizable=True)
        self.biases = [self.add_weight(f"b{p}", (n,), "zeros", dt)
                       for p, n in zip("qkvo", (inner, inner, inner, d))] \
            if self.use_bias else None
        if self.dropout:
            self.masks.build()

    @property
    def state(self):
        return self.masks.state

    def initialize(self, rng):
        super().initialize(rng)
        if self.masks.counter is not None:
            self.masks.initialize(rng)

    def call(self, x, training):
        length, d = x.shape[1], x.shape[2]
        heads = self.num_heads
        k = self.Wq.shape[1] // heads
        rows = sg.reshape(x, (-1, d))
        bq, bk, bv, bo = self.biases or (None,) * 4

        def project(W, b):  # -> (batch, heads, length, k)
            z = rows @ W if b is None else rows @ W + b
            return sg.reshape(z, (-1, length, heads, k)).transpose(0, 2, 1, 3)

        q, key, v = project(self.Wq, bq), project(self.Wk, bk), project(self.Wv, bv)
        scale = np.asarray(1.0 / math.sqrt(k), x.dtype)  # (a float64 scalar would promote)
        scores = (q * scale) @ key.transpose(0, 1, 3, 2)
        if self.causal:
            later = np.triu(np.ones((length, length), bool), 1)
            scores = sg.where(sg.constant(later), np.asarray(-np.inf, x.dtype), scores)
        weights = sg.nn.softmax(scores, axis=-1)
        if training and self.dropout:
            weights = weights * self.masks.mask(weights, self.dropout)
        mixed = (weights @ v).transpose(0, 2, 1, 3)  # (batch, length, heads, k)
        out = sg.reshape(mixed, (-1, heads * k)) @ self.Wo
        if bo is not None:
            out = out + bo
        return sg.reshape(out, (-1, length, d))


class PositionEmbedding(Layer):
    """Adds a learned vector per position to a sequence (batch, length, features): a
    (length, features) ``table`` broadcast over the batch, as BERT's and GPT-2's learned
    positions (Keras-NLP's ``PositionEmbedding``, whose output one adds). Attention by
    itself treats its input as a set: without this (or a causal mask) a permutation of the
    positions permutes the output and nothing else."""

    config_args = ("init",)

    def __init__(self, init="uniform", name: str | None = None):
        super().__init__(name)
        self.init = initializers.checked("PositionEmbedding", "init", init)

    def build(self, x):
        if x.dtype.kind != "f":
            raise TypeError(f"layer {self.name}: PositionEmbedding adds to float vectors, got "
                            f"{x.dtype} (ids? put an Embedding first)")
        if x.ndim != 3 or not all(isinstance(d, int) for d in x.shape[1:]):
            raise ValueError(f"layer {self.name}: PositionEmbedding takes (batch, length, "
                             f"features) with a fixed length and features, got shape {x.shape}")
        self.table = self.add_weight("table", tuple(x.shape[1:]), self.init, x.dtype.name)

    def call(self, x, training):
        return x + self.table
