"""docker-compose as operators run it: the files render, and every HARVESTER_* variable they
name is a real setting (a misspelt one would be silently ignored by the daemon)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import compose
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


def _settings_of(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [name for name in os.environ if name.startswith("HARVESTER_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_env_file_reaches_the_daemons_and_what_it_leaves_out_is_the_default(
    monkeypatch: pytest.MonkeyPatch,
):
    given = {"HARVESTER_STORAGE_URL": "s3://bucket/prefix", "HARVESTER_PROCESSES": "3"}
    given["HARVESTER_RATE_MARGIN"] = "0.2"
    chosen = _settings_of(compose.service("harvester", given).environment, monkeypatch)
    assert (chosen.storage_url, chosen.processes, chosen.rate_margin) == (
        "s3://bucket/prefix",
        3,
        0.2,
    )
    # Left out of .env, compose passes "" (`${HARVESTER_X:-}`): that is the default.
    default = _settings_of(compose.service("harvester", {}).environment, monkeypatch)
    assert default.storage_url is None and default.dashboard_token is None
    assert default.processes == (os.cpu_count() or 1) and default.rate_margin == 0.1


def test_the_bundled_postgres_accepts_every_daemon_the_published_ports_allow():
    ports = re.search(
        r"DAEMON_PORTS:-[\d.]+:(\d+)-(\d+)", (ROOT / "docker-compose.yml").read_text()
    )
    assert ports is not None
    daemons = int(ports[2]) - int(ports[1]) + 1
    per_daemon = 2 * 10 + 2  # create_engine's pool (10 + 10 overflow), the health check's 1 + 1
    command = " ".join(compose.service("postgres", {}).command)
    allowed = re.search(r"max_connections=(\d+)", command)
    assert allowed is not None, command
    assert int(allowed[1]) >= daemons * per_daemon + 20, "and 20 for operators' commands"


def test_aws_variables_reach_the_daemons_when_set_and_stay_unset_otherwise():
    given = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://minio:9000"}
    environment = compose.service("harvester", given).environment
    assert environment["AWS_REGION"] == "eu-west-1"
    assert environment["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    assert not {k for k in compose.service("harvester", {}).environment if k.startswith("AWS_")}
