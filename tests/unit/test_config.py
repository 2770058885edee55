"""Settings accept what operators write and refuse what cannot work, without echoing secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from harvester.config import MAX_PROCESSES, async_database_url, load_settings
from harvester.errors import ConfigError


@pytest.mark.parametrize(
    "written,expected",
    [
        ("sqlite:///data/h.db", "sqlite+aiosqlite:///data/h.db"),
        ("sqlite:////abs/h.db", "sqlite+aiosqlite:////abs/h.db"),
        ("postgresql://u@db:5432/h", "postgresql+asyncpg://u@db:5432/h"),
        ("postgres://u@db/h", "postgresql+asyncpg://u@db/h"),
        ("postgresql+asyncpg://u@db/h", "postgresql+asyncpg://u@db/h"),
    ],
)
def test_database_urls_get_their_async_driver(written: str, expected: str):
    assert async_database_url(written) == expected


def test_unknown_database_scheme_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match=r"use sqlite:///path/to\.db or postgresql://"):
        load_settings(database_url="mysql://root@localhost/db")


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("garbage", "has no scheme://"),
        ("u:hunter2@db/h", "has no scheme://"),
        ("sqlite:hunter2.db", "has no scheme://"),
        ("postgresql://u:hunter2@db:abc/h", "host or port cannot be read"),
        ("postgresql://u:hunter2@db:99999/h", "host or port cannot be read"),
        ("postgresql://u:hunter2@[::1/h", "host or port cannot be read"),
        ("sqlite:///", "names no file"),
        ("sqlite://", "names no file"),
    ],
)
def test_a_database_url_that_cannot_be_read_is_refused_without_quoting_it(
    written: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=why) as caught:
        load_settings(database_url=written)
    assert "hunter2" not in str(caught.value) and "\n" not in str(caught.value)


def test_heartbeat_not_shorter_than_the_lease_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARVESTER_LEASE_SECONDS", "30")
    monkeypatch.setenv("HARVESTER_HEARTBEAT_SECONDS", "30")
    with pytest.raises(ConfigError, match="must be shorter than lease_seconds"):
        load_settings()


def test_env_wins_over_the_toml_file_and_flags_win_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "h.toml"
    config.write_text('storage_root = "/from/toml"\nconcurrency = 7\nclaim_batch = 3\n')
    monkeypatch.setenv("HARVESTER_CONCURRENCY", "9")
    settings = load_settings(config, claim_batch=5)
    assert (str(settings.storage_root), settings.concurrency, settings.claim_batch) == (
        "/from/toml",
        9,
        5,
    )


def test_bad_toml_and_unknown_keys_give_clear_errors(tmp_path: Path):
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("databse_url = 'x'\n")
    with pytest.raises(ConfigError, match="databse_url"):
        load_settings(unknown)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_secrets_are_secret_and_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARVESTER_FLICKR_API_KEY", "k-123456789")
    settings = load_settings()
    assert settings.flickr_api_key is not None
    assert "k-123456789" not in repr(settings) and "k-123456789" not in str(settings)
    monkeypatch.setenv("HARVESTER_MAPILLARY_TOKEN", "MLY|tok-secret")
    monkeypatch.setenv("HARVESTER_LEASE_SECONDS", "not-a-number")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "tok-secret" not in str(caught.value) and "k-123456789" not in str(caught.value)


def test_images_in_flight_grow_with_the_worker_processes_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # 16 workers hold 32 images between them; the default must leave room to fetch more.
    assert load_settings(processes=2).concurrency == 64
    assert load_settings(processes=16).concurrency == 512
    assert load_settings(processes=16, concurrency=20).concurrency == 20
    monkeypatch.setenv("HARVESTER_CONCURRENCY", "24")
    assert load_settings(processes=16).concurrency == 24
    monkeypatch.delenv("HARVESTER_CONCURRENCY")
    config = tmp_path / "h.toml"
    config.write_text("concurrency = 12\n")
    assert load_settings(config, processes=16).concurrency == 12


def test_allowed_networks_are_comma_separated_in_the_environment_and_none_by_default(
    monkeypatch: pytest.MonkeyPatch,
):
    assert load_settings().allow_networks == []
    monkeypatch.setenv("HARVESTER_ALLOW_NETWORKS", " 127.0.0.1, 10.0.0.0/8,cdn.lan ,")
    assert load_settings().allow_networks == ["127.0.0.1", "10.0.0.0/8", "cdn.lan"]


def test_every_setting_has_a_row_in_the_readme_settings_table():
    """Operators look settings up there; a row names HARVESTER_X or, after a first name on
    the row, its ..._TAIL."""
    from harvester.config import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Settings", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `HARVESTER_")]

    def named(field: str) -> bool:
        full = f"HARVESTER_{field.upper()}"
        for row in rows:
            first = row.split("`")[1]
            tails = [t for t in row.split("`") if t.startswith("..._")]
            shared = first.removeprefix("HARVESTER_").split("_")[0]
            if f"`{full}`" in row or any(
                full == f"HARVESTER_{shared}_{t.removeprefix('..._')}" for t in tails
            ):
                return True
        return False

    missing = [f for f in Settings.model_fields if not named(f)]
    assert not missing, f"settings without a README row: {missing}"


def test_dashboard_tiles_are_a_slippy_map_template_or_off(monkeypatch: pytest.MonkeyPatch):
    assert load_settings().tile_template == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    monkeypatch.setenv("HARVESTER_DASHBOARD_TILES", "off")
    assert load_settings().tile_template is None
    monkeypatch.setenv("HARVESTER_DASHBOARD_TILES", "https://tiles.example/{z}/{x}.png")
    with pytest.raises(ConfigError, match=r"with \{z\}, \{x\} and \{y\}, or off"):
        load_settings()


def test_a_dashboard_token_shorter_than_eight_characters_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("HARVESTER_DASHBOARD_TOKEN", "abc1234")
    with pytest.raises(ConfigError, match="at least 8 characters") as caught:
        load_settings()
    assert "abc1234" not in str(caught.value)
    monkeypatch.setenv("HARVESTER_DASHBOARD_TOKEN", "abcd1234")
    token = load_settings().dashboard_token
    assert token is not None and token.get_secret_value() == "abcd1234"


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_setting_of_infinite_or_nan_seconds_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HARVESTER_BACKOFF_BASE_SECONDS", value)
    with pytest.raises(ConfigError, match="backoff_base_seconds"):
        load_settings()


def test_more_worker_processes_than_the_daemon_can_start_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HARVESTER_PROCESSES", str(MAX_PROCESSES + 1))
    with pytest.raises(ConfigError, match="processes"):
        load_settings()


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "300.1.1.1", "10.0.0.0/8/", "cdn lan", "a,/x"])
def test_an_allowed_network_that_is_neither_a_network_nor_a_host_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    """A typo would allow nothing, and every fetch it was meant for would fail later."""
    monkeypatch.setenv("HARVESTER_ALLOW_NETWORKS", f"127.0.0.1,{entry}")
    with pytest.raises(ConfigError, match="allow_networks"):
        load_settings()


def test_allowed_networks_take_addresses_networks_and_host_name_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = "127.0.0.1,10.0.0.0/8,::1,fd00::/8,cdn.lan,*.internal.example,minio,xn--bcher-kva.lan"
    monkeypatch.setenv("HARVESTER_ALLOW_NETWORKS", entries)
    assert load_settings().allow_networks == entries.split(",")


@pytest.mark.parametrize(
    "written",
    [
        "s3://AKIAUSER:hunter2secret@bucket/prefix",
        "s3://hunter2secret@bucket",
        "s3://AKIAUSER:hunter2secret/K7MDENG/bPxRfiCY@bucket",  # AWS secrets may hold a /
    ],
)
def test_a_storage_url_holding_credentials_is_refused_without_echoing_them(written: str):
    with pytest.raises(ConfigError, match="takes no credentials") as caught:
        load_settings(storage_url=written)
    assert "hunter2secret" not in str(caught.value)
    assert load_settings(storage_url="s3://bucket/a@b").storage_url == "s3://bucket/a@b"
