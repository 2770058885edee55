"""One row per photo, hits for every finder, shards that never pass 1000 files."""

from __future__ import annotations

import math
from collections import Counter

from defaults import MAX_ATTEMPTS
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images, upsert_licenses
from harvester.db.models import Image, ImageHit, License
from harvester.records import FoundImage
from harvester.storage.layout import relative_path


def _found(i: int, group: str = "paris", **extra: object) -> FoundImage:
    return FoundImage(
        provider_id=str(i),
        group=group,
        file_name=f"{i}_s_1_o.jpg",
        source_url=f"http://cdn/{i}.jpg",
        record={"lat": 48.0 + i / 1e4, "lon": 2.0, "title": f"t{i}", "raw": {"id": str(i)}},
        **extra,  # type: ignore[arg-type]
    )


async def test_a_photo_found_twice_is_one_row_listed_under_both_queries(engine: AsyncEngine):
    campaign = await ensure_campaign(engine, "c", "flickr", {})
    first = await add_images(
        engine, campaign, "flickr", "paris", [_found(1), _found(2)], max_attempts=MAX_ATTEMPTS
    )
    second = await add_images(
        engine, campaign, "flickr", "eiffel", [_found(2), _found(3)], max_attempts=MAX_ATTEMPTS
    )
    assert (first.new, first.known, second.new, second.known) == (2, 0, 1, 1)
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(Image))).scalar() == 3
        hits = (
            await connection.execute(select(ImageHit.query, Image.provider_id).join(Image))
        ).all()
    assert sorted(hits) == [("eiffel", "2"), ("eiffel", "3"), ("paris", "1"), ("paris", "2")]


async def test_shards_hold_at_most_1000_files_per_group(engine: AsyncEngine):
    campaign = await ensure_campaign(engine, "c", "flickr", {})
    for start in range(0, 2600, 700):  # several batches, like successive time windows
        batch = [_found(i) for i in range(start, min(start + 700, 2600))]
        await add_images(engine, campaign, "flickr", "paris", batch, max_attempts=MAX_ATTEMPTS)
    await add_images(
        engine,
        campaign,
        "flickr",
        "rome",
        [_found(i, "rome") for i in range(5000, 5010)],
        max_attempts=MAX_ATTEMPTS,
    )
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(Image.group_name, Image.shard, Image.file_name, Image.path)
            )
        ).all()
    per_shard = Counter((group, shard) for group, shard, _, _ in rows)
    assert per_shard == {("paris", 0): 1000, ("paris", 1): 1000, ("paris", 2): 600, ("rome", 0): 10}
    assert all(path is None for *_, path in rows), "a path is set only when the file is stored"
    planned = {relative_path("flickr", group, shard, name) for group, shard, name, _ in rows}
    assert len(planned) == len(rows)


async def test_a_photo_known_unusable_is_recorded_as_skipped_with_its_reason(engine: AsyncEngine):
    campaign = await ensure_campaign(engine, "c", "flickr", {})
    added = await add_images(
        engine,
        campaign,
        "flickr",
        "q",
        [_found(1, skip_reason="original 320x240 below 500 px")],
        max_attempts=MAX_ATTEMPTS,
    )
    assert added.skipped == 1
    async with engine.connect() as connection:
        row = (await connection.execute(select(Image.state, Image.skip_reason))).one()
    assert tuple(row) == ("skipped", "original 320x240 below 500 px")


async def test_licenses_are_upserted(engine: AsyncEngine):
    await upsert_licenses(engine, "flickr", [("4", "Attribution License", None)])
    await upsert_licenses(engine, "flickr", [("4", "CC BY 2.0", "https://cc.org/by/2.0/")])
    async with engine.connect() as connection:
        rows = (await connection.execute(select(License.name, License.url))).all()
    assert [tuple(r) for r in rows] == [("CC BY 2.0", "https://cc.org/by/2.0/")]


async def test_text_a_database_refuses_is_cleaned_and_a_field_too_long_is_dropped(
    engine: AsyncEngine,
):
    # PostgreSQL refuses NUL in text and jsonb, both drivers a lone surrogate (JSON's
    # "\ud800"), varchar(N) a longer value: each failed the insert of the whole page.
    hostile = {
        "title": "Old\x00 bridge", "owner_name": "\ud83dAna", "tags": "a\x00b",
        "owner": "o" * 201, "sequence_id": "s\x00q", "license_id": "4" * 41,
        "source_width": 10**12, "raw": {"ti\x00tle": ["\x00", {"n": "\udc00"}], "x": math.nan},
    }  # fmt: skip
    campaign = await ensure_campaign(engine, "c", "flickr", {})
    found = [_found(1), _found(2), _found(3)]
    found[1] = FoundImage("2", "paris", "2.jpg", "http://cdn/2\x00.jpg", record=hostile)
    found[2] = FoundImage("3", "paris", "3.jpg", None, skip_reason="too_small: \x00 \ud800")
    added = await add_images(engine, campaign, "flickr", "q", found, max_attempts=MAX_ATTEMPTS)
    assert added.new == 3
    async with engine.connect() as connection:
        chosen = select(Image.__table__).where(Image.provider_id == "2")
        row = (await connection.execute(chosen)).one()
    assert (row.title, row.owner_name, row.tags, row.sequence_id) == (
        "Old bridge", "\ufffdAna", "ab", "sq"
    )  # fmt: skip
    assert (row.owner, row.license_id, row.source_width) == (None, None, None)
    assert row.raw == {"title": ["", {"n": "\ufffd"}], "x": None}
    assert row.source_url == "http://cdn/2.jpg"
    async with engine.connect() as connection:
        skipped = select(Image.skip_reason).where(Image.provider_id == "3")
        assert (await connection.execute(skipped)).scalar_one() == "too_small:  \ufffd"


async def test_a_query_a_database_refuses_is_stored_cleaned_and_found_again(engine: AsyncEngine):
    # A URL list's query is its file's name, which on Linux may hold bytes that are not
    # UTF-8 (Python reads each as a lone surrogate): both drivers refused it, PostgreSQL a NUL.
    campaign = await ensure_campaign(engine, "c", "urls", {})
    query = "list\udcff\x00.csv"
    for _ in range(2):  # the second time, the same hits: no new row, no error
        await add_images(engine, campaign, "urls", query, [_found(1)], max_attempts=MAX_ATTEMPTS)
    async with engine.connect() as connection:
        hits = (await connection.execute(select(ImageHit.query))).scalars().all()
    assert hits == ["list\ufffd.csv"]


async def test_a_licence_a_database_refuses_is_cleaned_or_left_out(engine: AsyncEngine):
    licences = [("4", "BY\x00 2.0", "https://cc.org/\ud800"), ("9" * 41, "junk", None)]
    await upsert_licenses(engine, "flickr", [*licences, ("4\x00", "BY 2.0", None)])
    async with engine.connect() as connection:
        rows = (await connection.execute(select(License.license_id, License.name))).all()
    assert [tuple(r) for r in rows] == [("4", "BY 2.0")]
