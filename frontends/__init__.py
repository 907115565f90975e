"""frontends: declarative model definition, compiled training, spec files and the CLI.

Built on ``symgraph`` (graph + grad) and ``codegen`` (the compiled step).
"""
