"""URL-list rows whose URLs carry credentials: the stored files carry none of them."""

from __future__ import annotations

from PIL import Image as PILImage
from worker_harness import Harvest

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


async def test_stored_files_carry_no_userinfo_or_credential_parameter(harvest: Harvest) -> None:
    signed = [
        {"id": row["id"], "url": scheme + row["url"].removeprefix("http://") + query + fragment}
        for row, (scheme, query, fragment) in zip(harvest.rows(12), DECORATIONS, strict=False)
    ]
    await harvest.submit(signed, "signed")

    await run_daemon(harvest.settings(), until_idle=True)

    images = await harvest.images()
    assert [r.state for r in images] == ["stored"] * len(DECORATIONS), [
        r.last_error for r in images
    ]
    for row in images:
        path = harvest.root / "data" / row.path
        with PILImage.open(path) as image:
            description = str(image.getexif().get(270))
        assert harvest.emulator.base_url.removeprefix("http://") in description  # the link is kept
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, description)
        assert b"@127.0.0.1" not in data
