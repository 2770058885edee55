"""docker-compose.yml read as a deployment to run as processes (there is no Docker engine here).

The services' commands and environments come from the file itself, with compose's
``${VAR:-default}`` substitution; only what a container would see differently is mapped:
service host names to loopback, volumes to directories, the database to the test's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
DOCKERFILE = COMPOSE_FILE.parent / "docker" / "Dockerfile"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    environment: dict[str, str]
    volumes: dict[str, str]  # container path -> volume or host path


def load() -> dict[str, Any]:
    """The compose document (YAML anchors such as x-harvester-env resolved)."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def substitute(value: str, shell: dict[str, str]) -> str:
    """Compose's ``${VAR}`` and ``${VAR:-default}`` (default when unset or empty)."""

    def one(match: re.Match[str]) -> str:
        found = shell.get(match["name"], "")
        return found if found else (match["default"] or "")

    return _VARIABLE.sub(one, value)


def image_environment() -> dict[str, str]:
    """The ENV lines of docker/Dockerfile: what every container starts with."""
    env: dict[str, str] = {}
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def service(name: str, shell: dict[str, str]) -> Service:
    """One service as its container would run it, environment resolved."""
    spec = load()["services"][name]
    environment = {}
    for key, value in (spec.get("environment") or {}).items():
        if value is not None:
            environment[key] = substitute(str(value), shell)
        elif key in shell:  # a bare `KEY:` passes the shell's value through; unset stays unset
            environment[key] = shell[key]
    volumes = {}
    for volume in spec.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        volumes[target] = source
    command = [substitute(str(part), shell) for part in spec.get("command") or []]
    return Service(name, command, {**image_environment(), **environment}, volumes)
