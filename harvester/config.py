"""Settings: one object, from HARVESTER_* environment variables and an optional TOML file."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from harvester.errors import ConfigError
from harvester.redact import MIN_FREE_TEXT_SECRET, credential_values

REAL_FLICKR_API_URL = "https://api.flickr.com/services/rest/"
REAL_MAPILLARY_API_URL = "https://graph.mapillary.com"
DEFAULT_DASHBOARD_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
}


_URL_FORMS = "use sqlite:///path/to.db or postgresql://user@host:5432/db"


def async_database_url(url: str) -> str:
    """Accept the URLs operators write and pick the async driver ourselves.

    What is refused is never quoted back: a mistyped URL may still hold its password."""
    undecodable = next((i for i, c in enumerate(url) if "\ud800" <= c <= "\udfff"), None)
    if undecodable is not None:  # a lone surrogate: each driver failed with a traceback
        raise ValueError(
            f"the database URL holds a byte that is not UTF-8 (at character {undecodable + 1})"
        )
    if "://" not in url:
        # Once taken as an SQLite path: a typo ('garbage', 'postgres:/db') made a file.
        raise ValueError(f"the database URL has no scheme://: {_URL_FORMS}")
    scheme, rest = url.split("://", 1)
    scheme = _ASYNC_DRIVERS.get(scheme.lower(), scheme)
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(
            f"unsupported database URL scheme {url.split('://', 1)[0]!r}: {_URL_FORMS}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it is the check (a port of 'abc' or 99999)
    except ValueError:
        raise ValueError(f"the database URL's host or port cannot be read: {_URL_FORMS}") from None
    if scheme == "sqlite+aiosqlite" and not parts.path.removeprefix("/"):
        raise ValueError("the SQLite URL names no file: use sqlite:///path/to.db")  # not memory
    if scheme == "sqlite+aiosqlite" and parts.netloc:
        raise ValueError("an SQLite URL names a file, not a host or user: use sqlite:///path/to.db")
    if scheme == "postgresql+asyncpg" and "sslmode" in dict(parse_qsl(parts.query)):
        # libpq's name for what asyncpg calls ssl (the same values, disable to verify-full):
        # given to asyncpg as it is, it failed every connection with a TypeError.
        query = [("ssl" if k == "sslmode" else k, v) for k, v in parse_qsl(parts.query)]
        rest = urlunsplit(parts._replace(query=urlencode(query))).split("://", 1)[1]
    return f"{scheme}://{rest}"


# Comma-separated in the environment (HARVESTER_ALLOW_NETWORKS=10.0.0.0/8,cdn.lan), a list in TOML.
HostList = Annotated[list[str], NoDecode]

# A host name or a pattern of them (*.cdn.lan): letters, digits, hyphens, underscores, dots.
_HOST_PATTERN = re.compile(r"[\w*-]+(\.[\w*-]+)*\.?")

DEFAULT_CONCURRENCY = 64
IN_FLIGHT_PER_PROCESS = 32
# `run` starts every worker process at once: 10**20 of them had it spin until killed.
MAX_PROCESSES = 1024


class Settings(BaseSettings):
    """Everything the daemon and the commands need; cross-field sense checked at start."""

    # An empty variable is an unset one: compose passes `${HARVESTER_X:-}` as "" when the
    # operator's .env leaves it out, and that must mean the default, not a bad value.
    # No setting means anything at infinity or NaN: inf seconds of back-off is no setting.
    model_config = SettingsConfigDict(
        env_prefix="HARVESTER_", extra="forbid", env_ignore_empty=True, allow_inf_nan=False
    )

    database_url: str = "sqlite:///./harvester.db"
    storage_root: Path = Path("./data")
    storage_url: str | None = None

    flickr_api_key: SecretStr | None = None
    mapillary_token: SecretStr | None = None
    # Unset: the dashboard is read-only. Set: its pause/resume/retry buttons ask for it.
    dashboard_token: SecretStr | None = None
    # Map tiles under the dashboard's coverage map, loaded by the browser when it is online
    # ({z}/{x}/{y} slippy-map template); "off" for plain points only.
    dashboard_tiles: str = DEFAULT_DASHBOARD_TILES
    flickr_api_url: str = REAL_FLICKR_API_URL
    mapillary_api_url: str = REAL_MAPILLARY_API_URL

    flickr_rate_per_hour: float = Field(3600.0, gt=0)
    flickr_burst: float = Field(5.0, ge=1)
    mapillary_search_rate_per_s: float = Field(10.0, gt=0)
    mapillary_entity_rate_per_s: float = Field(50.0, gt=0)
    mapillary_burst: float = Field(10.0, ge=1)
    # In flight per host: at a real CDN's ~100 ms, 16 held a daemon near 160 images/s.
    cdn_per_host_concurrency: int = Field(64, ge=1)
    outage_probe_seconds: float = Field(5.0, gt=0)
    outage_max_pause_seconds: float = Field(3600.0, gt=0)
    # Non-public addresses, networks or host names image fetches may reach (none by default).
    allow_networks: HostList = Field(default_factory=list)
    flickr_image_hosts: HostList = Field(
        # s.yimg.com: where Flickr redirects a deleted photo (its placeholder is recognised).
        default_factory=lambda: ["*.staticflickr.com", "*.flickr.com", "s.yimg.com"]
    )
    mapillary_image_hosts: HostList = Field(
        default_factory=lambda: ["*.fbcdn.net", "*.mapillary.com"]
    )
    # A CDN serves one host to everyone (live.staticflickr.com): the cap is our politeness,
    # set where 429s, not the cap, pace a bulk harvest (a host's 429 halves it), and high
    # enough that the pixels, not the cap, bound a daemon (100/s held two cores to half).
    cdn_rate_per_host_per_s: float = Field(1000.0, gt=0)
    rate_margin: float = Field(0.1, ge=0, lt=1)
    rate_share_lease_seconds: float = Field(30.0, gt=0)
    max_image_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    # Slow-loris: slower bodies are cut (after 10 s); one image's fetch, tries included, ends
    # within the budget.
    min_transfer_bytes_per_second: float = Field(1024.0, gt=0)
    fetch_budget_seconds: float = Field(300.0, gt=0)

    lease_seconds: float = Field(120.0, gt=0)
    heartbeat_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_base_seconds: float = Field(5.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    # A server's Retry-After is obeyed up to this long; a hostile 99999999 is not a day's stall.
    max_retry_after_seconds: float = Field(3600.0, gt=0)
    # `run --until-idle` exits when nothing is due within this long, saying what it left.
    idle_horizon_seconds: float = Field(300.0, ge=0)

    concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1)
    image_timeout_seconds: float = Field(120.0, gt=0)
    processes: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, MAX_PROCESSES), ge=1, le=MAX_PROCESSES
    )
    claim_batch: int = Field(32, ge=1)
    log_interval_seconds: float = Field(10.0, gt=0)

    @field_validator("storage_url")
    @classmethod
    def _known_storage(cls, value: str | None) -> str | None:
        if value is None:
            return None
        bucket = value[5:].split("/")[0]
        if not (value.startswith("s3://") and bucket):
            raise ValueError("HARVESTER_STORAGE_URL must be s3://bucket[/prefix]")
        if "@" in bucket or ":" in bucket:
            # No bucket name holds an @ or a colon: this is user:secret@, which obstore
            # ignores and every write error would quote (into the database, `jobs show`, the
            # dashboard). A secret holding a / ends what reads as the bucket at its colon.
            raise ValueError(
                "HARVESTER_STORAGE_URL takes no credentials (user:secret@): set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
            )
        return value

    @field_validator("flickr_api_key", "mapillary_token", "dashboard_token")
    @classmethod
    def _printable_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # An undecodable byte of the environment (a lone surrogate) crashed the daemon as it
        # hashed the key; a CR from a Windows .env broke every request. Never echoed.
        if value is not None and not value.get_secret_value().isprintable():
            raise ValueError(
                "holds an undecodable byte or a control character (a CR from a Windows "
                "file?); it is not shown"
            )
        return value

    @field_validator("dashboard_token")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Shorter values are blanked in free text only where they stand (redact.py), and a
        # few characters are guessed by whoever can reach the page.
        if value is not None and len(value.get_secret_value()) < MIN_FREE_TEXT_SECRET:
            raise ValueError(
                f"HARVESTER_DASHBOARD_TOKEN must be at least {MIN_FREE_TEXT_SECRET} characters"
            )
        return value

    @field_validator("dashboard_tiles")
    @classmethod
    def _tile_template(cls, value: str) -> str:
        if value == "off":
            return value
        usable = value.startswith(("http://", "https://")) and all(
            part in value for part in ("{z}", "{x}", "{y}")
        )
        if not usable:
            raise ValueError(
                "HARVESTER_DASHBOARD_TILES must be an http(s) URL with {z}, {x} and {y}, or off"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        async_database_url(value)
        return value

    @field_validator("allow_networks", "flickr_image_hosts", "mapillary_image_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks_or_host_names(cls, value: list[str]) -> list[str]:
        # An entry that is neither (10.0.0.0/33, 300.1.1.1) would allow nothing, silently.
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                if not _HOST_PATTERN.fullmatch(entry) or entry.rstrip(".").split(".")[-1].isdigit():
                    raise ValueError(
                        f"{entry!r} is neither an address, a CIDR network nor a host name"
                    ) from None
        return value

    @model_validator(mode="after")
    def _concurrency_for_the_pool(self) -> Settings:
        # The most images in flight; the daemon keeps fewer while fewer keep its workers busy
        # (worker/window.py). Unless set: 32 per worker process, enough for ~70 images/s per
        # worker at a 0.2 s CDN latency.
        if "concurrency" not in self.model_fields_set:
            self.concurrency = max(DEFAULT_CONCURRENCY, IN_FLIGHT_PER_PROCESS * self.processes)
        return self

    @model_validator(mode="after")
    def _heartbeat_shorter_than_lease(self) -> Settings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be shorter than "
                f"lease_seconds ({self.lease_seconds}), or leases expire between heartbeats"
            )
        return self

    @property
    def tile_template(self) -> str | None:
        """The dashboard's tile URL template, or None for plain points."""
        return None if self.dashboard_tiles == "off" else self.dashboard_tiles

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.database_url)

    @property
    def secrets(self) -> tuple[str | SecretStr | None, ...]:
        """Every value set here that logs, errors and pages must blank: the API keys, the
        dashboard token, and the database password (a driver's message may quote it)."""
        parts = urlsplit(self.database_url)
        password = parts.password
        return (
            self.flickr_api_key,
            self.mapillary_token,
            self.dashboard_token,
            password,
            unquote(password) if password else None,
            *credential_values(parse_qsl(parts.query)),  # ?password=, which asyncpg takes too
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """CLI overrides win over HARVESTER_* variables, which win over the TOML file."""
    if config_file is not None and not config_file.is_file():
        what = "is not a file" if config_file.exists() else "does not exist"
        raise ConfigError(f"config file {config_file} {what}")

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return (*sources, file_secret_settings)

    try:
        return _Layered(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8: Latin-1 or a binary file
        raise ConfigError(f"config file {config_file} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None


def _explain(exc: ValidationError) -> str:
    """A one-screen message that never echoes the input values (they may be secrets)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(problems)  # one line: a terminal shows \n escaped
