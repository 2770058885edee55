"""docker-compose as operators run it: the files render, and every HARVESTER_* variable they
name is a real setting (a misspelt one would be silently ignored by the daemon)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harvester.config import Settings
from harvester.sources.flickr import parse_queries

ROOT = Path(__file__).resolve().parents[2]
FILES = ("docker-compose.yml", ".env.example", "docker/Dockerfile")
REQUIRE_TOOLS = os.environ.get("HARVESTER_REQUIRE_POSTGRES") == "1"  # CI: nothing skips


def _compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        message = "docker-compose is not installed (Debian `docker-compose`)"
        if REQUIRE_TOOLS:
            pytest.fail(message + " and HARVESTER_REQUIRE_POSTGRES=1 forbids skipping")
        pytest.skip(message)
    return found


def test_every_harvester_variable_in_the_compose_files_is_a_real_setting():
    named = {
        name
        for file in FILES
        for name in re.findall(r"\bHARVESTER_[A-Z0-9_]+", (ROOT / file).read_text())
    }
    settings = {f"HARVESTER_{field.upper()}" for field in Settings.model_fields}
    assert named, "no HARVESTER_ variable found at all"
    assert named <= settings, sorted(named - settings)


def test_the_env_example_documents_every_variable_the_compose_file_reads():
    compose = (ROOT / "docker-compose.yml").read_text()
    read = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read and read <= documented, sorted(read - documented)


def test_docker_compose_config_renders_every_service_with_its_healthcheck():
    done = subprocess.run(
        [_compose(), "--env-file", ".env.example", "--profile", "emulator",
         "--profile", "prometheus", "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = done.stdout
    services = rendered.split("\nvolumes:")[0]
    for service in ("postgres", "harvester", "emulator", "prometheus"):
        assert f"\n  {service}:\n" in services, service
    harvester = services.split("\n  harvester:\n")[1].split("\n  postgres:\n")[0]
    assert "/readyz" in harvester and ":8080/tcp" in harvester  # healthcheck, published
    emulator = services.split("\n  emulator:\n")[1].split("\n  harvester:\n")[0]
    assert "healthcheck:" in emulator and "build:" in emulator
    assert (ROOT / "docker" / "prometheus.yml").read_text().count("port: 8080") == 1


def test_the_queries_example_is_a_valid_queries_file():
    for path in (ROOT / "queries").glob("*.txt"):
        queries, _negatives = parse_queries(path.read_text(), source=str(path))
        assert queries, path
