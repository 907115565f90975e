"""The rewrite pipeline's entry point (kept here: ``function`` imports it from this module).

The pipeline lives in ``symgraph.rewrites``: ``pipeline`` (walker, stages,
report) and ``rules`` (the table of local algebraic rules).

>>> new_outputs, report = rewrite_graph([loss, *grads])
"""

from symgraph.rewrites import (
    FOLD_MAX_ELEMENTS,
    MAX_RULE_DEPTH,
    NEVER_FOLD,
    RULES,
    RewriteReport,
    Rule,
    StageReport,
    count_nodes,
    rewrite_graph,
    rule_key,
)

__all__ = ["FOLD_MAX_ELEMENTS", "MAX_RULE_DEPTH", "NEVER_FOLD", "RULES", "RewriteReport", "Rule",
           "StageReport", "count_nodes", "rewrite_graph", "rule_key"]
