"""Every error names a stable short reason code: operators filter and retry by it."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import re

import pytest

import harvester
from harvester.errors import HarvesterError
from harvester.http import InvalidCredentials, NotFoundError, TransientHttpError
from harvester.http.classify import classify_exception, classify_status
from harvester.imaging import ImagingError

CODE = re.compile(r"[a-z][a-z0-9_]{1,39}")


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
