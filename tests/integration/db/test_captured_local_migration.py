"""Migration 0008 gives Flickr rows stored before it their zone-less capture time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text

from harvester.db.migrate import downgrade, upgrade
from harvester.db.session import create_engine

RAW = {  # provider_id -> (raw record, captured_local expected)
    "full": ({"datetaken": "2019-05-04 12:30:00", "datetakengranularity": "0",
              "datetakenunknown": "0", "harvester_taken_local": "2019-05-04 12:30:00"},
             "2019-05-04T12:30:00"),
    "month": ({"datetaken": "2008-05-00 00:00:00", "datetakengranularity": 4}, "2008-05"),
    "year": ({"datetaken": "1975-01-01 00:00:00", "datetakengranularity": "6"}, "1975"),
    "circa": ({"datetaken": "1950-01-01 00:00:00", "datetakengranularity": "8"}, None),
    "unknown": ({"datetaken": "2023-10-01 09:00:00", "datetakenunknown": "1"}, None),
    "zeros": ({"datetaken": "0000-00-00 00:00:00"}, None),
    "odd": ({"datetaken": 17, "datetakengranularity": [1]}, None),
    "bare": ({"datetaken": "2021-02-03 04:05:06"}, "2021-02-03T04:05:06"),
    "noraw": (None, None),
}  # fmt: skip


async def test_stored_flickr_rows_get_captured_local_from_their_raw_record(database_url: str):
    engine = create_engine(database_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        await upgrade(engine, "0007")
        async with engine.begin() as db:
            campaign = "INSERT INTO campaigns (name, provider, settings, created_at) VALUES "
            await db.execute(text(campaign + "('c', 'flickr', '{}', :now)"), {"now": now})
            for index, (provider_id, (raw, _)) in enumerate(RAW.items()):
                await db.execute(
                    text(
                        "INSERT INTO images (campaign_id, provider, provider_id, state, "
                        "group_name, shard, file_name, raw, not_before, created_at, "
                        "updated_at, attempts, max_attempts) VALUES (1, 'flickr', :pid, "
                        "'stored', 'g', 0, :name, :raw, :now, :now, :now, 0, 5)"
                    ),
                    {"pid": provider_id, "name": f"{index}.jpg", "now": now,
                     "raw": None if raw is None else json.dumps(raw)},
                )  # fmt: skip
        await upgrade(engine)
        async with engine.connect() as db:
            rows = await db.execute(text("SELECT provider_id, captured_local FROM images"))
            found = dict(rows.all())
        assert found == {pid: expected for pid, (_, expected) in RAW.items()}
        await downgrade(engine, "0007")
        await upgrade(engine)  # and up again
    finally:
        await engine.dispose()
