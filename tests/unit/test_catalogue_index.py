"""tests/reliability/CATALOGUE.md stays true: every case is there, each names at least one test, and every test it
names exists (the file, and a function of that name in it, at module level or in a class).

Read with the standard library only (ast), so the check is fast and needs no database or collection run.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "tests" / "reliability" / "CATALOGUE.md"

# The catalogue's cases: W1-W7, E1-E6, P1-P7, S1-S6, A1-A5, H1-H3, R1-R6, and the issue's own failures I1-I27.
REQUIRED = [f"{group}{n}" for group, last in
            (("W", 7), ("E", 6), ("P", 7), ("S", 6), ("A", 5), ("H", 3), ("R", 6), ("I", 27))
            for n in range(1, last + 1)]  # fmt: skip
# Cases another engineer is still writing the test for; each such row says "(pending: <who>)". Only these may.
PENDING: dict[str, str] = {}

ROW = re.compile(r"^\|\s*([A-Z]\d+)\s*\|(.*)\|\s*$")
TEST = re.compile(r"`(tests/[^`:]+\.py)::(test_\w+)(?:\[[^\]]*\])?`")


def rows(text: str) -> dict[str, str]:
    """Case id -> its row's last cell (the tests)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            case, rest = match.groups()
            assert case not in found, f"{case} has two rows"
            found[case] = rest.rsplit("|", 1)[-1]
    return found


@cache
def functions_in(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text())
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def missing_tests(cell: str) -> list[str]:
    missing = []
    for path, name in TEST.findall(cell):
        file = ROOT / path
        if not file.is_file() or name not in functions_in(file):
            missing.append(f"{path}::{name}")
    return missing


def test_every_case_has_a_row_and_no_row_is_unknown():
    found = rows(CATALOGUE.read_text())
    assert [case for case in REQUIRED if case not in found] == []
    assert [case for case in found if case not in REQUIRED] == []


@pytest.mark.parametrize("case", REQUIRED)
def test_each_case_names_tests_that_exist(case):
    cell = rows(CATALOGUE.read_text())[case]
    named = TEST.findall(cell)
    if case in PENDING:
        assert f"(pending: {PENDING[case]})" in cell, f"{case} is allowed to be pending, and must say by whom"
        assert not named, f"{case} has a test now: list it and remove {case} from PENDING"
        return
    assert "(pending:" not in cell, f"{case} says pending but is not in PENDING"
    assert named, f"{case} names no test"
    assert missing_tests(cell) == [], f"{case} names tests that do not exist"


def test_the_checker_finds_a_missing_test_and_a_missing_file():
    cell = (
        "`tests/unit/test_catalogue_index.py::test_every_case_has_a_row_and_no_row_is_unknown`, "
        "`tests/unit/test_catalogue_index.py::test_no_such_function`, `tests/unit/no_such_file.py::test_x`"
    )
    assert missing_tests(cell) == [
        "tests/unit/test_catalogue_index.py::test_no_such_function",
        "tests/unit/no_such_file.py::test_x",
    ]
    assert rows("| W1 | a | `x` |\n| not a row |\n| E2 | b | c |") == {"W1": " `x` ", "E2": " c "}
