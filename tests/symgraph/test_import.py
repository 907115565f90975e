"""`import symgraph` stays light: no llvmlite, networkx, graphviz or codegen until used."""

import subprocess
import sys


def test_import_does_not_load_llvmlite_networkx_graphviz_or_codegen():
    heavy = ("llvmlite", "networkx", "graphviz", "codegen")
    code = f"import sys, symgraph; print(*[m in sys.modules for m in {heavy!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert dict(zip(heavy, out.stdout.split())) == dict.fromkeys(heavy, "False")


def test_public_names_of_the_api_contract_exist():
    import symgraph as sg
    names = ("exp log log1p expm1 sqrt square abs sign sin cos tanh maximum minimum where clip "
             "sum mean max min matmul dot transpose reshape concatenate stack zeros_like "
             "ones_like cast argmax logsumexp arange stop_gradient tensor scalar vector matrix "
             "shared constant grad hessian jacobian hvp function pprint debugprint to_dot "
             "to_networkx check_grad").split()
    missing = [n for n in names if not hasattr(sg, n)]
    nn_names = ("sigmoid relu leaky_relu softplus hard_tanh softmax log_softmax one_hot "
                "cross_entropy binary_cross_entropy mse dropout").split()
    missing += ["nn." + n for n in nn_names if not hasattr(sg.nn, n)]
    assert missing == []
