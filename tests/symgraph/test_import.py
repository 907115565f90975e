"""`import symgraph` stays light: no llvmlite or networkx until they are used."""

import subprocess
import sys


def test_import_does_not_load_llvmlite_or_networkx():
    code = ("import sys, symgraph; "
            "print('llvmlite' in sys.modules, 'networkx' in sys.modules, 'codegen' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


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
