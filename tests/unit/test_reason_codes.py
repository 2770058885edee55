"""Every error names a stable short reason code: operators filter and retry by it."""

from __future__ import annotations

import ast
import importlib
import itertools
import pickle
import pkgutil
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

import harvester
from harvester.db.catalog import skip_code
from harvester.errors import HarvesterError
from harvester.http import InvalidCredentials, NotFoundError, TransientHttpError
from harvester.http.classify import classify_exception, classify_status
from harvester.imaging import ImagingError
from harvester.reasons import REASONS, RETIRED, is_reason

CODE = re.compile(r"[a-z][a-z0-9_]{1,39}")
PACKAGE = Path(harvester.__file__).parent
README = Path(__file__).resolve().parents[2] / "README.md"


def _subclasses(root: type[BaseException]) -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    todo = [root]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _import_everything() -> None:
    for module in pkgutil.walk_packages(harvester.__path__, "harvester."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


@pytest.mark.parametrize("root", [HarvesterError, ImagingError])
def test_every_error_class_carries_its_own_short_reason_code(root: type[BaseException]) -> None:
    _import_everything()
    classes = _subclasses(root)
    assert len(classes) > 3
    for cls in classes:
        assert "reason" in vars(cls) or cls is root or cls.reason != root.reason, cls  # type: ignore[attr-defined]
        assert CODE.fullmatch(cls.reason), (cls, cls.reason)  # type: ignore[attr-defined]
        assert is_reason(cls.reason), f"add {cls.reason!r} to harvester/reasons.py"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "code"), [(404, "http_404"), (410, "http_410"), (429, "http_429"), (503, "http_503")]
)
def test_an_http_status_is_its_reason_code(status: int, code: str) -> None:
    error = classify_status(status, url="http://x.test/a")
    assert error is not None and error.reason == code


def test_network_failures_have_codes_of_their_own() -> None:
    assert classify_exception(TimeoutError(), url="http://x").reason == "timeout"
    assert classify_exception(ConnectionResetError(), url="http://x").reason == "connection"


def test_a_rejected_key_is_invalid_key_whatever_its_status() -> None:
    error = InvalidCredentials("Invalid API Key", url="http://x", status=401)
    assert error.reason == "invalid_key"


def test_reason_codes_survive_pickling_across_the_pool() -> None:
    for error in (
        NotFoundError("gone", url="http://x", status=404),
        TransientHttpError("slow", url="http://x", reason="timeout"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert again.reason == error.reason


# Where a code is given in the source: `reason=` (a keyword), `reason = ` or `..._REASON = `
# (an assignment), `"reason": ` (a dict entry); a literal, either side of an `if`, or a
# module constant. A source's skip is a message that starts with its code ("too_small: ").
_SKIP_CODE = re.compile(r"([a-z][a-z0-9_]*): ")


def _literals(node: ast.expr, constants: Mapping[str, object]) -> list[str]:
    if isinstance(node, ast.IfExp):
        return _literals(node.body, constants) + _literals(node.orelse, constants)
    value = constants.get(node.id) if isinstance(node, ast.Name) else getattr(node, "value", None)
    return [value] if isinstance(node, ast.Name | ast.Constant) and isinstance(value, str) else []


def _given(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    codes: set[str] = set()
    for node in ast.walk(tree):
        values: list[ast.expr] = []
        if isinstance(node, ast.keyword) and node.arg == "reason":
            values = [node.value]
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if any(name == "reason" or name.endswith("_REASON") for name in names):
                values = [node.value]
        elif isinstance(node, ast.Dict):
            pairs = zip(node.keys, node.values, strict=True)
            values = [v for k, v in pairs if isinstance(k, ast.Constant) and k.value == "reason"]
        elif "sources" in path.parts and isinstance(node, ast.Constant | ast.JoinedStr):
            first = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
            text = first.value if isinstance(first, ast.Constant) else None
            if isinstance(text, str) and (found := _SKIP_CODE.match(text)):
                codes.add(found[1])
        # Prose given as a reason (a column's documentation, a log line's) is no code.
        codes.update(c for v in values for c in _literals(v, constants) if CODE.fullmatch(c))
    return codes


def _codes_given() -> dict[str, set[str]]:
    return {
        str(path.relative_to(PACKAGE)): _given(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if "emulator" not in path.parts  # the emulator's are the fake services', not ours
    }


def test_every_reason_code_given_anywhere_is_in_the_one_list() -> None:
    """`jobs list|retry --reason` refuse a code not in harvester.reasons: one given by new
    code and not listed there would be refused, though rows carry it."""
    given = _codes_given()
    unlisted = {f"{file}: {code}" for file, codes in given.items() for code in codes}
    unlisted = {entry for entry in unlisted if not is_reason(entry.split(": ")[1])}
    assert not unlisted, f"add these to harvester/reasons.py: {sorted(unlisted)}"
    # The scan finds each way a code is given: a keyword, a dict, a constant, a skip message.
    every = set().union(*given.values())
    assert {"timeout", "duplicate", "lease_lost", "flickr_error", "no_size"} <= every


def test_the_one_list_holds_no_code_nothing_gives() -> None:
    _import_everything()
    roots = (HarvesterError, ImagingError)
    classes = {cls.reason for root in roots for cls in _subclasses(root)}  # type: ignore[attr-defined]
    given = set().union(*_codes_given().values(), classes, {skip_code("no code in front")})
    assert REASONS - given == set(), "listed, given by nothing: move a renamed one to RETIRED"
    assert not REASONS & RETIRED and all(CODE.fullmatch(c) for c in REASONS | RETIRED)


def test_an_http_status_of_three_digits_is_a_reason_code() -> None:
    assert all(is_reason(c) for c in ("http_404", "http_100", "http_599", "http_999"))
    assert not any(is_reason(c) for c in ("http_44", "http_4040", "HTTP_404", "http_", "timout"))


def _readme_reasons() -> dict[str, str]:
    """The README's table of reason codes, code by code: the rows after "Reason codes" up to
    the first line that is no table row."""
    after = README.read_text(encoding="utf-8").partition("\nReason codes (`reason`)")[2]
    head = "\n| Code | Meaning |\n|---|---|\n"
    assert head in after, "the README's reason codes are a table: | Code | Meaning |"
    lines = after.split(head, 1)[1].splitlines()
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines))
    table: dict[str, str] = {}
    for row in rows:
        code, meaning = (cell.strip() for cell in row.strip("|").split("|", 1))
        assert re.fullmatch(r"`[a-zN_]+`", code), f"one code a row, in backticks: {row}"
        assert code[1:-1] not in table, f"{code} has two rows"
        table[code[1:-1]] = meaning
    return table


def test_the_readme_says_what_every_reason_code_means_and_no_other() -> None:
    """Operators read the README's table to know what a row's reason means and to pick a
    `--reason`: a code harvester gives that it lacks is unexplained, one it names that
    harvester does not take is refused when typed."""
    table = _readme_reasons()
    assert len(table) > 40
    undocumented = sorted((REASONS | RETIRED) - table.keys())
    assert not undocumented, f"add rows to the README's reason codes table: {undocumented}"
    taken = {code for code in table if code == "http_NNN" or is_reason(code)}
    assert table.keys() == taken, f"not in harvester/reasons.py: {sorted(table.keys() - taken)}"
    unexplained = sorted(code for code, meaning in table.items() if len(meaning) < 10)
    assert not unexplained, f"say what these mean in the README: {unexplained}"
