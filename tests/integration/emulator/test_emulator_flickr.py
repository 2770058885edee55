"""The emulated Flickr REST API answers like the real one, warts included."""

from __future__ import annotations

import calendar
import json
from xml.etree import ElementTree

import aiohttp
from emu_helpers import FLICKR_EXTRAS, FLICKR_KEY, Starter, flickr

from harvester.emulator import RunningEmulator

Y2020 = calendar.timegm((2020, 1, 1, 0, 0, 0))
Y2021 = calendar.timegm((2021, 1, 1, 0, 0, 0))


async def test_search_answer_has_the_documented_shape_and_extras(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(session, emulator, text="sunset", extras=FLICKR_EXTRAS, per_page="50")
    assert body["stat"] == "ok"
    photos = body["photos"]
    assert {"page", "pages", "perpage", "total", "photo"} <= photos.keys()
    assert photos["page"] == 1 and photos["perpage"] == 50 and len(photos["photo"]) == 50
    for p in photos["photo"]:
        assert isinstance(p["id"], str) and isinstance(p["secret"], str)
        assert isinstance(p["server"], str) and isinstance(p["farm"], int)
        assert isinstance(p["license"], str) and p["dateupload"].isdigit()
        assert set(p["description"]) == {"_content"}
        assert {"owner", "title", "ownername", "datetaken", "views", "tags"} <= p.keys()
        assert {"latitude", "longitude", "accuracy"} <= p.keys()
        assert "url_l" in p or "url_o" in p
        if "url_l" in p:
            assert max(int(p["width_l"]), int(p["height_l"])) == 1024
            assert p["url_l"].endswith(f"/{p['server']}/{p['id']}_{p['secret']}_b.jpg")


async def test_numbers_come_both_as_ints_and_as_strings(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(session, emulator, text="sunset", extras="url_l,geo", per_page="300")
    photos = [p for p in body["photos"]["photo"] if "url_l" in p and p["accuracy"] != 0]
    assert {type(p["width_l"]) for p in photos} == {int, str}
    assert {type(p["latitude"]) for p in photos} == {float, str}


async def test_photos_without_geo_report_zero_coordinates_not_absence(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(session, emulator, text="beach", has_geo="0", extras="geo")
    assert body["photos"]["total"] > 0
    for p in body["photos"]["photo"]:
        assert (p["latitude"], p["longitude"], p["accuracy"]) == (0, 0, 0)


async def test_per_page_defaults_to_100_and_caps_at_500_or_250_for_geo_queries(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    plain = await flickr(session, emulator, text="sunset")
    big = await flickr(session, emulator, text="sunset", per_page="900")
    geo = await flickr(session, emulator, text="sunset", per_page="500", bbox="-180,-90,180,90")
    assert plain["photos"]["perpage"] == 100 and len(plain["photos"]["photo"]) == 100
    assert big["photos"]["perpage"] == 500 and len(big["photos"]["photo"]) == 500
    assert geo["photos"]["perpage"] == 250 and len(geo["photos"]["photo"]) == 250
    assert big["photos"]["pages"] == -(-big["photos"]["total"] // 500)


async def _all_pages(
    session: aiohttp.ClientSession, emu: RunningEmulator, pages: int, **params: str
) -> list[str]:
    ids: list[str] = []
    for page in range(1, pages + 1):
        body = await flickr(session, emu, per_page="500", page=str(page), **params)
        ids.extend(p["id"] for p in body["photos"]["photo"])
    return ids


async def test_no_search_ever_returns_more_than_4000_results(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    truth = emulator.world.flickr_search_truth(text="sunset", has_geo=None)
    assert len(truth) > 4000
    ids = await _all_pages(session, emulator, 12, text="sunset")
    assert len(ids[:4000]) == 4000
    # Pages past the cap repeat the last reachable page instead of going further.
    assert ids[4000:4500] == ids[3500:4000] == ids[-500:]
    assert len(set(ids)) < len(truth)


async def test_results_past_about_1500_repeat_photos_already_returned(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    ids = await _all_pages(session, emulator, 8, text="sunset", sort="date-posted-asc")
    assert len(set(ids[:1400])) == 1400
    repeats = [i for pos, i in enumerate(ids) if i in set(ids[:pos])]
    assert len(repeats) > 100
    assert all(pos >= 1400 for pos, i in enumerate(ids) if i in set(ids[:pos]))


async def test_narrow_upload_windows_return_every_photo_exactly_once(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    truth = {p.id for p in emulator.world.flickr_search_truth(text="sunset")}
    seen: list[str] = []
    month = 30 * 86400
    for start in range(Y2020, Y2021, month):
        params = {"text": "sunset", "has_geo": "1", "min_upload_date": str(start)}
        params["max_upload_date"] = str(min(start + month - 1, Y2021 - 1))
        body = await flickr(session, emulator, per_page="250", **params)
        assert body["photos"]["total"] < 250
        seen.extend(p["id"] for p in body["photos"]["photo"])
    year = {
        p.id
        for p in emulator.world.flickr_search_truth(
            text="sunset", min_upload=Y2020, max_upload=Y2021 - 1
        )
    }
    assert len(seen) == len(set(seen)) and set(seen) == year and year <= truth


async def test_upload_dates_accept_unix_seconds_and_mysql_datetimes(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    unix = await flickr(
        session, emulator, text="bridge", min_upload_date=str(Y2020), max_upload_date=str(Y2021)
    )
    mysql = await flickr(
        session,
        emulator,
        text="bridge",
        min_upload_date="2020-01-01 00:00:00",
        max_upload_date="2021-01-01",
    )
    assert unix["photos"]["total"] == mysql["photos"]["total"] > 0
    assert unix["photos"]["photo"] == mysql["photos"]["photo"]


async def test_text_search_is_case_insensitive_and_reaches_descriptions(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    lower = await flickr(session, emulator, text="castle", extras="tags,description")
    upper = await flickr(session, emulator, text="CASTLE")
    assert lower["photos"]["total"] == upper["photos"]["total"] > 0
    tagged = await flickr(session, emulator, tags="castle")
    assert tagged["photos"]["total"] < lower["photos"]["total"]
    by_text = await _all_pages(session, emulator, 2, text="castle", extras="tags,description")
    assert len(by_text) == lower["photos"]["total"]


async def test_filters_bbox_license_and_accuracy_hold(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    bbox = "2.0,48.5,2.7,49.2"
    body = await flickr(
        session, emulator, text="street", bbox=bbox, license="4,5", accuracy="16",
        extras="geo,license", per_page="250",
    )  # fmt: skip
    photos = body["photos"]["photo"]
    assert photos
    for p in photos:
        assert 2.0 <= float(p["longitude"]) <= 2.7 and 48.5 <= float(p["latitude"]) <= 49.2
        assert p["license"] in ("4", "5") and p["accuracy"] == "16"
    truth = emulator.world.flickr_search_truth(
        text="street", bbox=(2.0, 48.5, 2.7, 49.2), licenses=frozenset({4, 5}), accuracy=16
    )
    assert {p["id"] for p in photos} == {p.id for p in truth}


async def test_jsonp_wraps_the_answer_unless_nojsoncallback(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    params = {"method": "flickr.photos.licenses.getInfo", "api_key": FLICKR_KEY, "format": "json"}
    async with session.get(emulator.flickr_api_url, params=params) as resp:
        text = await resp.text()
    assert text.startswith("jsonFlickrApi(") and text.endswith(")")
    assert json.loads(text[len("jsonFlickrApi(") : -1])["stat"] == "ok"


async def test_bad_key_fails_with_code_100_and_http_200(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(flickr_keys=frozenset({"the-only-good-key"}))
    params = {"method": "flickr.photos.search", "text": "x", "format": "json"}
    for key in ("wrong-key", ""):
        query = {**params, "nojsoncallback": "1", "api_key": key}
        async with session.get(emu.flickr_api_url, params=query) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["stat"] == "fail" and body["code"] == 100
        assert body["message"].startswith("Invalid API Key")
        assert "wrong-key" not in json.dumps(body)


async def test_licenses_lists_ids_0_to_10_with_real_names(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(session, emulator, method="flickr.photos.licenses.getInfo")
    rows = body["licenses"]["license"]
    assert [r["id"] for r in rows] == list(range(11))
    by_id = {r["id"]: r for r in rows}
    assert by_id[0]["name"] == "All Rights Reserved" and by_id[0]["url"] == ""
    assert by_id[4]["url"] == "https://creativecommons.org/licenses/by/2.0/"
    assert by_id[9]["name"] == "Public Domain Dedication (CC0)"


async def test_unknown_method_and_parameterless_search_fail_like_flickr(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    unknown = await flickr(session, emulator, method="flickr.nope")
    bare = await flickr(session, emulator)
    assert (unknown["stat"], unknown["code"]) == ("fail", 112)
    assert (bare["stat"], bare["code"]) == ("fail", 3)


async def test_default_format_is_flickr_xml(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    params = {"method": "flickr.photos.search", "api_key": FLICKR_KEY, "text": "castle"}
    async with session.get(emulator.flickr_api_url, params={**params, "extras": "url_l"}) as r:
        root = ElementTree.fromstring(await r.text())
    assert root.tag == "rsp" and root.get("stat") == "ok"
    photos = root.find("photos")
    assert photos is not None and photos.get("perpage") == "100"
    assert len(photos.findall("photo")) == 100 and photos.findall("photo")[0].get("id")
