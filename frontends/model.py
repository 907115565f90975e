"""``Model`` and ``Sequential``: a graph of layers that compiles into training functions.

A model owns two graphs built from the same layers and parameters: the
*training* graph (what the user's layer calls built: dropout on, batch norm on
batch statistics) and the *inference* graph (rebuilt with ``clone_replace``:
dropout off, batch norm on running statistics). ``compile`` adds the loss,
``sg.grad`` and the optimizer's updates to the training graph and compiles it
into ONE ``sg.function`` — forward, backward and update in a single native
call (``model.train_function``); ``evaluate`` and ``predict`` compile the
inference graph. ``fit`` lives in ``frontends.training``; files in
``frontends.saving``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

import symgraph as sg
from frontends import data_checks, figures, losses, optimizers, regularizers, saving, training
from frontends import layers as layer_lib
from frontends import metrics as metric_lib
from frontends.errors import UserInputError
from frontends.layers.base import Layer, frozen_substitute, inference_substitute
from frontends.sample_weights import weighted_names
from frontends.saving import ModelFileError, assign_weights, load_weights, read_file, save_model
from frontends.summary import node_counts, summary_text
from symgraph.gc_pause import without_gc
from symgraph.graph import toposort


def Input(shape: Sequence[int], dtype: str = "float32", name: str = "x") -> sg.Variable:
    """A model input: ``(batch, *shape)``, the batch dim symbolic.

    >>> x = fe.Input((64,)); h = fe.layers.Dense(32, activation="relu")(x)
    """
    return sg.tensor(name, ("batch", *example_shape(shape, "Input: shape")), dtype)


def example_shape(shape, what: str) -> tuple[int, ...]:
    """``shape`` (one example's, without the batch dim) as positive ints, or a ValueError
    naming ``what``: ``None`` (a Keras variable length or batch dim), 0, floats, strings."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    dims = tuple(shape) if isinstance(shape, (list, tuple)) else None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                           and d > 0 for d in dims):
        raise ValueError(f"{what} must be one example's shape, without the batch dim, as "
                         f"positive integers (e.g. (64,) or (8, 8)), got {shape!r}; every "
                         "dim is fixed: pad sequences to one length (Embedding(mask_zero="
                         "True) or Masking(mask_value=0) makes the layers after it skip the "
                         "padding)")
    return tuple(int(d) for d in dims)



#: what ``Model.compile`` sets (restored when it fails)
_COMPILED_STATE = ("loss", "optimizer", "regularizer", "metrics", "weighted_metrics", "backend",
                   "flush_denormals", "target", "train_output",
                   "train_graph", "train_function", "test_function", "_predict_function",
                   "node_counts", "compiled")


class Model:
    """A model from a graph built by calling layers: ``Model(inputs, outputs, seed=0)``.

    Every weight is redrawn from ``seed`` (one stream per layer, in the order the layers
    were first called), so two models built the same way are equal bit for bit.
    """

    def __init__(self, inputs, outputs, *, seed: int = 0, name: str | None = None):
        self.inputs = [inputs] if isinstance(inputs, sg.Variable) else list(inputs)
        outputs = [outputs] if isinstance(outputs, sg.Variable) else list(outputs)
        if len(outputs) != 1:
            raise ValueError(f"a model has one output (the loss is applied to it), got "
                             f"{len(outputs)}")
        self.output = outputs[0]
        self.seed = int(seed)
        self.name = name or "model"
        for x in self.inputs:
            if not isinstance(x, sg.Variable) or x.owner is not None:
                raise TypeError(f"model inputs must be graph inputs (fe.Input), got {x!r}")
        self.layers = _layers_of(self.output)
        names = [layer.name for layer in self.layers]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"two layers of the model share the name {sorted(duplicated)[0]!r}")
        missing = [v for v in sg.graph.graph_inputs([self.output])
                   if not isinstance(v, (sg.SharedVariable, sg.Constant))
                   and v not in self.inputs]
        if missing:
            raise ValueError(f"the model's output needs input {missing[0].name!r}, which is not "
                             "in its inputs")
        # draw from this model's seed; layers another model already seeded keep their weights
        # (a feature extractor Model(x, layer.output) shares them, it does not reset them)
        self.initialize(self.seed, layers=[la for la in self.layers if not la.seeded])
        self.inference_output = self._inference_graph()
        self.compiled = False
        self.backend: str | None = None
        self.flush_denormals = True
        self.stop_training = False
        self._predict_function = None
        #: fit's shuffle stream, continued by the next fit (``fit(epochs=1)`` in a loop
        #: shuffles as one ``fit(epochs=n)``); ``initialize`` starts it again
        self._shuffles: np.random.Generator | None = None

    # -- graphs
    def _inference_graph(self) -> sg.Variable:
        if not any(layer.has_mode for layer in self.layers):
            return self.output
        return figures.clone_output(self.output, [], inference_substitute)[0]

    def initialize(self, seed: int | None = None, layers: Sequence[Layer] | None = None) -> None:
        """Redraw every weight (or those of ``layers``) from ``seed`` (default: the model's):
        layer ``i`` draws from ``default_rng([seed, i])``."""
        seed = self.seed if seed is None else int(seed)
        if seed < 0:  # numpy's generators take non-negative seeds only
            raise UserInputError(f"seed must be a non-negative integer, got {seed}")
        chosen = None if layers is None else {id(layer) for layer in layers}
        if layers is None:
            self._shuffles = None  # a fresh model's run, shuffles included
        for index, layer in enumerate(self.layers):
            if chosen is None or id(layer) in chosen:
                layer.initialize(np.random.default_rng([seed, index]))
                layer.seeded = True

    # -- weights
    @property
    def weights(self) -> list[sg.SharedVariable]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[sg.SharedVariable]:
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def regularizable_weights(self) -> list[sg.SharedVariable]:
        """Kernels; biases and batch-norm parameters are not regularised."""
        return [w for layer in self.layers for w in layer.regularizable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight, Keras order (per layer: kernel (in, out), bias, ...)."""
        return [w.get_value() for w in self.weights]

    def set_weights(self, values: Sequence[np.ndarray]) -> None:
        """Set every weight (same order and shapes as ``get_weights``); checks all first."""
        values = list(values)
        weights = self.weights
        if len(values) != len(weights):
            raise ValueError(f"set_weights: the model has {len(weights)} weights, got "
                             f"{len(values)} arrays")
        arrays = []
        for var, value in zip(weights, values):
            array = np.asarray(value)
            if array.shape != tuple(var.shape):
                raise ValueError(f"set_weights: {var.name} has shape {tuple(var.shape)}, "
                                 f"got {array.shape}")
            if not np.can_cast(array.dtype, var.dtype, "same_kind"):
                raise TypeError(f"set_weights: {var.name} is {var.dtype}, got {array.dtype}")
            arrays.append(array)
        for var, array in zip(weights, arrays):  # only now: a bad list changes nothing
            var.set_value(array)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # -- compile
    def compile(self, loss="cross_entropy", optimizer="sgd", regularizer=None, metrics=None,
                *, weighted_metrics=None, backend: str | None = None,
                flush_denormals: bool = True) -> None:
        """Build the loss, its gradient and the updates, and compile the training step.

        >>> model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=1e-3),
        ...               regularizer=fe.regularizers.L2(1e-4), metrics=["accuracy"])

        ``flush_denormals`` (on by default, as Keras on JAX or TensorFlow computes): the
        model's functions read and write subnormal floats as zero (``sg.function``'s option).
        On x86 they cost ~100 cycles per operation, and training makes them (a classifier's
        probabilities underflow): the W2 MLP's epoch grew from 0.28 to 1.1 ms over 4,000
        epochs on an Intel Xeon with them kept, and stayed at 0.28 ms flushed.

        ``weighted_metrics`` (Keras's): metrics weighted by fit's and evaluate's
        ``sample_weight`` (or ``class_weight``); ``metrics`` never are (``sample_weights``).
        A compile that fails (a metric that does not fit the outputs, ...) leaves the model
        as it was: compiled as before, or not at all.
        """
        saved = {k: self.__dict__[k] for k in _COMPILED_STATE if k in self.__dict__}
        try:
            self._compile(loss, optimizer, regularizer, (metrics, weighted_metrics), backend,
                          flush_denormals)
        except BaseException:
            for k in _COMPILED_STATE:
                self.__dict__.pop(k, None)
            self.__dict__.update(saved)
            raise

    @without_gc  # the loss, optimizer and both functions' graphs: one pause
    def _compile(self, loss, optimizer, regularizer, metrics, backend,
                 flush_denormals) -> None:
        self.loss = losses.get(loss)
        self.optimizer = optimizers.get(optimizer)
        self.regularizer = None if regularizer is None else regularizers.get(regularizer)
        self.metrics, self.weighted_metrics = (metric_lib.get_all(m) for m in metrics)
        self.backend = backend
        self.flush_denormals = flush_denormals
        self.target = self.loss.target(self.output, name="y")
        # frozen layers (trainable = False): no weights to train; a frozen batch norm runs on
        # its running statistics and keeps them (layers/base.py: frozen_substitute). The
        # other layers' state updates are rebuilt with the output: a batch norm after a
        # frozen one averages the statistics of what it normalises, not of the graph with
        # the frozen layer still in training mode
        states = [(var, expr) for layer in self.layers if layer.trainable
                  for var, expr in layer.state_updates.items()]
        output, state_exprs = figures.clone_output(self.output, [e for _, e in states],
                                                   frozen_substitute)
        figures.check_mask(self, output)  # (a padding mask weighs the loss and the metrics)
        train_outputs = [v for part in figures.figures(self, output) for v in part]
        train_loss = train_outputs[0]
        self.train_output = output  # (what a weighted step's loss is built on)
        params = self.trainable_weights
        # a model without trainable weights (fixed features, dropout only) still evaluates
        grads = sg.grad(train_loss, params) if params else []
        updates = dict(self.optimizer.get_updates(params, grads)) if params else {}
        for (var, _), expr in zip(states, state_exprs):
            if var in updates:
                raise ValueError(f"{var.name} is updated twice (a layer called twice?)")
            updates[var] = expr
        self.train_graph = (train_outputs, grads, updates)
        self.train_function = sg.function(self.inputs + [self.target], train_outputs,
                                          updates=updates, backend=backend, name="train",
                                          flush_denormals=flush_denormals)
        test_outputs = [v for part in figures.figures(self, self.inference_output) for v in part]
        self.test_function = sg.function(self.inputs + [self.target], test_outputs,
                                         backend=backend, name="test",
                                         flush_denormals=flush_denormals)
        self._predict_function = None
        self.node_counts = node_counts(train_outputs, list(updates.values()))
        self.compiled = True

    def _total_loss(self, output: sg.Variable, weights=None) -> sg.Variable:
        """The loss of ``output`` (weighted, masked by its padding mask), regularised. A
        rebuild of the output without the mask it carries is refused: its loss would
        silently count the padding (``figures.clone_output`` rebuilds both)."""
        if figures.mask_of(output) is None and figures.mask_of(self.output) is not None:
            raise ValueError("the model's output carries a padding mask, and this rebuild of "
                             "it does not: rebuild it with figures.clone_output")
        return self._regularized(figures.loss(self, output, weights))

    def _regularized(self, total: sg.Variable) -> sg.Variable:
        if self.regularizer is not None and self.regularizable_weights:
            total = total + self.regularizer(self.regularizable_weights)
        return total

    @property
    def all_metrics(self) -> list:
        return self.metrics + self.weighted_metrics

    @property
    def metrics_names(self) -> list[str]:
        return ["loss"] + [m.name for m in self.metrics] + weighted_names(self)

    @property
    def predict_function(self) -> sg.Function:
        """The inference graph compiled (on first use): dropout off, batch norm running stats."""
        if self._predict_function is None:
            self._predict_function = sg.function(self.inputs, self.inference_output,
                                                 backend=self.backend, name="predict",
                                                 flush_denormals=self.flush_denormals)
        return self._predict_function

    # -- running
    def fit(self, x, y, **kwargs):
        """Train; see ``frontends.training.fit`` for the arguments. Returns a ``History``."""
        return training.fit(self, x, y, **kwargs)

    def evaluate(self, x, y, batch_size: int = 256, sample_weight=None) -> dict[str, float]:
        """Loss and metrics on ``(x, y)`` in inference mode, averaged over examples
        (``sample_weight``: Keras's weighted loss and weighted metrics).

        >>> model.evaluate(Xt, yt)
        {'loss': 0.08, 'accuracy': 0.975}
        """
        return training.evaluate(self, x, y, batch_size, sample_weight)

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """The model's output (the last layer's) in inference mode."""
        batch_size = training._integer("batch_size", batch_size, 1, "predict")
        arrays = self._inputs(x, "predict")
        for label, var, array in zip(self._input_labels(), self.inputs, arrays):  # not NaN out
            data_checks.check_finite("predict", label,
                                     data_checks.without_pads(self, var, array), var.dtype)
        if len(arrays[0]) == 0:
            shape = [d if isinstance(d, int) else 0 for d in self.inference_output.shape]
            return np.zeros(shape, self.inference_output.dtype)
        out = self.predict_function.epoch(*arrays, batch_size=batch_size)
        if out.ndim == self.inference_output.ndim + 1:  # equal batches come back stacked
            out = out.reshape(-1, *out.shape[2:])
        return out

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"{what}: compile the model first (model.compile(loss=..., "
                               "optimizer=...))")

    def _inputs(self, x, what: str) -> list[np.ndarray]:
        if isinstance(x, Mapping):  # Keras's {input name: array}
            xs = data_checks.inputs_by_name(what, self.inputs, x)
        elif len(self.inputs) == 1:
            # one input: a list is its data (nested lists of numbers), unless it is [array]
            single = (isinstance(x, (list, tuple)) and len(x) == 1
                      and np.ndim(x[0]) == self.inputs[0].ndim)
            xs = [x[0]] if single else [x]
        else:
            xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.inputs):
            raise UserInputError(f"{what}: the model has {len(self.inputs)} inputs, got "
                                 f"{len(xs)} arrays")
        for layer in self.layers:  # (an input standardisation never adapted)
            layer.check_ready(what)
        arrays = [np.asarray(a) for a in xs]
        for label, var, a in zip(self._input_labels(), self.inputs, arrays):
            data_checks.check_input(what, var, a, label)
            if len(a) != len(arrays[0]):
                raise UserInputError(f"{what}: {label} has {len(a)} examples, the first "
                                     f"input {len(arrays[0])}")
            for layer in self._embeddings_of(var):  # an embedding reading its ids directly
                data_checks.check_ids(what, label, a, layer.n, layer.name)
        return arrays

    def _input_labels(self) -> list[str]:
        """``input 'x'``, or its place too when inputs share a name (fe.Input's default)."""
        names = [var.name for var in self.inputs]
        return [f"input {name!r}" if names.count(name) == 1 else
                f"input {i + 1} of {len(names)} ({name!r})" for i, name in enumerate(names)]

    def _embeddings_of(self, var: sg.Variable) -> list[Layer]:
        """The Embedding layers of this model's graph called directly on input ``var``: every
        call, not only the layer's latest (``layer.output``), which a layer shared by two
        inputs, or called again by another model, points elsewhere."""
        cache = self.__dict__.setdefault("_embedding_calls", {})  # the graph is fixed
        if var.id not in cache:
            found: dict[int, Layer] = {}
            for node in toposort([self.output]):
                for out in node.outputs:
                    layer = getattr(out, "layer", None)
                    if layer is not None and layer.kind == "Embedding" and \
                            getattr(out, "layer_input", None) is var:
                        found.setdefault(id(layer), layer)
            cache[var.id] = list(found.values())
        return cache[var.id]

    def _arrays(self, x, y, what: str) -> list[np.ndarray]:
        """The inputs and targets as arrays, checked against the model (shapes, dtypes,
        label range) on the whole arrays, before any step runs; ``what`` starts messages."""
        arrays = self._inputs(x, what)
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(arrays[0]):
            raise UserInputError(f"{what}: x has {len(arrays[0])} examples, y has "
                                 f"{len(y) if y.ndim else 'none (a scalar)'}")
        target = getattr(self, "target", None)
        if target is not None:
            data_checks.check_target(what, self.loss.name, target, y)
            if self.loss.target_range is not None:
                data_checks.check_range(what, "y", y, self.loss.target_range, self.loss.name)
            classes = self.loss.label_classes(self.output)
            if classes is not None:
                data_checks.check_labels(what, y, classes,
                                         getattr(self.loss, "ignore_index", None), self.output)
                data_checks.check_scored(what, self.loss, y)
        return arrays + [y]

    def _check_finite(self, arrays: list[np.ndarray], what: str) -> None:
        """No NaN/inf in the float arrays of ``_arrays``: training on them ruins the weights."""
        labels = self._input_labels() + ["y"]
        dtypes = [var.dtype for var in self.inputs] + [self.target.dtype]
        for label, array, dtype, var in zip(labels, arrays, dtypes, self.inputs + [None]):
            data_checks.check_finite(what, label, data_checks.without_pads(self, var, array),
                                     dtype)

    # -- description
    def summary(self, print_fn=print) -> str:
        """Layers, output shapes and parameter counts (and graph sizes once compiled)."""
        text = summary_text(self)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path) -> None:
        """Architecture (JSON), weights and optimizer state in one ``.npz`` file."""
        save_model(self, path)

    def load_weights(self, path) -> None:
        """Weights from a file written by ``save`` for the same architecture."""
        load_weights(self, path)

    def plot_graph(self, path, view: str = "ops", **kwargs) -> str:
        """Draw the compiled training step (forward, gradient, updates) with ``sg.render``:
        ``view="ops"`` every node, ``"layers"`` one box per layer, ``"kernels"`` the fused
        kernels (llvm), ``"profile"`` kernels shaded by time (after ``model.profile``)."""
        self._require_compiled("plot_graph")
        return sg.render(self.train_function, path, view=view, **kwargs)

    def profile(self, x, y, n: int = 100) -> list[dict]:
        """Where one training step on the minibatch ``(x, y)`` spends its time, averaged over
        ``n`` steps that change no parameter: ``train_function.profile`` rows naming the
        layers and ops (``print(sg.format_profile(rows))``)."""
        self._require_compiled("profile")
        return self.train_function.profile(*self._arrays(x, y, "profile"), n=n)

    def get_config(self) -> dict:
        return _functional_config(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self.layers)} layers, " \
               f"{self.count_params()} parameters>"


class Sequential(Model):
    """A chain of layers on one input of shape ``(batch, *input_shape)``.

    >>> model = fe.Sequential([fe.layers.Dense(64, activation="relu"), fe.layers.Dense(10)],
    ...                       input_shape=(64,), dtype="float32", seed=0)
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int],
                 dtype: str = "float32", seed: int = 0, name: str | None = None):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        taken: set[str] = {layer.name for layer in layers if layer.name is not None}
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes layers, got {type(layer).__name__}")
            if layer.built:
                raise ValueError(f"layer {layer.name} already belongs to another model")
            taken.add(layer.ensure_name(taken))
        # Sequential(..., input_shape=64) is (64,)
        self.input_shape = example_shape(input_shape, "Sequential: input_shape")
        self.dtype = str(np.dtype(dtype))
        x = Input(self.input_shape, self.dtype)
        h = x
        for layer in layers:
            h = layer(h)
        super().__init__([x], h, seed=seed, name=name or "sequential")

    def get_config(self) -> dict:
        return {"input_shape": list(self.input_shape), "dtype": self.dtype, "seed": self.seed,
                "name": self.name, "layers": [layer.get_config() for layer in self.layers]}


# --------------------------------------------------------------------------- helpers


def _layers_of(output: sg.Variable) -> list[Layer]:
    """Layers whose calls built ``output``, in the order of their first call."""
    seen: dict[int, Layer] = {}
    for node in toposort([output]):
        for var in node.outputs:
            layer = getattr(var, "layer", None)
            if layer is not None and id(layer) not in seen:
                seen[id(layer)] = layer
    return list(seen.values())


# --------------------------------------------------------------------------- files


def load_model(path, compile: bool = True) -> Model:
    """A model saved with ``model.save``: same architecture, weights and (when it was
    compiled and ``compile``) the same compile settings and optimizer state.

    >>> model = fe.load_model("digits.npz"); model.evaluate(Xt, yt)
    """
    header, arrays = read_file(path)  # (checks the entries read below are there)
    config = header["config"]
    try:
        if header["class"] == "Sequential":
            built = [_made_layer(c) for c in config["layers"]]
            model = Sequential(built, input_shape=config["input_shape"], dtype=config["dtype"],
                               seed=config["seed"], name=config["name"])
        elif header["class"] == "Model":
            inputs = [Input(shape, dtype, name) for name, shape, dtype in config["inputs"]]
            made = [_made_layer(c) for c in config["layers"]]
            values: list[sg.Variable] = []
            for layer_index, refs, *options in config["calls"]:
                args = [inputs[k] if kind == "input" else values[k] for kind, k in refs]
                layer = made[layer_index]
                # Add / Concatenate take the list (Bidirectional's ``merge`` is a mode name)
                if isinstance(layer, layer_lib.Add):
                    values.append(layer(args))
                else:  # a call made with training=False (a frozen BatchNorm) stays one
                    training = not (options and isinstance(options[0], dict)
                                    and options[0].get("training") is False)
                    values.append(layer(args[0], training=training))
            out = values[config["output"][1]] if config["output"][0] == "call" \
                else inputs[config["output"][1]]
            model = Model(inputs, out, seed=config["seed"], name=config["name"])
        else:
            raise ModelFileError(f"{os.fspath(path)!r}: unknown model class "
                                 f"{header['class']!r}")
    except ModelFileError:
        raise
    except (KeyError, TypeError, IndexError, ValueError) as err:  # (a layer refusing its config)
        raise saving.unreadable(path, header, "architecture", err) from None
    assign_weights(model, header, arrays, path)
    if compile and header.get("compile"):
        c = header["compile"]
        try:
            model.compile(loss=c["loss"], optimizer=c["optimizer"],
                          regularizer=c["regularizer"], metrics=c["metrics"],
                          weighted_metrics=c.get("weighted_metrics"),
                          backend=c.get("backend"),
                          # a file from before the option trained with subnormals kept:
                          # so does its resumed fit (as the backend, the same arithmetic)
                          flush_denormals=c.get("flush_denormals", False))
        except (TypeError, ValueError) as err:  # (an unknown loss, a bad optimizer setting)
            raise saving.unreadable(path, header, "compile", err) from None
        opt_vars = model.optimizer.variables()
        for i, var in enumerate(opt_vars):
            if f"optimizer_{i}" in arrays and arrays[f"optimizer_{i}"].shape == \
                    tuple(var.shape):
                var.set_value(arrays[f"optimizer_{i}"])
        if model.optimizer.schedule is not None and c.get("schedule_state"):
            model.optimizer.schedule.set_state(c["schedule_state"])
    return model


def _layer_args(layer_config: dict) -> dict:
    return {k: v for k, v in layer_config.items() if k not in ("type", "mask_key", "trainable")}


def _made_layer(layer_config: dict) -> Layer:
    """A model file's layer from its config, frozen if it was, its random streams keyed as
    when saved (``Layer.mask_key``): training on from the file draws the masks it would
    have drawn."""
    layer = layer_lib.get(layer_config["type"])(**_layer_args(layer_config))
    layer.mask_key = layer_config.get("mask_key")
    layer.trainable = layer_config.get("trainable", True)  # (a frozen layer stays frozen)
    return layer


def _functional_config(model: Model) -> dict:
    """A functional model as layer configs plus who feeds whom; only graphs made of layer
    calls can be saved this way (raw symgraph ops between layers cannot)."""
    calls: list = []
    index_of_call: dict[int, int] = {}
    layer_index = {id(layer): i for i, layer in enumerate(model.layers)}

    def sources(var) -> list:
        return var.layer_input if isinstance(var.layer_input, list) else [var.layer_input]

    def visit(var, found: dict) -> None:
        if var in model.inputs or var.id in found:
            return
        if getattr(var, "layer", None) is None:
            raise NotImplementedError(
                f"model.save: the graph has symgraph ops between layers (at {var!r}, created "
                f"at {var.site}); such a model cannot be rebuilt from a file. Use layers for "
                "every step (fe.layers.Add for residuals), or rebuild it in code and use "
                "model.load_weights(path)")
        found[var.id] = var
        for source in sources(var):
            visit(source, found)

    def ref(var):
        if var in model.inputs:
            return ["input", model.inputs.index(var)]
        return ["call", index_of_call[var.id]]

    found: dict = {}
    visit(model.output, found)
    # the calls in the order they were made (a variable's id), not as a walk back from the
    # output meets them: a shared layer's calls replay in their order, so each draws the
    # masks it drew (MaskStream numbers a layer's calls); a call's inputs come before it
    for var in sorted(found.values(), key=lambda v: v.id):
        call = [layer_index[id(var.layer)], [ref(s) for s in sources(var)]]
        if getattr(var, "layer_training", True) is False:  # (a frozen BatchNorm)
            call.append({"training": False})
        index_of_call[var.id] = len(calls)
        calls.append(call)

    output = ref(model.output)
    return {"name": model.name, "seed": model.seed,
            "inputs": [[x.name, [int(d) for d in x.shape[1:]], x.dtype.name]
                       for x in model.inputs],
            "layers": [{**layer.get_config(),
                        **({"mask_key": layer.mask_key} if layer.mask_key else {})}
                       for layer in model.layers],
            "calls": calls, "output": output}
