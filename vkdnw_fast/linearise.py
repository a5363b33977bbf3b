"""A function's tangent map with its primal computed once, each tangent run only where it is not zero.

Forward mode by ``torch.func.jvp`` computes the primal next to the tangents, so a scoring with P tangents
in blocks of c runs the network's primal P/c times more. ``Linearised(fn, sizes)`` traces ``fn`` (of a
few 1-d shift vectors) once under forward-mode AD (``make_fx`` on the real tensors), computes what does not
depend on a tangent once, in the graph's order, keeping only the constants a tangent op reads (the primal is
never held whole: the rest is let go after its last use), and keeps the graph of tangent ops alone.
``column(i, tangent)`` runs that graph with the tangent of input i and every other input's known to be
zero: a node whose tangent inputs are all zero is skipped, so a weight's tangent costs the part of the
network from its layer on.

The graph is the tangent map at this one point: the trace runs on the real tensors, so Python control
flow on their values is taken as it was. Where a traced op writes in place into a tangent that is zero
for some input, that input's columns run the whole graph, its zero tangents materialised; a graph that
would write a tangent into a constant is refused (``ValueError``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.autograd.forward_ad as fwAD
from torch import fx
from torch.fx.experimental.proxy_tensor import make_fx

_LIVE, _ZERO, _CONSTANT = "live", "zero", "constant"


class _Zero:
    """The value of a node known to be zero: materialised, from the trace's metadata, only where a live
    node reads it."""

    def __init__(self, node: fx.Node):
        self.node = node

    def materialise(self) -> torch.Tensor:
        like = self.node.meta["val"]
        return torch.empty_strided(like.shape, like.stride(), dtype=like.dtype, device=like.device).zero_()


def _materialised(value):
    return fx.node.map_aggregate(value, lambda v: v.materialise() if isinstance(v, _Zero) else v)


def _written(node: fx.Node) -> list[fx.Node]:
    """The nodes an op writes into (its schema's mutable arguments)."""
    schema = getattr(node.target, "_schema", None)
    if schema is None or not schema.is_mutable:
        return []
    written = []
    for position, argument in enumerate(schema.arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        value = node.kwargs.get(argument.name) if argument.kwarg_only or position >= len(node.args) \
            else node.args[position]
        written += [n for n in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(n, fx.Node)]
    return written


class _Pruned(fx.Interpreter):
    """Runs the traced graph for one live input: constants from the cache, zero nodes skipped."""

    def __init__(self, module: fx.GraphModule, status: dict[fx.Node, str], constants: dict[fx.Node, object]):
        super().__init__(module)  # each tangent freed after its last use
        self.status, self.constants = status, constants

    def run_node(self, node: fx.Node):
        if node.op == "placeholder":
            value = super().run_node(node)
            return _Zero(node) if self.status[node] == _ZERO else value
        if node.op == "output":
            return _materialised(self.fetch_args_kwargs_from_env(node)[0][0])
        if self.status[node] == _CONSTANT:
            return self.constants.get(node)  # None: read by constants alone, let go after them
        if self.status[node] == _ZERO:
            return _Zero(node)
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        if node.target is torch.ops.aten.add.Tensor and not kwargs:
            # A sampled layer's tangent is its input's (zero before it) plus its own weight's term.
            zeros = [isinstance(a, _Zero) for a in args]
            if zeros.count(True) == 1:
                live, like = args[zeros.index(False)], node.meta["val"]
                # As the trace had it: a later view may depend on the strides.
                if isinstance(live, torch.Tensor) and live.shape == like.shape and live.stride() == like.stride():
                    return live
        return getattr(self, node.op)(node.target, *_materialised((args, kwargs)))


class Linearised:
    """The tangent map of ``fn(*shifts)`` at zero shifts, ``shifts[i]`` of ``sizes[i]`` elements: ``column(i,
    tangent)`` is the tangent of ``fn``'s tensor output for ``tangent`` on shift i and zero on the others."""

    def __init__(self, fn: Callable[..., torch.Tensor], sizes: list[int], dtype: torch.dtype,
                 device: torch.device):
        origin = [torch.zeros(n, dtype=dtype, device=device) for n in sizes]  # constants, not the tangents'

        def tangent_map(*tangents):
            with fwAD.dual_level():
                duals = [fwAD.make_dual(p, t) for p, t in zip(origin, tangents)]
                return fwAD.unpack_dual(fn(*duals)).tangent

        with torch.no_grad():
            self.module = make_fx(tangent_map)(*[torch.zeros(n, dtype=dtype, device=device) for n in sizes])
        # Forward AD's shape checks go first: they read tangents, and would keep what they read.
        self.module.graph.eliminate_dead_code()
        self.module.recompile()
        self.inputs = [n for n in self.module.graph.nodes if n.op == "placeholder"]
        self.sizes = sizes
        self.constants, self.dependent = self._constants()
        self._runners: dict[int, _Pruned] = {}

    def _constants(self) -> tuple[dict[fx.Node, object], set[fx.Node]]:
        """The value of every node that depends on no tangent and that one which does reads, computed once in
        the graph's order (an in-place op on a constant, such as an in-place ReLU's, acts on it as in the
        trace), each other constant let go after its last use; and the nodes that depend on a tangent."""
        nodes = [n for n in self.module.graph.nodes if n.op not in ("placeholder", "output")]
        tangent_dependent = set(self.inputs)
        for node in nodes:
            if any(n in tangent_dependent for n in node.all_input_nodes):
                tangent_dependent.add(node)
                if any(n not in tangent_dependent and n.op != "placeholder" for n in _written(node)):
                    raise ValueError(f"the traced tangent map writes a tangent into a constant ({node.format_node()})")
        read = {n for node in self.module.graph.nodes if node in tangent_dependent or node.op == "output"
                for n in node.all_input_nodes if n not in tangent_dependent}
        last_use = {n: node for node in nodes if node not in tangent_dependent for n in node.all_input_nodes}
        interpreter = fx.Interpreter(self.module, garbage_collect_values=False)
        with torch.no_grad():
            for node in nodes:
                if node in tangent_dependent:
                    continue
                args, kwargs = interpreter.fetch_args_kwargs_from_env(node)
                interpreter.env[node] = getattr(interpreter, node.op)(node.target, args, kwargs)
                for n in node.all_input_nodes:  # the whole primal is never held at once
                    if last_use[n] is node and n not in read:
                        del interpreter.env[n]
        return {node: interpreter.env[node] for node in read}, tangent_dependent

    def _status_for(self, live: int) -> dict[fx.Node, str]:
        status = {node: _CONSTANT for node in self.module.graph.nodes
                  if node.op not in ("placeholder", "output") and node not in self.dependent}
        for node in self.module.graph.nodes:
            if node in status:
                continue
            if node.op == "placeholder":
                status[node] = _LIVE if node is self.inputs[live] else _ZERO
                continue
            seen = {status[n] for n in node.all_input_nodes}
            status[node] = _LIVE if _LIVE in seen else _ZERO if _ZERO in seen else _CONSTANT
            if status[node] == _LIVE and any(status[n] == _ZERO for n in _written(node)):
                # Writing into a tangent known zero would leave its other readers with the zero:
                # this input's columns run the whole graph.
                status = {n: (_CONSTANT if s == _CONSTANT else _LIVE) for n, s in status.items()}
                status.update({n: _LIVE for n in self.module.graph.nodes if n not in status})
                break
        return status

    def column(self, live: int, tangent: torch.Tensor) -> torch.Tensor:
        """The output's tangent for ``tangent`` (``sizes[live]`` elements) on input ``live``."""
        if live not in self._runners:  # one per input: its status, and the interpreter's last uses, once
            self._runners[live] = _Pruned(self.module, self._status_for(live), self.constants)
        args = [tangent if i == live else torch.zeros(n, dtype=tangent.dtype, device=tangent.device)
                for i, n in enumerate(self.sizes)]
        with torch.no_grad():
            return self._runners[live].run(*args)
