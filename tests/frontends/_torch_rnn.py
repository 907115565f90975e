"""Our recurrent layers' weights (Keras layouts) in torch's ``nn.RNN``/``LSTM``/``GRU``: the
oracle of test_recurrent*.py. Sizes come from the weights: kernel (features, k units),
recurrent kernel (units, k units)."""

import numpy as np
import torch


def gru_order(a, axis=0):
    """Keras's GRU gate order z, r, h -> torch's r, z, n along ``axis`` (its own inverse)."""
    z, r, h = np.split(a, 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


def torch_module(kind, weights, bidirectional_backward=None):
    """A float64 batch_first torch RNN with our weights; with ``bidirectional_backward`` (the
    backward direction's weights) a bidirectional one."""
    if bidirectional_backward is not None:
        mod = _torch_class(kind, weights, bidirectional=True)
        for suffix, one in (("", weights), ("_reverse", bidirectional_backward)):
            single = torch_module(kind, one)
            with torch.no_grad():
                for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                    getattr(mod, name + suffix).copy_(getattr(single, name))
        return mod
    kernel, recurrent, bias = weights
    mod = _torch_class(kind, weights)
    if kind == "GRU":
        kernel, recurrent = gru_order(kernel, 1), gru_order(recurrent, 1)
        b_ih, b_hh = gru_order(bias[0]), gru_order(bias[1])
    else:  # our one bias plays torch's b_ih (b_hh = 0)
        b_ih, b_hh = bias, np.zeros_like(bias)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(kernel.T))
        mod.weight_hh_l0.copy_(torch.tensor(recurrent.T))
        mod.bias_ih_l0.copy_(torch.tensor(b_ih))
        mod.bias_hh_l0.copy_(torch.tensor(b_hh))
    return mod


def _torch_class(kind, weights, bidirectional=False):
    features, units = weights[0].shape[0], weights[1].shape[0]
    cls = getattr(torch.nn, {"SimpleRNN": "RNN"}.get(kind, kind))
    return cls(features, units, batch_first=True, bidirectional=bidirectional).double()


def torch_grads_in_keras_layout(kind, mod):
    """The gradients of ``mod``'s weights in our layout (kernel, recurrent, bias)."""
    g = [mod.weight_ih_l0.grad.numpy().T, mod.weight_hh_l0.grad.numpy().T]
    if kind == "GRU":  # torch r, z, n -> ours z, r, h (the same swap undoes itself)
        return [gru_order(g[0], 1), gru_order(g[1], 1),
                np.stack([gru_order(mod.bias_ih_l0.grad.numpy()),
                          gru_order(mod.bias_hh_l0.grad.numpy())])]
    return g + [mod.bias_ih_l0.grad.numpy()]
