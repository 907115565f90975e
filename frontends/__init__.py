"""frontends: declarative models, compiled training, spec files and the ``symgraph`` command.

Keras-shaped, on top of ``symgraph`` (graph + ``grad``) and ``codegen`` (the
compiled step): layers add nodes to a symgraph graph, ``model.compile`` adds
the loss, its gradient and the optimizer's updates and compiles forward +
backward + update into one native function, and ``model.fit`` runs it.

>>> import frontends as fe
>>> model = fe.Sequential([fe.layers.Dense(64, activation="relu"), fe.layers.Dense(10)],
...                       input_shape=(64,), seed=0)
>>> model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=1e-3),
...               metrics=["accuracy"])
>>> history = model.fit(X, y, epochs=20, validation_data=(Xv, yv), early_stopping=5)
"""

import importlib

from symgraph.graph import register_internal_package

# errors and node sites point at the user's line, not at the layer code that built the node
register_internal_package(__file__)

from frontends import callbacks, errors, initializers, layers  # noqa: E402
from frontends.callbacks import Callback, EarlyStopping, History  # noqa: E402
from frontends.errors import UserInputError, UserInputTypeError  # noqa: E402
from frontends.model import Input, Model, Sequential, load_model  # noqa: E402
from frontends.saving import ModelFileError  # noqa: E402

_SUBMODULES = ("losses", "metrics", "optimizers", "regularizers", "schedules", "datasets",
               "spec", "training", "saving", "diagnostics", "plotting")


def __getattr__(name):
    # imported on first use: keeps `import frontends` (and the CLI's start) quick
    if name in _SUBMODULES:
        return importlib.import_module(f"frontends.{name}")
    if name == "load_spec":
        return importlib.import_module("frontends.spec").load_spec
    if name == "plot_weights":  # matplotlib is imported only when a picture is drawn
        return importlib.import_module("frontends.plotting").plot_weights
    raise AttributeError(f"module 'frontends' has no attribute {name!r}")


__all__ = ["Callback", "EarlyStopping", "History", "Input", "Model", "ModelFileError",
           "Sequential", "UserInputError", "UserInputTypeError", "callbacks", "errors",
           "initializers", "layers", "load_model", "load_spec", "plot_weights",
           *_SUBMODULES]
