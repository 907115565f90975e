"""Placeholder replaced by the rewrite pipeline (work in progress)."""


def rewrite_graph(outputs):
    return list(outputs), None
