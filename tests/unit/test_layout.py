"""Size rules that keep the code readable in one sitting: no module over 450 lines, and no function in the lab
over 50 lines unless a `# long: <why>` comment right above it (or above its decorators) says why."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ["lab", "concepts", "notes", "accounts", "reqflow", "bench", "docs", "deploy", "manage.py"]
SKIPPED_DIRS = {".venv", "node_modules", "migrations", "tests", "__pycache__"}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 50


def python_files(*names: str) -> list[Path]:
    files = []
    for name in names:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        files += [f for f in candidates if not SKIPPED_DIRS.intersection(f.relative_to(ROOT).parts[:-1])]
    return files


def says_why_it_is_long(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A `# long: <why>` comment on the line right above the `def`, or right above its first decorator."""
    starts = {node.lineno, min([node.lineno, *(d.lineno for d in node.decorator_list)])}  # 1-based line numbers
    above = [lines[start - 2].strip() for start in starts if start >= 2]
    return any(line.startswith("#") and "long:" in line for line in above)


def long_functions(text: str, name: str) -> list[tuple[str, int]]:
    """(where, length) of each function or method over the limit without a `# long:` comment, nested ones too.
    A function's length runs from its `def` line to its last line."""
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text, filename=name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not says_why_it_is_long(lines, node):
                found.append((f"{name}:{node.lineno} {node.name}", length))
    return found


def long_functions_in(path: Path) -> list[tuple[str, int]]:
    return long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def function(name: str, lines: int, above: str = "", decorated: bool = False) -> str:
    """Source of a function `lines` long (def line included), with `above` on the line before it."""
    body = [f"    x = {i}" for i in range(lines - 1)]
    return "\n".join(["import functools", above, *(["@functools.cache"] if decorated else []), f"def {name}():", *body])


def test_the_rules_see_the_code_they_are_about():
    files = {str(f.relative_to(ROOT)) for f in python_files(*SOURCE)}
    assert {"manage.py", "lab/engine/decider.py", "lab/views.py", "concepts/views.py"} <= files
    assert not any("/migrations/" in f or f.startswith(("tests/", ".venv/")) for f in files)
    assert long_functions_in(ROOT / "lab" / "engine" / "decider.py") == []


def test_a_function_over_50_lines_is_an_offender_and_one_of_50_is_not():
    assert long_functions(function("fits", 50), "m.py") == []
    assert long_functions(function("too_long", 51), "m.py") == [("m.py:3 too_long", 51)]
    method = "class C:\n" + "\n".join(f"    {line}" for line in function("method", 60).splitlines())
    assert long_functions(method, "m.py") == [("m.py:4 method", 60)]


def test_a_long_comment_right_above_the_def_or_its_decorators_excuses_a_long_function():
    why = "# long: the hot path stays in one piece"
    assert long_functions(function("excused", 80, above=why), "m.py") == []
    assert long_functions(function("excused", 80, above=why, decorated=True), "m.py") == []
    between = function("excused", 80, decorated=True).replace("def excused", f"{why}\ndef excused")
    assert long_functions(between, "m.py") == []
    assert long_functions(function("unexplained", 80, above="# a comment that says nothing"), "m.py") != []
    assert long_functions(function("unexplained", 80, above="x = 'long: not a comment'"), "m.py") != []


def test_no_module_outside_the_tests_is_over_450_lines():
    too_long = {
        str(path.relative_to(ROOT)): count
        for path in python_files(*SOURCE)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, f"modules over {MAX_MODULE_LINES} lines (split them): {too_long}"


def test_no_function_in_the_lab_is_over_50_lines_unless_a_long_comment_says_why():
    offenders = [found for path in python_files("lab") for found in long_functions_in(path)]
    listing = "\n".join(f"  {where}: {length} lines" for where, length in sorted(offenders))
    assert offenders == [], (
        f"functions over {MAX_FUNCTION_LINES} lines; split them, or put `# long: <why>` on the line above:\n{listing}"
    )


def imports_inside_functions(text: str, name: str) -> list[str]:
    """Imports made inside a function body: each either hides an import cycle or delays a cost nobody measured.
    The only place Django wants one is AppConfig.ready() (signal receivers and checks register on import)."""
    found = []
    for node in ast.walk(ast.parse(text, filename=name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != "ready":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found.append(f"{name}:{inner.lineno} in {node.name}()")
    return found


def test_no_application_module_imports_inside_a_function():
    # bench/ and docs/ scripts import Django only after configuring it in a child process, so they are not held to it.
    offenders = [
        where
        for path in python_files("lab", "concepts", "notes", "accounts", "reqflow")
        for where in imports_inside_functions(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert offenders == [], "imports inside functions:\n" + "\n".join(offenders)


def test_an_import_inside_a_function_is_found_and_one_in_ready_is_allowed():
    source = "class Config:\n    def ready(self):\n        import json\n\ndef f():\n    from os import path\n"
    assert imports_inside_functions(source, "x.py") == ["x.py:6 in f()"]
