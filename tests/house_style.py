"""Figures of the house style, measured from the source: `python tests/house_style.py [PACKAGE...]`.

Prints, per package folder: lines, formatted lines, public top-level names, the docstring ratio
(non-blank docstring lines per other non-blank, non-comment line) and the highest cyclomatic
complexity (radon's count: branches and boolean operands). tests/test_layout.py holds the
packages to the limits below.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")
MAX_DOCSTRING_RATIO = 0.35
MAX_COMPLEXITY = 15
MAX_FORMATTED_LINES = 500


def docstring_lines(source: str) -> set[int]:
    """Line numbers (1-based) that belong to a module, class or function docstring."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    lines |= set(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def code_lines(source: str) -> set[int]:
    """Line numbers that hold a token other than a comment, newline or indentation."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines |= set(range(token.start[0], token.end[0] + 1))
    return lines


def docstring_ratio(paths) -> float:
    """Non-blank docstring lines over the other non-blank, non-comment lines of `paths`, summed."""
    docs = other = 0
    for path in paths:
        source = Path(path).read_text()
        doc, code, lines = docstring_lines(source), code_lines(source), source.splitlines()
        docs += sum(1 for n in doc if lines[n - 1].strip())
        other += len(code - doc)
    return docs / other


def public_names(path) -> list[str]:
    """Top-level functions, classes and assigned names of one module not starting with `_`."""
    names = []
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_")]


def formatted_lines(path) -> int:
    """Lines of the module as `ruff format` (the project's settings) would write it."""
    source = Path(path).read_text()
    done = subprocess.run(
        [RUFF, "format", "--stdin-filename", str(path), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return len(done.stdout.splitlines())


BRANCHES = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.match_case)


def complexity(fn) -> int:
    """Cyclomatic complexity of one function, as radon counts it: 1, plus 1 per branch (if, elif,
    conditional expression, loop, except, case, comprehension `for` and `if`), plus 1 per extra
    operand of `and`/`or`. Nested functions and classes count on their own."""
    count, todo = 1, list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, BRANCHES):
            count += 1
        elif isinstance(node, ast.comprehension):
            count += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        todo.extend(ast.iter_child_nodes(node))
    return count


def complexities(paths) -> dict[str, int]:
    """Complexity of every function and method of `paths`, as `path:line name` -> count."""
    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = Path(path).resolve().relative_to(ROOT)
                found[f"{where}:{node.lineno} {node.name}"] = complexity(node)
    return found


def figures(package: Path) -> dict:
    """The figures of one package folder, as printed by `main`."""
    paths = sorted(package.rglob("*.py"))
    most = max(complexities(paths).items(), key=lambda item: item[1])
    return {
        "modules": len(paths),
        "lines": sum(len(p.read_text().splitlines()) for p in paths),
        "formatted lines": sum(formatted_lines(p) for p in paths),
        "largest module (formatted)": max(
            (formatted_lines(p), str(p.relative_to(ROOT))) for p in paths
        ),
        "public top-level names": sum(len(public_names(p)) for p in paths),
        "docstring ratio": round(docstring_ratio(paths), 3),
        "highest complexity": f"{most[1]} ({most[0]})",
    }


def main(argv) -> int:
    for name in argv:
        if name.startswith("-") or not list((ROOT / name).rglob("*.py")):
            print(f"error: {name!r} is not a package folder of {ROOT}, e.g. qlab", file=sys.stderr)
            return 2
    for name in argv or ["qlab"]:
        print(f"{name}/")
        for key, value in figures(ROOT / name).items():
            print(f"  {key}: {value}")
    readme = ROOT / "README.md"
    print(f"README.md: {len(readme.read_text().splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
