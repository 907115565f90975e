"""Transformer layers: ``MultiHeadAttention``, scaled dot-product self-attention over a
sequence, the layer a transformer block is made of (with ``LayerNorm``, ``Dense`` on 3-d
input and ``Add``); ``PositionEmbedding``, the learned positions attention needs to tell
them apart; ``TransformerEncoder``, a whole encoder block as one layer (for ``Sequential``
models and spec files, which have no skip connections).

Padding: on an input carrying a padding mask (``Embedding(mask_zero=True)``) attention
leaves the padded keys out, as torch's ``key_padding_mask`` (``src_key_padding_mask``):
their scores are -inf before the softmax, with ``causal`` too. A query left with no key at
all (an example of padding only, or with ``causal`` a position before any data) gets zero
weights, as torch's ``scaled_dot_product_attention`` (what ``TransformerEncoderLayer`` and
``MultiheadAttention(need_weights=False)`` run) rather than the NaN of a softmax over
nothing, which would spread through the gradient to every weight. Padded positions are
still computed (their outputs are not zeros, as torch's); the mask passes on, for a
masked pooling or recurrent layer to leave them out."""

from __future__ import annotations

import math

import numpy as np

import symgraph as sg
from frontends import initializers
from frontends.config import flag, integer, number
from frontends.layers.activations import get_activation
from frontends.layers.base import Layer, fixed_features, weight_dtype
from frontends.layers.core import MaskStream, dropout_rate


class _Dropping(Layer):
    """A layer with ``dropout``: its masks come from a :class:`MaskStream` built (with its
    counter, the layer's state) only when the rate is above 0."""

    has_mode = True
    dropout = 0.0
    unit_axis = -1  # (batch, length, features)
    masking = "keep"
    uses_mask = True  # (the keys' padding mask)

    @property
    def state(self):
        return self.masks.state

    def initialize(self, rng):
        super().initialize(rng)
        if self.masks.counter is not None:
            self.masks.initialize(rng)


class MultiHeadAttention(_Dropping):
    """Self-attention of a sequence (batch, length, features) -> (batch, length, features),
    as ``torch.nn.MultiheadAttention(features, num_heads)`` called with ``(x, x, x)`` (and
    Keras's ``MultiHeadAttention(num_heads, key_dim)`` called on ``(x, x)``).

    Each head projects the sequence to queries, keys and values of ``key_dim`` (default
    ``features // num_heads``) and mixes the values by ``softmax(q k^T / sqrt(key_dim))``
    over the positions; the heads' outputs are concatenated and projected back to
    ``features``. ``causal=True`` lets each position attend to itself and earlier ones only
    (a decoder: torch's ``attn_mask`` of ``is_causal``). On a masked input
    (``Embedding(mask_zero=True)``) no query attends to a padded key, as torch's
    ``key_padding_mask`` (see the module's notes). ``dropout`` drops attention
    weights in training, as torch's ``dropout``. The projections are one (rows, features)
    gemm each over every position of the batch; the scores and the mixing are batched
    products over (batch x heads).
    """

    config_args = ("num_heads", "key_dim", "causal", "dropout", "use_bias", "init")

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
        d = _sequence_features(self, x, self.key_dim)
        _add_attention_weights(self, d, self.key_dim or d // self.num_heads, weight_dtype(x))
        if self.dropout:
            self.masks.build()

    def call(self, x, training, mask=None):
        drop = (lambda w: w * self.masks.mask(w, self.dropout)) if training and self.dropout \
            else None
        return _self_attention(self, x, self.causal, drop, mask)


def _sequence_features(layer: Layer, x: sg.Variable, key_dim: int | None) -> int:
    """The features of ``x`` (batch, length, features) for ``layer``'s heads, or an error."""
    if x.ndim != 3 or not isinstance(x.shape[1], int):
        raise ValueError(f"layer {layer.name}: {layer.kind} takes (batch, length, features) "
                         f"with a fixed length, got shape {x.shape}")
    d = fixed_features(layer, x)
    if key_dim is None and d % layer.num_heads:
        raise ValueError(f"layer {layer.name}: {d} features do not split into "
                         f"{layer.num_heads} heads" + ("; give key_dim" if layer.kind ==
                                                       "MultiHeadAttention" else ""))
    return d


def _add_attention_weights(layer: Layer, d: int, k: int, dt: str) -> None:
    """``layer``'s projections for ``layer.num_heads`` heads of ``k`` on ``d`` features:
    ``Wq``, ``Wk``, ``Wv`` (d, heads * k), ``Wo`` (heads * k, d) and, with ``use_bias``,
    ``biases`` bq, bk, bv, bo (else None)."""
    inner = layer.num_heads * k
    # torch's in_proj: one Xavier-uniform draw over (3 * inner, d), i.e. these fans
    for p in "qkv":
        setattr(layer, f"W{p}", layer.add_weight(f"W{p}", (d, inner), layer.init, dt,
                                                 fan_in=d, fan_out=3 * inner,
                                                 regularizable=True))
    layer.Wo = layer.add_weight("Wo", (inner, d), layer.init, dt, regularizable=True)
    layer.biases = [layer.add_weight(f"b{p}", (n,), "zeros", dt)
                    for p, n in zip("qkvo", (inner, inner, inner, d))] \
        if layer.use_bias else None


def _self_attention(layer: Layer, x: sg.Variable, causal: bool, drop,
                    keep: sg.Variable | None = None) -> sg.Variable:
    """Multi-head self-attention of ``x`` (batch, length, d) with ``layer``'s projections
    (:func:`_add_attention_weights`); ``drop``: None, or what to do to the attention weights
    in training (dropout); ``keep``: None, or the (batch, length) padding mask (True at
    data), whose padded keys no query attends to."""
    length, d = x.shape[1], x.shape[2]
    heads = layer.num_heads
    k = layer.Wq.shape[1] // heads
    rows = sg.reshape(x, (-1, d))
    bq, bk, bv, bo = layer.biases or (None,) * 4

    def project(W, b, scale=None):  # -> (batch, heads, length, k)
        z = rows @ W if b is None else rows @ W + b
        if scale is not None:  # (here, the queries' heads stay a view the products read)
            z = z * scale
        return sg.reshape(z, (-1, length, heads, k)).transpose(0, 2, 1, 3)

    scale = np.asarray(1.0 / math.sqrt(k), x.dtype)  # (a float64 scalar would promote)
    q = project(layer.Wq, bq, scale)
    key, v = project(layer.Wk, bk), project(layer.Wv, bv)
    scores = q @ key.transpose(0, 1, 3, 2)
    later = np.triu(np.ones((length, length), bool), 1)
    live = None  # (with a mask) the queries that have a key to attend to
    if keep is not None:
        if tuple(keep.shape[1:]) != (length,) or keep.ndim != 2:
            raise ValueError(f"layer {layer.name}: the padding mask of input {x.shape} has "
                             f"shape {keep.shape}, not (batch, {length})")
        allowed = sg.expand_dims(keep, (1, 2))  # (batch, 1, 1, keys)
        if causal:
            allowed = sg.logical_and(allowed, sg.constant(~later))  # (batch, 1, queries, keys)
        live = sg.any(allowed, axis=-1, keepdims=True)
        # a query with no key keeps its scores (finite, no NaN) and gets zero weights below
        scores = sg.where(sg.logical_or(allowed, sg.logical_not(live)), scores,
                          np.asarray(-np.inf, x.dtype))
    elif causal:
        scores = sg.where(sg.constant(later), np.asarray(-np.inf, x.dtype), scores)
    weights = sg.nn.softmax(scores, axis=-1)
    if live is not None:
        weights = sg.where(live, weights, 0.0)
    if drop is not None:
        weights = drop(weights)
    mixed = (weights @ v).transpose(0, 2, 1, 3)  # (batch, length, heads, k)
    out = sg.reshape(mixed, (-1, heads * k)) @ layer.Wo
    if bo is not None:
        out = out + bo
    return sg.reshape(out, (-1, length, d))


class TransformerEncoder(_Dropping):
    """One encoder block on (batch, length, features), as torch's
    ``nn.TransformerEncoderLayer(features, num_heads, feedforward, dropout, activation,
    batch_first=True, norm_first=...)`` (and Keras-NLP's ``TransformerEncoder``): multi-head
    self-attention, then a two-layer feed-forward net of ``feedforward`` hidden units, each
    with a residual connection and LayerNorm -- after it (``norm_first=False``, "Attention Is
    All You Need") or before it (``norm_first=True``, GPT-2's, steadier for deep stacks).
    ``dropout`` applies where torch's does: to the attention weights, to the attention's and
    the feed-forward net's outputs and to the hidden units. One layer, so a ``Sequential``
    model and a spec file can stack blocks; the same computation as
    ``MultiHeadAttention``, ``Add``, ``LayerNorm`` and two ``Dense`` in a functional model.
    A padding mask on the input is its attention's ``src_key_padding_mask`` and passes on.
    """

    config_args = ("num_heads", "feedforward", "activation", "dropout", "causal",
                   "norm_first", "eps", "init")
    activates_output = False  # (the activation is the hidden units': Diagnostics)

    def __init__(self, num_heads: int, feedforward: int, activation="relu",
                 dropout: float = 0.0, causal: bool = False, norm_first: bool = False,
                 eps: float = 1e-5, init="glorot_uniform", name: str | None = None):
        super().__init__(name)
        self.num_heads = integer("TransformerEncoder", "num_heads", num_heads)
        self.feedforward = integer("TransformerEncoder", "feedforward", feedforward)
        self.fn = get_activation(activation, "TransformerEncoder")
        self.activation = activation
        self.dropout = dropout_rate("TransformerEncoder", "dropout", dropout)
        self.causal = flag("TransformerEncoder", "causal", causal)
        self.norm_first = flag("TransformerEncoder", "norm_first", norm_first)
        self.eps = number("TransformerEncoder", "eps", eps, lo_open=True)
        self.init = initializers.checked("TransformerEncoder", "init", init)
        self.use_bias = True
        self.masks = MaskStream(self)

    def build(self, x):
        d = _sequence_features(self, x, None)
        dt = weight_dtype(x)
        _add_attention_weights(self, d, d // self.num_heads, dt)
        self.W1 = self.add_weight("W1", (d, self.feedforward), self.init, dt,
                                  regularizable=True)
        self.b1 = self.add_weight("b1", (self.feedforward,), "zeros", dt)
        self.W2 = self.add_weight("W2", (self.feedforward, d), self.init, dt,
                                  regularizable=True)
        self.b2 = self.add_weight("b2", (d,), "zeros", dt)
        self.norms = [(self.add_weight(f"gamma{i}", (d,), "ones", dt),
                       self.add_weight(f"beta{i}", (d,), "zeros", dt)) for i in (1, 2)]
        if self.dropout:
            self.masks.build()

    def call(self, x, training, mask=None):
        def drop(v, what):
            return v * self.masks.mask(v, self.dropout, what) if training and self.dropout \
                else v

        def norm(v, which):
            gamma, beta = self.norms[which]
            centred = v - v.mean(axis=-1, keepdims=True)
            var = sg.square(centred).mean(axis=-1, keepdims=True)
            return gamma * (centred / sg.sqrt(var + self.eps)) + beta

        def attend(v):
            return drop(_self_attention(self, v, self.causal, lambda w: drop(w, "weights"),
                                        mask), "attention")

        def feed_forward(v):
            length, d = v.shape[1], v.shape[2]
            hidden = drop(self.fn(sg.reshape(v, (-1, d)) @ self.W1 + self.b1), "hidden")
            return drop(sg.reshape(hidden @ self.W2 + self.b2, (-1, length, d)), "output")

        if self.norm_first:
            x = x + attend(norm(x, 0))
            return x + feed_forward(norm(x, 1))
        x = norm(x + attend(x), 0)
        return norm(x + feed_forward(x), 1)


class PositionEmbedding(Layer):
    """Adds a learned vector per position to a sequence (batch, length, features): a
    (length, features) ``table`` broadcast over the batch, as BERT's and GPT-2's learned
    positions (Keras-NLP's ``PositionEmbedding``, whose output one adds). Attention by
    itself treats its input as a set: without this (or a causal mask) a permutation of the
    positions permutes the output and nothing else."""

    config_args = ("init",)
    unit_axis = -1  # (batch, length, features)
    masking = "keep"  # (padded positions get their vector too: the mask passes on)

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
