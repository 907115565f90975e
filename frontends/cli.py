"""The ``symgraph`` command line.

``symgraph info`` reports versions and what this machine offers the
compiler; ``symgraph train`` arrives with the model API (frontends issue).
"""

from __future__ import annotations

import argparse
import platform
import sys


def _info() -> int:
    import numpy
    import sympy

    import symgraph

    print(f"symgraph {symgraph.__version__}")
    print(f"python   {platform.python_version()} ({platform.machine()})")
    print(f"numpy    {numpy.__version__}")
    print(f"sympy    {sympy.__version__}")
    try:
        import llvmlite
        import llvmlite.binding as llvm
        llvm_version = ".".join(map(str, llvm.llvm_version_info))
        print(f"llvmlite {llvmlite.__version__} (LLVM {llvm_version})")
    except ImportError as err:  # the llvm backend needs it; the numpy reference does not
        print(f"llvmlite not importable: {err}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symgraph", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="versions of symgraph and its dependencies")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
