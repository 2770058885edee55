"""URL-list rows whose URLs carry credentials: the stored files carry none of them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from defaults import MAX_ATTEMPTS
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import RunningEmulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

SECRETS = ["hunter2", "s3ss10n", "AKIAEXAMPLE", "deadbeef", "eyJQb2xpY3k", "K2JCJMDEHXQW5F",
           "ya29.t0k3n", "00_AfBsig", "65F0CAFE"]  # fmt: skip
DECORATIONS = [
    ("http://admin:hunter2@", "", ""),
    ("http://", "?session=s3ss10n", ""),
    ("http://", "?X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature=deadbeef", ""),
    ("http://", "?Policy=eyJQb2xpY3k&Signature=abc&Key-Pair-Id=K2JCJMDEHXQW5F", ""),
    ("http://", "", "#access_token=ya29.t0k3n"),
    ("http://", "?oh=00_AfBsig&oe=65F0CAFE", ""),
]


async def test_stored_files_carry_no_userinfo_or_credential_parameter(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
) -> None:
    rows = emulator.world.url_list(12, base_url=emulator.base_url, hostile=False)
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "url"])
        for i, row in enumerate(rows[: len(DECORATIONS)]):
            scheme, query, fragment = DECORATIONS[i]
            writer.writerow(
                [row["id"], scheme + row["url"].removeprefix("http://") + query + fragment]
            )
    await submit_urls(sqlite_engine, UrlCampaign("signed", listing), max_attempts=MAX_ATTEMPTS)

    await run_daemon(quick_settings(sqlite_url), until_idle=True)

    async with sqlite_engine.connect() as connection:
        images = (await connection.execute(select(Image))).all()
    assert [r.state for r in images] == ["stored"] * len(DECORATIONS), [
        r.last_error for r in images
    ]
    for row in images:
        path = tmp_path / "data" / row.path
        with PILImage.open(path) as image:
            description = str(image.getexif().get(270))
        assert emulator.base_url.removeprefix("http://") in description  # the link is kept
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, description)
        assert b"@127.0.0.1" not in data
