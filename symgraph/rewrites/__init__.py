"""Graph rewrites run by ``sg.function`` before evaluation (``rewrite=False`` turns them off).

``pipeline`` holds the walker, the stages and the report; ``rules`` holds the
table of local algebraic rules. Callers import from the package:
``from symgraph.rewrites import rewrite_graph``.
"""

from symgraph.rewrites.pipeline import (
    FOLD_MAX_ELEMENTS,
    MAX_RULE_DEPTH,
    NEVER_FOLD,
    RULE_ERRORS,
    RewriteReport,
    RuleErrorWarning,
    StageReport,
    count_nodes,
    rewrite_graph,
)
from symgraph.rewrites.rules import RULES, Rule, rule_key

__all__ = ["FOLD_MAX_ELEMENTS", "MAX_RULE_DEPTH", "NEVER_FOLD", "RULES", "RULE_ERRORS",
           "RewriteReport", "Rule", "RuleErrorWarning", "StageReport", "count_nodes",
           "rewrite_graph", "rule_key"]
