"""Spec files: YAML and TOML build the model the Python API builds; every mistake is a
SpecError naming the file, the key path and the line (the line found independently here,
by searching the text for a marker)."""

import re
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

import frontends as fe
from frontends import spec_source
from frontends.spec import DEFAULT_SPEC, SpecError, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def line_of(text: str, marker: str) -> int:
    """1-based line of the only line containing ``marker``: the oracle for positions."""
    hits = [i for i, line in enumerate(text.splitlines(), 1)
            if re.search(re.escape(marker) + r"(?!\w)", line)]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def spec_error(tmp_path: Path, name: str, text: str) -> SpecError:
    path = write(tmp_path, name, text)
    with pytest.raises(SpecError) as err:
        load_spec(path, backend="numpy")
    assert err.value.file == str(path) and str(path) in str(err.value)
    return err.value


# --------------------------------------------------------------------------- error cases
# Each case: a YAML and a TOML file with the same mistake, the key path reported, the
# marker whose line must be reported, and what the message must say.

HEAD_YAML = """\
model:
  input_shape: [64]
  layers:
"""
HEAD_TOML = """\
[model]
input_shape = [64]
"""

CASES = {
    "bad argument type": (
        HEAD_YAML + "    - {type: Dense, units: 8}\n    - type: Dense\n      units: abc  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Dense"\nunits = 8\n'
        '[[model.layers]]\ntype = "Dense"\nunits = "abc"  #M\n',
        "model.layers[1].units", "expected an integer, got 'abc'"),
    "unknown layer argument": (
        HEAD_YAML + "    - {type: Dense, units: 8, activaton: relu}  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Dense"\nunits = 8\nactivaton = "relu"  #M\n',
        "model.layers[0].activaton",
        r"unknown argument 'activaton' for Dense \(did you mean 'activation'\?\); "
        r"valid: units, activation,"),
    "unknown layer type": (
        HEAD_YAML + "    - {type: Dense, units: 8}\n    - {type: Dence, units: 4}  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Dense"\nunits = 8\n'
        '[[model.layers]]\ntype = "Dence"  #M\nunits = 4\n',
        "model.layers[1].type",
        r"unknown layer type 'Dence' \(did you mean 'Dense'\?\); valid types: .*Dropout"),
    "missing required argument": (
        HEAD_YAML + "    - {type: Dropout, rate: 0.1}\n    - {type: Dense}  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Dropout"\nrate = 0.1\n'
        '[[model.layers]]  #M\ntype = "Dense"\n',
        "model.layers[1]", r"Dense needs 'units' \(missing required argument\)"),
    "constructor rejects a value": (
        HEAD_YAML + "    - type: Dropout\n      rate: 1.5  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Dropout"\nrate = 1.5  #M\n',
        "model.layers[0].rate", r"Dropout: rate must be in \[0, 1\), got 1.5"),
    "layer does not fit its input": (
        HEAD_YAML + "    - {type: Dense, units: 8}\n    - {type: Reshape, shape: [-1, 3]}  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Dense"\nunits = 8\n'
        '[[model.layers]]  #M\ntype = "Reshape"\nshape = [-1, 3]\n',
        "model.layers[1]", "cannot reshape"),
    "graph op refuses the shapes": (
        HEAD_YAML + "    - {type: Reshape, shape: [1, 8, 8]}\n"
        "    - {type: Conv2D, filters: 4, kernel_size: 9}  #M\n",
        HEAD_TOML + '[[model.layers]]\ntype = "Reshape"\nshape = [1, 8, 8]\n'
        '[[model.layers]]  #M\ntype = "Conv2D"\nfilters = 4\nkernel_size = 9\n',
        "model.layers[1]", "kernel 9 .* is bigger than the padded input 8"),
    "bad value found while building": (
        HEAD_YAML + "    - {type: Dense, units: 8}\n"
        "    - {type: Dense, units: 4, init: bogus}  #M\n",
        HEAD_TOML + 'layers = [\n  {type = "Dense", units = 8},\n'
        '  {type = "Dense", units = 4, init = "bogus"},  #M\n]\n',
        "model.layers[1].init", "unknown initialiser 'bogus'"),
    "compile fails": (
        HEAD_YAML + "    - {type: Dense, units: 3}\ncompile:  #M\n  loss: gaussian_nll\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 3}]\n[compile]  #M\n'
        'loss = "gaussian_nll"\n',
        "compile", "gaussian_nll: .*even"),
    "bad flush_denormals": (
        HEAD_YAML + "    - {type: Dense, units: 3}\ncompile:\n  flush_denormals: 1  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 3}]\n[compile]\n'
        'flush_denormals = 1  #M\n',
        "compile.flush_denormals", "expected true or false, got 1"),
    "unknown section": (
        HEAD_YAML + "    - {type: Dense, units: 8}\nmodle: {}  #M\n",
        'modle = 1  #M\n' + HEAD_TOML + '[[model.layers]]\ntype = "Dense"\nunits = 8\n',
        "modle", r"unknown key 'modle' in the spec file \(did you mean 'model'\?\); "
        "valid keys: model, compile, data, fit"),
    "unknown model key": (
        "model:\n  input_shap: [64]  #M\n  layers: [{type: Dense, units: 8}]\n",
        '[model]\ninput_shap = [64]  #M\nlayers = [{type = "Dense", units = 8}]\n',
        "model.input_shap", r"did you mean 'input_shape'\?\); valid keys: input_shape, dtype"),
    "missing layers": (
        "data: {name: digits}\nmodel:  #M\n  input_shape: [64]\n",
        'data.name = "digits"\n[model]  #M\ninput_shape = [64]\n',
        "model", "missing required key 'layers' in model"),
    "bad input shape entry": (
        "model:\n  input_shape: [8, 0]  #M\n  layers: [{type: Dense, units: 8}]\n",
        '[model]\ninput_shape = [8, 0]  #M\nlayers = [{type = "Dense", units = 8}]\n',
        "model.input_shape[1]", "expected a positive integer, got 0"),
    "bad dtype": (
        HEAD_YAML + "    - {type: Dense, units: 8}\n  dtype: float16  #M\n",
        '[model]\ninput_shape = [64]\ndtype = "float16"  #M\n'
        'layers = [{type = "Dense", units = 8}]\n',
        "model.dtype", "expected one of float32, float64, int32, int64, got 'float16'"),
    "bad fit value": (
        HEAD_YAML + "    - {type: Dense, units: 8}\nfit:\n  epochs: 3\n  batch_size: 0  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[fit]\nepochs = 3\n'
        'batch_size = 0  #M\n',
        "fit.batch_size", "expected a positive integer, got 0"),
    "bad early stopping": (
        HEAD_YAML + "    - {type: Dense, units: 8}\nfit: {early_stopping: soon}  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[fit]\n'
        'early_stopping = "soon"  #M\n',
        "fit.early_stopping", "expected an integer >= 0 .* or false, got 'soon'"),
    "unknown data set": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ndata:\n  name: mnist  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[data]\nname = "mnist"  #M\n',
        "data.name", "unknown data set 'mnist'; available: digits"),
    "bad data option": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ndata:\n  validation_split: 2  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[data]\n'
        'validation_split = 2  #M\n',
        "data.validation_split", r"expected a fraction in \[0, 1\), got 2.0"),
    "unknown data option": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ndata:\n  standardise: true  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[data]\n'
        'standardise = true  #M\n',
        "data.standardise", r"\(did you mean 'standardize'\?\); valid keys: name, standardize"),
    "unknown optimizer": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ncompile:\n  loss: cross_entropy\n"
        "  optimizer:\n    type: Adamm  #M\n    lr: 0.1\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[compile]\n'
        'loss = "cross_entropy"\n[compile.optimizer]\ntype = "Adamm"  #M\nlr = 0.1\n',
        "compile.optimizer.type", "unknown optimizer 'Adamm'"),
    "bad optimizer argument": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ncompile:\n  optimizer:\n    type: Adam\n"
        "    lrr: 0.1  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[compile]\n'
        'loss = "mse"\noptimizer = {type = "Adam", lrr = 0.1}  #M\n',
        "compile.optimizer.lrr", "lrr"),
    "Keras's name of an optimizer argument": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ncompile:\n  optimizer:\n    type: Adam\n"
        "    learning_rate: 0.1  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[compile]\n'
        'loss = "mse"\noptimizer = {type = "Adam", learning_rate = 0.1}  #M\n',
        "compile.optimizer.learning_rate",
        r"\(did you mean 'lr'\? symgraph's name for 'learning_rate'\)"),
    "validation_split in fit": (
        HEAD_YAML + "    - {type: Dense, units: 8}\nfit:\n  validation_split: 0.1  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[fit]\n'
        'validation_split = 0.1  #M\n',
        "fit.validation_split", r"validation_split belongs to the data section here"),
    "unknown metric": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ncompile:\n  metrics:\n    - accuracy\n"
        "    - acuracy  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[compile]\n'
        'metrics = [\n  "accuracy",\n  "acuracy",  #M\n]\n',
        "compile.metrics[1]", "unknown metric 'acuracy'"),
    "unknown regularizer": (
        HEAD_YAML + "    - {type: Dense, units: 8}\ncompile: {regularizer: L3}  #M\n",
        HEAD_TOML + 'layers = [{type = "Dense", units = 8}]\n[compile]\n'
        'regularizer = "L3"  #M\n',
        "compile.regularizer", "unknown regularizer 'L3'"),
}


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
@pytest.mark.parametrize("case", list(CASES))
def test_error_names_key_path_and_line(tmp_path, case, fmt):
    yaml_text, toml_text, key, message = CASES[case]
    text = yaml_text if fmt == "yaml" else toml_text
    err = spec_error(tmp_path, f"s.{fmt}", text)
    assert err.key == key, str(err)
    assert err.line == line_of(text, "#M"), str(err)
    assert re.search(message, err.problem), str(err)
    assert str(err).startswith(f"{tmp_path / ('s.' + fmt)}:{err.line}: {key}: ")
    assert "\n" not in err.problem  # one line: the spec's line, not the loader's Python line
    assert isinstance(err, ValueError)


def test_yaml_block_layer_lines(tmp_path):
    text = HEAD_YAML + textwrap.dedent("""\
        # a comment line
        - type: Dense      #L0
          units: 16
        - type: Dense      #L1

          units: [1, 2]    #U1
    """).replace("\n", "\n    ").rstrip(" ")
    err = spec_error(tmp_path, "b.yaml", text)
    assert (err.key, err.line) == ("model.layers[1].units", line_of(text, "#U1"))
    assert err.problem == "expected an integer, got a list [1, 2]"


def test_missing_model_section(tmp_path):
    err = spec_error(tmp_path, "m.yaml", "fit: {epochs: 3}\n")
    assert err.problem == "missing required key 'model' in the spec file"
    err = spec_error(tmp_path, "m.toml", "[fit]\nepochs = 3\n")
    assert err.problem == "missing required key 'model' in the spec file"


# --------------------------------------------------------------------------- unreadable files


def test_syntax_errors_carry_the_parser_line(tmp_path):
    text = "model:\n  input_shape: [64]\n  layers: [{type: Dense, units: 3}\nfit: {}\n"
    err = spec_error(tmp_path, "x.yaml", text)
    assert err.problem.startswith("invalid YAML:") and err.line == 4
    assert "(line 4, column" in err.problem
    text = '[model]\ninput_shape = [64]\nlayers = [{type = "Dense" units = 3}]\n'
    err = spec_error(tmp_path, "x.toml", text)
    assert err.problem.startswith("invalid TOML:") and err.line == 3
    err = spec_error(tmp_path, "y.toml", "[model]\ninput_shape = [64")
    assert err.line == 2 and "Unclosed array" in err.problem


def test_yaml_is_read_safely(tmp_path):
    # safe_load semantics: no Python object construction from tags
    text = HEAD_YAML + "    - {type: Dense, units: 3}\nfit: !!python/object/apply:os.getcwd []\n"
    err = spec_error(tmp_path, "u.yaml", text)
    assert err.line == 5 and "could not determine a constructor" in err.problem


def test_duplicate_yaml_key_is_an_error_not_last_wins(tmp_path):
    text = HEAD_YAML + "    - {type: Dense, units: 3}\n  seed: 1\n  seed: 2  #M\n"
    err = spec_error(tmp_path, "d.yaml", text)
    assert (err.key, err.line) == ("model.seed", line_of(text, "#M"))
    assert err.problem == "duplicate key 'seed' (first at line 5)"


def test_file_problems(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SpecError, match=r"dir\.yaml: is a directory"):
        load_spec(tmp_path / "dir.yaml")
    with pytest.raises(SpecError, match=r"s\.json: unknown spec file type '\.json'; "
                       r"expected \.yaml, \.yml or \.toml"):
        load_spec(write(tmp_path, "s.json", "{}"))
    (tmp_path / "bin.yaml").write_bytes(b"model:\n  name: \xff\n")
    with pytest.raises(SpecError, match=r"bin\.yaml:2: not UTF-8 text"):
        load_spec(tmp_path / "bin.yaml")
    with pytest.raises(SpecError, match=r"e\.yaml: empty spec file"):
        load_spec(write(tmp_path, "e.yaml", "# only a comment\n"))
    with pytest.raises(SpecError, match=r"l\.yaml:1: expected a mapping .*got a list"):
        load_spec(write(tmp_path, "l.yaml", "- model\n"))


# --------------------------------------------------------------------------- TOML positions


def test_toml_positions_scanner():
    text = textwrap.dedent('''\
        title = """a [b]
        "c" = {""" # [x]
        k = 'it is ] {'
        [model]            #MODEL
        "input_shape" = [  #IS
          64,
          # ] a comment with brackets [
          32,              #ELEM1
        ]
        x.y.z = 1          #XYZ
        [[model.layers]]   #L0
        type = "Dense"
        sub = {a = 1, b = [1,
          2]}              #SUB1
        [model.layers.extra]
        deep = 5           #DEEP0
        [[model.layers]]   #L1
        'type' = "Dropout"
        [[model.layers.ids]]
        v = 1              #IDV
        [fit]
        s = "x\\"]"        #S
        t = 1979-05-27 07:32:00
        u = 2              #U
    ''')
    source = spec_source.Source("t.toml")
    data = spec_source._parse_toml(text, source)
    assert data["model"]["layers"][1]["ids"][0]["v"] == 1  # tomllib agrees on the structure
    expect = {
        ("model",): "#MODEL", ("model", "input_shape"): "#IS",
        ("model", "input_shape", 1): "#ELEM1", ("model", "x", "y", "z"): "#XYZ",
        ("model", "layers", 0): "#L0", ("model", "layers", 0, "sub", "b", 1): "#SUB1",
        ("model", "layers", 0, "extra", "deep"): "#DEEP0", ("model", "layers", 1): "#L1",
        ("model", "layers", 1, "ids", 0, "v"): "#IDV", ("fit", "s"): "#S", ("fit", "u"): "#U",
    }
    for path, marker in expect.items():
        assert source.line(path) == line_of(text, marker), path
    assert source.line(("model", "layers", 1, "type"), key=True) == line_of(text, "#L1") + 1


# --------------------------------------------------------------------------- building


def _python_model(backend):
    model = fe.Sequential([fe.layers.Dense(32, activation="relu"), fe.layers.Dropout(0.25),
                           fe.layers.Dense(16, activation="tanh", init="he_normal"),
                           fe.layers.Dense(10)],
                          input_shape=(64,), dtype="float32", seed=7, name="net")
    model.compile(loss="cross_entropy", optimizer=fe.optimizers.Adam(lr=0.01),
                  regularizer=fe.regularizers.L2(1e-3), metrics=["accuracy"],
                  backend=backend)
    return model


SAME_YAML = """\
model:
  input_shape: [64]
  seed: 7
  name: net
  layers:
    - {type: Dense, units: 32, activation: relu}
    - {type: Dropout, rate: 0.25}
    - {type: Dense, units: 16, activation: tanh, init: he_normal}
    - {type: Dense, units: 10}
compile:
  loss: cross_entropy
  optimizer: {type: Adam, lr: 0.01}
  regularizer: {type: L2, l: 1e-3}
  metrics: [accuracy]
"""

SAME_TOML = """\
[model]
input_shape = [64]
seed = 7
name = "net"
layers = [
  {type = "Dense", units = 32, activation = "relu"},
  {type = "Dropout", rate = 0.25},
  {type = "Dense", units = 16, activation = "tanh", init = "he_normal"},
  {type = "Dense", units = 10},
]
[compile]
loss = "cross_entropy"
optimizer = {type = "Adam", lr = 0.01}
regularizer = {type = "L2", l = 1e-3}
metrics = ["accuracy"]
"""


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_spec_builds_the_python_api_model(tmp_path, backend, fmt):
    path = write(tmp_path, f"same.{fmt}", SAME_YAML if fmt == "yaml" else SAME_TOML)
    model, cfg = load_spec(path, backend=backend)
    reference = _python_model(backend)
    assert model.name == "net" and [type(la) for la in model.layers] == \
        [type(la) for la in reference.layers]
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the same training step: loss, optimizer (Adam lr 0.01), regulariser and dropout
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 64)).astype(np.float32), rng.integers(0, 10, 24)
    for _ in range(2):
        out, ref = model.train_function(X, y), reference.train_function(X, y)
        np.testing.assert_allclose(np.array(out, dtype=float), np.array(ref, dtype=float),
                                   rtol=1e-6)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert cfg["compile"]["regularizer"] == {"type": "L2", "l": 1e-3}


def test_yaml_reads_1e_minus_3_as_a_number_unlike_yaml_1_1():
    # plain yaml.safe_load (YAML 1.1) gives the string '1e-3': the spec loader must not
    assert yaml.safe_load("l: 1e-3") == {"l": "1e-3"}
    loader = spec_source._yaml_loader()("a: 1e-3\nb: -2E+2\nc: 1.5\nd: 12\ne: 1e3x\n")
    try:
        assert loader.get_single_data() == {"a": 1e-3, "b": -200.0, "c": 1.5, "d": 12,
                                            "e": "1e3x"}
    finally:
        loader.dispose()


def test_examples_yaml_and_toml_are_the_same_spec():
    m_yaml, cfg_yaml = load_spec(EXAMPLES / "digits.yaml", backend="numpy")
    m_toml, cfg_toml = load_spec(EXAMPLES / "digits.toml", backend="numpy")
    assert cfg_yaml == cfg_toml
    for a, b in zip(m_yaml.get_weights(), m_toml.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert m_yaml.compiled and cfg_yaml["data"]["name"] == "digits"
    assert cfg_yaml["model"]["input_shape"] == [64] and cfg_yaml["fit"]["early_stopping"]


def test_default_spec_is_the_packaged_copy_of_the_digits_example():
    assert DEFAULT_SPEC.read_bytes() == (EXAMPLES / "digits.yaml").read_bytes()
    assert DEFAULT_SPEC == resources.files("frontends.datasets") / "digits_mlp.yaml"
    model, cfg = load_spec(DEFAULT_SPEC, backend="numpy")
    assert model.output.shape[-1] == 10 and cfg["data"]["standardize"] is True


def test_defaults_are_filled_from_the_python_api(tmp_path):
    import inspect

    from frontends.training import fit

    path = write(tmp_path, "min.yaml", "model: {input_shape: 4, layers: [{type: Dense, "
                                       "units: 2}]}\n")
    model, cfg = load_spec(path)
    assert not model.compiled and cfg["compile"] is None
    fit_defaults = inspect.signature(fit).parameters
    assert cfg["fit"] == {k: fit_defaults[k].default for k in cfg["fit"]}
    assert set(cfg["fit"]) == {"batch_size", "epochs", "early_stopping", "shuffle",
                               "class_weight"}
    assert cfg["data"] == {"name": "digits", "standardize": False, "validation_split": 0.0}
    assert cfg["model"] == {"input_shape": [4], "dtype": "float32", "seed": 0, "name": None,
                            "layers": [{"type": "Dense", "units": 2}]}
    # a compile section with only a loss gets model.compile's default optimizer
    path = write(tmp_path, "c.toml", '[model]\ninput_shape = [4]\nlayers = [{type = "Dense", '
                                     'units = 2}]\n[compile]\nloss = "mse"\n[fit]\n'
                                     'early_stopping = false\n')
    model, cfg = load_spec(path, backend="numpy")
    compile_defaults = inspect.signature(fe.Model.compile).parameters
    assert cfg["compile"]["optimizer"] == compile_defaults["optimizer"].default
    assert model.compiled and cfg["fit"]["early_stopping"] is None


def test_import_frontends_does_not_import_yaml():
    code = ("import sys, frontends, frontends.spec; "
            "assert 'yaml' not in sys.modules and 'tomllib' not in sys.modules, 'eager'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_argument_named_like_its_type_is_placed_at_the_argument(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("model: {input_shape: [4], layers: [{type: Dense, units: 2}]}\n"
                    "compile:\n  loss: mse\n  regularizer: {type: l2, l2: 0.1}\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.key == "compile.regularizer.l2" and err.value.line == 4


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_graph_nodes_record_the_spec_lines_they_come_from(tmp_path, fmt):
    """Tooltips, printed graphs and profiles name where the user described a node: a
    layer's line, and for the loss, gradients and updates the compile section's, not the
    line of Python (the command line's entry point) that loaded the spec."""
    from symgraph.graph import toposort
    text = (HEAD_YAML + "    - {type: Dense, units: 8, activation: tanh}  #L0\n"
            "    - {type: Dense, units: 3}  #L1\ncompile:  #C\n  loss: cross_entropy\n"
            if fmt == "yaml" else
            HEAD_TOML + 'layers = [\n  {type = "Dense", units = 8, activation = "tanh"},  #L0\n'
            '  {type = "Dense", units = 3},  #L1\n]\n[compile]  #C\nloss = "cross_entropy"\n')
    path = write(tmp_path, f"s.{fmt}", text)
    model, _ = load_spec(path, backend="numpy")
    outputs, grads, updates = model.train_graph
    nodes = toposort([*outputs, *grads, *updates.values()])
    lines = {}
    for node in nodes:
        origin = node.grad_of or node  # a gradient node: where its forward node was made
        assert origin.site is not None and origin.site.filename == str(path), origin.site
        layer = node.scope.split("/")[0] if node.scope else None
        lines.setdefault(layer if layer in ("dense_1", "dense_2") else None, set()).add(
            origin.site.lineno)
    assert lines["dense_1"] == {line_of(text, "#L0")}
    assert lines["dense_2"] == {line_of(text, "#L1")}
    assert line_of(text, "#C") in lines[None]  # the loss and the updates


# --------------------------------------------------------------------------- class weights

WEIGHTED_YAML = """\
model:
  input_shape: [6]
  dtype: float64
  layers: [{type: Dense, units: 3}]
compile: {loss: cross_entropy, weighted_metrics: [accuracy]}
fit:
  class_weight: {0: 1.0, 2: 4.5}   # WEIGHTS
"""
WEIGHTED_TOML = """\
[model]
input_shape = [6]
dtype = "float64"
layers = [{type = "Dense", units = 3}]
[compile]
loss = "cross_entropy"
weighted_metrics = ["accuracy"]
[fit]
class_weight = {"0" = 1.0, "2" = 4.5}   # WEIGHTS
"""


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_fit_class_weight_and_weighted_metrics_in_a_spec(tmp_path, fmt):
    """A spec's fit.class_weight (TOML's string keys read as classes) and
    compile.weighted_metrics train as the Python call with them does."""
    path = write(tmp_path, f"w.{fmt}", WEIGHTED_YAML if fmt == "yaml" else WEIGHTED_TOML)
    model, cfg = load_spec(path, backend="numpy")
    assert cfg["fit"]["class_weight"] == {0: 1.0, 2: 4.5}
    assert model.metrics_names == ["loss", "accuracy"]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 6)), rng.integers(0, 3, 10)
    python = fe.Sequential([fe.layers.Dense(3)], input_shape=(6,), dtype="float64")
    python.compile(loss="cross_entropy", weighted_metrics=["accuracy"], backend="numpy")
    for m in (model, python):
        m.fit(x, y, class_weight=cfg["fit"]["class_weight"] if m is model else {2: 4.5},
              batch_size=4, epochs=2, progress=False, verbose=False)
    for a, b in zip(model.get_weights(), python.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad, message", [
    ("{7: 1.0}", "fit.class_weight: class_weight has the key 7, which is not a class: the "
                 "model's output (batch, 3) scores 3 classes, 0 to 2"),
    ("{a: 1.0}", "fit.class_weight.a: a class is an integer label, got 'a'"),
    ("{1: -2}", "expected a number >= 0, got -2"),
    ("[1, 2]", "fit.class_weight: expected a mapping {class: weight}"),
])
def test_bad_class_weight_in_a_spec_names_its_line(tmp_path, bad, message):
    text = WEIGHTED_YAML.replace("{0: 1.0, 2: 4.5}", bad)
    err = spec_error(tmp_path, "bad.yaml", text)
    assert err.line == line_of(text, "WEIGHTS") and message in str(err)
