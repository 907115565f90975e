"""Repeated structure for ``sg.render``: runs of equal units, to draw once with a "×N".

A 100-layer network built in a loop is 100 copies of one layer's nodes (its forward ops,
the gradient nodes ``grad`` made for them, its weights and their updates). Drawn node by
node nobody can read it, and a ``max_nodes`` cap shows only its start. This module finds
the copies; ``symgraph.rendering`` then draws the first and last unit of each run in full
and the units between them as one block ("dense_3 … dense_99, ×97 like dense_2").

Two signals propose units:

* sibling name scopes (``dense_1``, ``dense_2``, ... under the same parent): a unit is
  everything in the scope -- nested scopes, the gradient nodes of its ops (``grad`` puts
  them in the forward node's scope), its weights (named ``<scope>/W``, or read only by
  the unit and by update arithmetic: ``W3 - lr * g``);
* creation sites, for nodes outside such runs (graphs built without scopes): a loop
  repeats a sequence of (source line, op, type) in creation order; a unit is one period.
  Gradient nodes count at the line of the forward node they differentiate.

A proposal is confirmed by a structural signature -- each node's op, role, type and
inputs, an input from outside the unit reduced to its type -- so two kinds of layer
never merge, and a run is cut where the structure changes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from symgraph.graph import Apply, Constant, Variable
from symgraph.printing import constant_text, op_label, op_name

#: Fewer equal units in a row are drawn in full (the first and last are always drawn,
#: so the smallest block stands for three units).
MIN_RUN = 5
#: Longest period (in nodes) of a site sequence that counts as one loop iteration.
MAX_PERIOD = 64
#: Ops compared without their parameters (a static index and its gradient's scatter).
INDEXING = ("getitem", "setitem_zeros")
#: Leaves a unit may own: a parameter or constant used only by one unit's nodes.
OWNABLE = ("parameter", "constant")


@dataclass
class Block:
    """The middle units of one run, drawn as one node per part (forward, gradient...)."""

    number: int
    kind: str                 # "scope" (sibling name scopes) or "site" (a loop's lines)
    count: int                # units collapsed
    first: str                # names of the first and last collapsed unit
    last: str
    like: str                 # the drawn unit they repeat (the run's first)
    scope: str | None         # scope the block is drawn in
    members: list[Variable]
    unit_of: dict[int, int] = field(default_factory=dict)  # member id -> unit number

    @property
    def title(self) -> str:
        return self.first if self.first == self.last else f"{self.first} … {self.last}"


@dataclass
class _Run:
    kind: str
    parent: str | None
    names: list[str]
    units: list[list[Variable]]


def find_blocks(nodes: Sequence[Apply], reached: Sequence[Variable], role: dict[int, str],
                scope: dict[int, str | None], grad_calls: dict[object, int]) -> list[Block]:
    """Blocks of repeated units among ``reached`` (``role``/``scope`` as in ``DrawnGraph``)."""
    finder = _Finder(nodes, reached, role, scope, grad_calls)
    runs = finder.scope_runs()
    runs += finder.site_runs({v.id for run in runs for unit in run.units for v in unit})
    blocks = []
    for run in sorted(runs, key=lambda r: min(v.id for v in r.units[1])):
        middle = run.units[1:-1]
        block = Block(number=len(blocks), kind=run.kind, count=len(middle),
                      first=run.names[1], last=run.names[-2], like=run.names[0],
                      scope=run.parent, members=[v for unit in middle for v in unit])
        block.unit_of = {v.id: k for k, unit in enumerate(middle) for v in unit}
        blocks.append(block)
    return blocks


class _Finder:
    def __init__(self, nodes, reached, role, scope, grad_calls):
        self.nodes, self.role, self.scope, self.grad_calls = nodes, role, scope, grad_calls
        self.reached = sorted(reached, key=lambda v: v.id)  # creation order
        self.consumers: dict[int, list[Apply]] = defaultdict(list)
        for node in nodes:
            for inp in node.inputs:
                if inp.owner is None:
                    self.consumers[inp.id].append(node)
        self.labels: dict[int, str] = {}

    def label(self, node: Apply) -> str:
        """The op and its parameters, except a static index's: the steps of an unrolled
        loop read ``x[:, t]`` (and their gradients write it) for their own ``t``, and are
        otherwise the same unit."""
        key = id(node)
        if key not in self.labels:
            name = op_name(node.op)
            self.labels[key] = name if name in INDEXING else op_label(node)
        return self.labels[key]

    # ----------------------------------------------------------------- signatures

    def signature(self, members: list[Variable], root_depth: int) -> tuple:
        """Ops, roles, types and wiring of ``members`` (sorted by id), names left out."""
        local = {v.id: i for i, v in enumerate(members)}
        outside: dict[int, int] = {}
        parts: list[tuple] = []
        for var in members:
            role = self.role[var.id]
            if var.owner is None:
                value = constant_text(var) if isinstance(var, Constant) else None
                parts.append(("leaf", role, str(var.type), value))
                continue
            refs = tuple(local[i.id] if i.id in local else
                         ("x", outside.setdefault(i.id, len(outside)), str(i.type))
                         for i in var.owner.inputs)
            inner = (var.owner.scope or "").split("/")[root_depth:]
            call = self.grad_calls.get(var.owner.grad_call)
            parts.append((self.label(var.owner), var.index, role, str(var.type), call,
                          tuple(inner), refs))
        return tuple(parts)

    @staticmethod
    def equal_runs(signatures: list[tuple]) -> list[tuple[int, int]]:
        """(start, stop) of the maximal stretches of at least MIN_RUN equal signatures."""
        runs, start = [], 0
        for k in range(1, len(signatures) + 1):
            if k == len(signatures) or signatures[k] != signatures[start]:
                if k - start >= MIN_RUN:
                    runs.append((start, k))
                start = k
        return runs

    # ----------------------------------------------------------------- sibling scopes

    def scope_runs(self) -> list[_Run]:
        under: dict[tuple, list[Variable]] = defaultdict(list)   # scope path -> members
        children: dict[tuple, list[tuple]] = defaultdict(list)   # in creation order
        for var in self.reached:
            text = self.scope[var.id]
            if not text:
                continue
            parts = tuple(text.split("/"))
            for depth in range(1, len(parts) + 1):
                path = parts[:depth]
                if path not in under:
                    children[path[:-1]].append(path)
                under[path].append(var)
        runs: list[_Run] = []
        self._scope_level((), children, under, runs)
        return runs

    def _scope_level(self, parent: tuple, children, under, runs: list[_Run]) -> None:
        kids = children.get(parent, [])
        collapsed: set[tuple] = set()
        if len(kids) >= MIN_RUN:
            units = [self._with_owned_leaves(under[kid]) for kid in kids]
            signatures = [self.signature(unit, len(parent) + 1) for unit in units]
            for start, stop in self.equal_runs(signatures):
                runs.append(_Run("scope", "/".join(parent) or None,
                                 [kid[-1] for kid in kids[start:stop]], units[start:stop]))
                collapsed.update(kids[start + 1:stop - 1])
        for kid in kids:
            if kid not in collapsed:
                self._scope_level(kid, children, under, runs)

    def _with_owned_leaves(self, members: list[Variable]) -> list[Variable]:
        """Add the unscoped parameters and constants only this unit's nodes read, besides
        the update arithmetic (SGD's ``W - lr * g`` reads every weight, outside all scopes:
        left out, each weight of a collapsed run was drawn as a node of its own)."""
        inside = {v.owner for v in members if v.owner is not None}
        ids = {v.id for v in members}
        extra = {}
        for node in inside:
            for inp in node.inputs:
                if (inp.owner is None and inp.id not in ids and self.scope[inp.id] is None
                        and self.role[inp.id] in OWNABLE
                        and all(c in inside or self.role[c.outputs[0].id] == "update"
                                for c in self.consumers[inp.id])):
                    extra[inp.id] = inp
        return sorted([*members, *extra.values()], key=lambda v: v.id)

    # ----------------------------------------------------------------- creation sites

    def site_runs(self, taken: set[int]) -> list[_Run]:
        by_scope: dict[str | None, list[Apply]] = defaultdict(list)
        seen: set[int] = set()
        for var in self.reached:
            node = var.owner
            if node is None or id(node) in seen or var.id in taken:
                continue
            seen.add(id(node))
            by_scope[node.scope].append(node)
        proposals: list[list[list[Apply]]] = []
        for sequence in by_scope.values():
            proposals.extend(self._periodic(sequence))
        unit_at = {id(node): (r, k) for r, units in enumerate(proposals)
                   for k, unit in enumerate(units) for node in unit}
        owned: dict[tuple[int, int], list[Variable]] = defaultdict(list)
        for var in self.reached:
            if var.owner is not None or var.id in taken or self.role[var.id] not in OWNABLE:
                continue
            where = [unit_at.get(id(c)) for c in self.consumers[var.id]]
            if not where or None in where:
                continue
            per_run = defaultdict(set)
            for r, k in where:
                per_run[r].add(k)
            if all(len(ks) == 1 for ks in per_run.values()):
                owned[where[0]].append(var)  # consumers are in creation order: the first
        runs: list[_Run] = []
        for r, units in enumerate(proposals):
            members = [sorted([o for n in unit for o in n.outputs] + owned[(r, k)],
                              key=lambda v: v.id) for k, unit in enumerate(units)]
            signatures = [self.signature(unit, 0) for unit in members]
            for start, stop in self.equal_runs(signatures):
                names = [self._site_name(units[k]) for k in range(start, stop)]
                runs.append(_Run("site", units[start][0].scope, names, members[start:stop]))
        return runs

    def _site_key(self, node: Apply) -> tuple:
        site = node.grad_of.site if node.grad_of is not None else node.site
        where = (site.filename, site.lineno) if site is not None else None
        return (where, self.label(node), self.role[node.outputs[0].id],
                tuple(str(o.type) for o in node.outputs))

    @staticmethod
    def _site_name(unit: list[Apply]) -> str:
        lines = sorted({(n.grad_of or n).site.lineno for n in unit if (n.grad_of or n).site})
        if not lines:
            return "loop"
        site = (unit[0].grad_of or unit[0]).site
        span = str(lines[0]) if len(lines) == 1 else f"{lines[0]}-{lines[-1]}"
        return f"{os.path.basename(site.filename)}:{span}"

    @staticmethod
    def _aligned(sequence: list[Apply], position: dict[int, int], i: int, p: int,
                 end: int) -> int:
        """Where in ``[i, i + p)`` a loop iteration starts: the shift with the fewest edges
        from one period into the next (a period that starts mid-iteration, after a first
        node that differs, reads its predecessor's last nodes)."""
        def crossing(start: int) -> int:
            return sum(start <= position.get(id(inp.owner), -1) < start + p
                       for node in sequence[start + p: start + 2 * p] for inp in node.inputs)

        shifts = [s for s in range(p) if (end - i - s) // p >= MIN_RUN]
        return i + min(shifts, key=lambda s: (crossing(i + s), s))

    def _periodic(self, sequence: list[Apply]) -> list[list[list[Apply]]]:
        """Stretches where the site keys repeat with a period: each as its list of units."""
        n = len(sequence)
        if n < MIN_RUN:
            return []
        codes: dict[tuple, int] = {}
        keys = np.array([codes.setdefault(self._site_key(s), len(codes)) for s in sequence])
        # per period p and start i: how many keys from i on equal the key p further on,
        # so the stretch from i repeats 1 + that // p times; keep the period that covers
        # the most nodes (the smallest on a tie: the finest unit)
        periods = range(1, min(MAX_PERIOD, n // MIN_RUN) + 1)
        stretch = np.zeros((len(periods), n), dtype=np.int64)  # periodic nodes from i on
        cover = np.zeros((len(periods), n), dtype=np.int64)
        for row, p in enumerate(periods):
            equal = np.append(keys[:-p] == keys[p:], np.zeros(p + 1, dtype=bool))
            rev = equal[::-1]
            last_false = np.maximum.accumulate(np.where(rev, 0, np.arange(rev.size)))
            lengths = (np.arange(rev.size) - last_false)[::-1][:n]
            stretch[row] = p + lengths
            repeats = 1 + lengths // p
            cover[row] = np.where(repeats >= MIN_RUN, repeats * p, 0)
        best = cover.argmax(axis=0)
        position = {id(node): k for k, node in enumerate(sequence)}
        found, i = [], 0
        while i < n:
            row = best[i]
            if cover[row, i] == 0:
                i += 1
                continue
            p, end = periods[row], i + int(stretch[row, i])
            start = self._aligned(sequence, position, i, p, end)
            repeats = (end - start) // p
            found.append([sequence[start + k * p: start + (k + 1) * p] for k in range(repeats)])
            i = start + repeats * p
        return found
