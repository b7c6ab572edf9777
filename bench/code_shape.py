"""The shape of the code: lines per module and the longest functions (for the structure issue's figures).

    python3 bench/code_shape.py [--root DIR] [--top 15] [--json OUT]

Counts every .py file under ``<root>/edge_asc``: physical lines per module, and for every function and
method its length in lines (``end_lineno - lineno + 1``, decorators excluded) and whether its docstring
says why it is long (a sentence with "over 60 lines"). Prints modules over 400 lines and functions over 60 lines.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

MODULE_LIMIT = 400
FUNCTION_LIMIT = 60
REASON_MARK = "over 60 lines"  # a long function's docstring says why, in a sentence with these words


def measure(root: Path) -> dict:
    package = root / "edge_asc"
    modules, functions = {}, []
    for path in sorted(package.rglob("*.py")):
        rel = str(path.relative_to(root))
        text = path.read_text(encoding="utf-8")
        modules[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                functions.append({
                    "where": f"{rel}:{node.lineno}", "name": node.name, "lines": node.end_lineno - node.lineno + 1,
                    "says_why": REASON_MARK in " ".join(doc.lower().split()),
                })
    functions.sort(key=lambda f: -f["lines"])
    return {
        "modules": len(modules),
        "lines": sum(modules.values()),
        "largest_modules": sorted(modules.items(), key=lambda kv: -kv[1]),
        "modules_over_limit": {m: n for m, n in modules.items() if n > MODULE_LIMIT},
        "functions": functions,
        "functions_over_limit": [f for f in functions if f["lines"] > FUNCTION_LIMIT],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    m = measure(args.root)
    print(f"{m['modules']} modules, {m['lines']} lines under {args.root / 'edge_asc'}")
    print(f"largest modules (limit {MODULE_LIMIT}):")
    for name, n in m["largest_modules"][: args.top]:
        print(f"  {n:5d}  {name}")
    print(f"modules over {MODULE_LIMIT} lines: {len(m['modules_over_limit'])}")
    print(f"longest functions (limit {FUNCTION_LIMIT}):")
    for f in m["functions"][: args.top]:
        print(f"  {f['lines']:5d}  {f['where']} {f['name']}" + ("  (docstring says why)" if f["says_why"] else ""))
    over = m["functions_over_limit"]
    print(f"functions over {FUNCTION_LIMIT} lines: {len(over)}, of which {sum(not f['says_why'] for f in over)} without a reason in the docstring")
    if args.json:
        args.json.write_text(json.dumps(m, indent=1))


if __name__ == "__main__":
    main()
