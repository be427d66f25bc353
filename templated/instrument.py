"""The compile-time side of the sandbox: refusing what templates may not contain, and
planting the budget hooks (`herald_*` filters the sandbox defines) in the parsed tree."""

from __future__ import annotations

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.visitor import NodeTransformer

INTERNAL_FILTER_PREFIX = "herald_"
ITER_FILTER = "herald_iter"
EMIT_FILTER = "herald_emit"
CHARGE_FILTER = "herald_charge"
VALUE_FILTER = "herald_value"
MAX_NESTING = 16
_BLOCKS = (
    nodes.For,
    nodes.If,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.With,
    nodes.AssignBlock,
    nodes.Block,
    nodes.ScopedEvalContextModifier,
)


class _Instrument(NodeTransformer):
    """Routes loops, output and concatenation of a parsed template through the hooks."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _filter(node.iter, ITER_FILTER)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_filter(child, VALUE_FILTER) for child in node.nodes]
        return _filter(node, VALUE_FILTER)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        static = sum(len(c.data) for c in node.nodes if isinstance(c, nodes.TemplateData))
        children: list[nodes.Expr] = [
            c if isinstance(c, nodes.TemplateData) else _filter(c, EMIT_FILTER) for c in node.nodes
        ]
        if static:
            children.append(_filter(nodes.Const(static, lineno=node.lineno), CHARGE_FILTER))
        node.nodes = children
        return node


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def instrument(tree: nodes.Template, environment: Environment) -> nodes.Template:
    """The tree with its budget hooks, ready for `environment.from_string`."""
    result = _Instrument().visit(tree)
    assert isinstance(result, nodes.Template)
    result.set_environment(environment)
    return result


def check_tree(tree: nodes.Template) -> None:
    """Refuses, with its line, what a notification template has no use for and private
    names that can only be an attempt at Python internals."""
    for node in tree.find_all(nodes.Node):
        message = _refusal(node)
        if message is not None:
            raise TemplateSyntaxError(message, node.lineno)
    _check_nesting(tree, 0)


def _check_nesting(node: nodes.Node, depth: int) -> None:
    """Statement blocks nest at most MAX_NESTING deep (compiling deeper costs seconds)."""
    for child in node.iter_child_nodes():
        inner = depth + isinstance(child, _BLOCKS)
        if inner > MAX_NESTING:
            raise TemplateSyntaxError(
                f"blocks are nested more than {MAX_NESTING} levels deep", child.lineno
            )
        _check_nesting(child, inner)


def _refusal(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport):
        return "extends, include and import are not available: a template stands alone"
    if isinstance(node, nodes.For) and node.recursive:
        return "recursive loops are not allowed"
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return f"access to {node.attr!r} is not allowed"
    if isinstance(node, nodes.Name) and node.name.startswith("__"):
        return f"the name {node.name!r} is not allowed"
    if isinstance(node, nodes.Filter) and node.name.startswith(INTERNAL_FILTER_PREFIX):
        return f"no filter named {node.name!r}"
    key: nodes.Node | None = None
    if isinstance(node, nodes.Getitem):
        key = node.arg
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        key = node.args[0]
    if isinstance(key, nodes.Const) and isinstance(key.value, str) and key.value.startswith("_"):
        return f"access to {key.value!r} is not allowed"
    return None
