"""A formula in ρ and ρ̂ typed by a student, parsed safely and evaluated on numpy arrays or torch tensors.

The text is parsed with `ast.parse(mode="eval")`, which builds a syntax tree and runs nothing, and the tree
is walked against an allow-list: numbers, the names ρ and ρ̂ (`rho`, `rho_hat`), + − × ÷ and powers,
unary minus, and calls of a few maths functions by name. Everything else (attribute access, subscripts,
other names or calls, lambdas, comprehensions, strings) is refused with `FormulaError`, a one-line
message for the student, before anything is evaluated. The text's length, the tree's size and depth and
constant exponents are bounded, so no formula can hang the server or exhaust its memory; evaluation is
this module's own walk over the tree in float64 (or the tensors' dtype), where an overflow is an inf, not
an exception.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MAX_LENGTH = 300
"""Characters a formula may have (KL written out at length is about 60)."""
MAX_NODES = 200
"""Nodes of its syntax tree."""
MAX_DEPTH = 30
"""Nesting of its syntax tree, and of its parentheses."""
MAX_EXPONENT = 10.0
"""Largest |p| of a constant power x**p: 9**9**9 is refused before anything is computed."""

NAMES = {"rho": "rho", "rho_hat": "rho_hat"}
"""What a formula may name, and what each name stands for."""
SYMBOLS = (("ρ̂", "rho_hat"), ("ρ", "rho"), ("−", "-"), ("·", "*"), ("×", "*"), ("÷", "/"))
"""Typed symbols and their ASCII spelling (ρ̂ first: it is ρ followed by a combining circumflex U+0302)."""

NUMPY_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "log": np.log,
    "ln": np.log,
    "log10": np.log10,
    "log2": np.log2,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
TORCH_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "log": torch.log,
    "ln": torch.log,
    "log10": torch.log10,
    "log2": torch.log2,
    "log1p": torch.log1p,
    "exp": torch.exp,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
}
FUNCTIONS = tuple(NUMPY_FUNCTIONS)
"""The functions a formula may call, one argument each (log and ln are the natural logarithm)."""
OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
REFUSED_OPERATORS = {
    ast.BitXor: "^ is not a power here: write ** (rho**2)",
    ast.FloorDiv: "// is not allowed",
}


class FormulaError(ValueError):
    """A formula the parser refuses; str() is one line that says what is not allowed."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its text as typed, its normalised text, and its checked syntax tree."""

    text: str
    normalised: str
    tree: ast.expr

    def numpy(self, rho: Any, rho_hat: Any) -> np.ndarray:
        """The formula in float64 over arrays that broadcast (rho: [R, 1], rho_hat: [Q] -> [R, Q]).
        Overflow, division by zero and logs of negatives give inf or nan, never an exception."""
        rho, rho_hat = np.asarray(rho, dtype=np.float64), np.asarray(rho_hat, dtype=np.float64)
        with np.errstate(all="ignore"):
            value = _evaluate(self.tree, {"rho": rho, "rho_hat": rho_hat}, np.float64, NUMPY_FUNCTIONS)
            return np.broadcast_to(np.asarray(value, dtype=np.float64), np.broadcast(rho, rho_hat).shape)

    def torch(self, rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
        """The formula on a tensor of ρ̂ (any shape, differentiable), ρ a number: the student's penalty as
        training computes it, with the tensor's dtype and device."""

        def const(v: float) -> torch.Tensor:
            return torch.tensor(v, dtype=rho_hat.dtype, device=rho_hat.device)

        value = _evaluate(self.tree, {"rho": const(rho), "rho_hat": rho_hat}, const, TORCH_FUNCTIONS)
        return value.expand_as(rho_hat) if value.shape != rho_hat.shape else value


def normalise(text: str) -> str:
    """The typed text with ρ, ρ̂ and the maths signs −, ·, ×, ÷ in ASCII, and blanks trimmed."""
    for symbol, ascii_text in SYMBOLS:
        text = text.replace(symbol, ascii_text)
    return text.strip()


def parse(text: str) -> Formula:
    """Parse and check a formula; FormulaError (one line, what is not allowed) when it is refused."""
    if not isinstance(text, str):
        raise FormulaError("the formula must be text")
    clean = normalise(text)
    if not clean:
        raise FormulaError("the formula is empty: type an expression in rho and rho_hat")
    if len(clean) > MAX_LENGTH:
        raise FormulaError(f"the formula is too long ({len(clean)} characters; at most {MAX_LENGTH})")
    _check_brackets(clean)
    try:
        tree = ast.parse(clean, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        where = f" at character {e.offset}" if isinstance(e, SyntaxError) and e.offset else ""
        raise FormulaError(f"the formula is not a valid expression{where}") from None
    _check_size(tree)
    _check_nodes(tree)
    return Formula(text=text, normalised=clean, tree=tree)


def _check_brackets(text: str) -> None:
    depth = 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth > MAX_DEPTH:
            raise FormulaError(f"brackets are nested too deeply (at most {MAX_DEPTH} levels)")


def _check_size(tree: ast.expr) -> None:
    """Count nodes and measure depth without recursion, before anything else walks the tree."""
    stack, count = [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise FormulaError(f"the formula is too big (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise FormulaError(f"the formula is nested too deeply (at most {MAX_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _check_nodes(node: ast.AST) -> None:
    """Refuse every node outside the allow-list (the tree is small and shallow by now)."""
    if isinstance(node, ast.Constant):
        _check_number(node.value)
    elif isinstance(node, ast.Name):
        if node.id not in NAMES:
            raise FormulaError(f"unknown name {node.id!r}: use rho and rho_hat (or ρ and ρ̂)")
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise FormulaError(f"the operator {type(node.op).__name__} is not allowed; use + - * / **")
        _check_nodes(node.operand)
    elif isinstance(node, ast.BinOp):
        if type(node.op) in REFUSED_OPERATORS:
            raise FormulaError(REFUSED_OPERATORS[type(node.op)])
        if type(node.op) not in OPERATORS:
            raise FormulaError(f"the operator {type(node.op).__name__} is not allowed; use + - * / **")
        _check_nodes(node.left)
        _check_nodes(node.right)
        if isinstance(node.op, ast.Pow):
            _check_exponent(node.right)
    elif isinstance(node, ast.Call):
        _check_call(node)
    else:
        raise FormulaError(
            f"{_describe(node)} is not allowed: only numbers, rho, rho_hat, + - * / ** and "
            f"{', '.join(FUNCTIONS)}"
        )


def _check_number(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "text" if isinstance(value, str | bytes) else type(value).__name__
        raise FormulaError(f"only numbers may appear as constants, not {kind}")
    try:
        number = float(value)
    except OverflowError:
        raise FormulaError("a number in the formula is too large") from None
    if not math.isfinite(number) or abs(number) > 1e12:
        raise FormulaError("a number in the formula is too large (at most 1e12)")


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name):
        raise FormulaError(f"only {', '.join(FUNCTIONS)} may be called, by name")
    name = node.func.id
    if name not in NUMPY_FUNCTIONS:
        raise FormulaError(f"{name}() is not allowed: the functions are {', '.join(FUNCTIONS)}")
    if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
        raise FormulaError(f"{name}() takes exactly one argument")
    _check_nodes(node.args[0])


def _check_exponent(node: ast.expr) -> None:
    """A power whose exponent is a constant is bounded by MAX_EXPONENT (one in ρ or ρ̂ is at most an inf)."""
    if any(isinstance(n, ast.Name) for n in ast.walk(node)):
        return
    with np.errstate(all="ignore"):
        value = float(_evaluate(node, {}, np.float64, NUMPY_FUNCTIONS))
    if not abs(value) <= MAX_EXPONENT:  # also refuses nan
        raise FormulaError(f"exponents are limited to ±{MAX_EXPONENT:g} (this one is {value:.3g})")


def _describe(node: ast.AST) -> str:
    names = {
        ast.Attribute: "attribute access (a.b)",
        ast.Subscript: "indexing (a[i])",
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.Compare: "a comparison",
        ast.BoolOp: "and / or",
        ast.IfExp: "if / else",
        ast.NamedExpr: "an assignment (:=)",
        ast.JoinedStr: "text",
    }
    return names.get(type(node), type(node).__name__)


def _evaluate(node: ast.expr, names: dict[str, Any], const: Callable[[float], Any], functions: dict) -> Any:
    """The value of a checked tree: numbers through `const` (np.float64 or a tensor), names from `names`."""
    if isinstance(node, ast.Constant):
        return const(float(node.value))
    if isinstance(node, ast.Name):
        return names[NAMES[node.id]]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, names, const, functions)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left = _evaluate(node.left, names, const, functions)
        right = _evaluate(node.right, names, const, functions)
        return OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.Call):
        return functions[node.func.id](_evaluate(node.args[0], names, const, functions))
    raise FormulaError(f"{_describe(node)} is not allowed")  # unreachable after _check_nodes
