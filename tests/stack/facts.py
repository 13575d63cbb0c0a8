"""What the code reads, found in the code itself (no Odoo import): the names the stack files must match."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "addons" / "ai_generation"
ROUTE = re.compile(r"@http\.route\(\s*\"([^\"]+)\"")


def addon_routes(controller: str) -> list[str]:
    """The paths of the @http.route decorators in addons/ai_generation/controllers/<controller>.py."""
    return ROUTE.findall((ADDON / "controllers" / f"{controller}.py").read_text())


def _int_expr(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add):
        left, right = _int_expr(node.left), _int_expr(node.right)
        return left * right if isinstance(node.op, ast.Mult) else left + right
    raise ValueError(f"not a constant integer expression: {ast.dump(node)}")


def module_int(path: Path, name: str) -> int:
    """The module-level integer constant ``name`` of a Python file (e.g. ``MAX_BODY_BYTES = 1024 * 1024``)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return _int_expr(node.value)
    raise LookupError(f"{name} not found in {path}")


def env_names_read(path: Path) -> set[str]:
    """AIGEN_* names in a file's string literals (what a script or module reads from the environment)."""
    return set(re.findall(r"[\"'](AIGEN_[A-Z0-9_]+)[\"']", path.read_text()))
