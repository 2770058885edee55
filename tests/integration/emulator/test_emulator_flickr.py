"""The emulated Flickr REST API answers like the real one, warts included."""

from __future__ import annotations

import calendar
import json
import re
from xml.etree import ElementTree

import aiohttp
from emu_helpers import FLICKR_EXTRAS, FLICKR_KEY, Starter, flickr

from harvester.emulator import RunningEmulator, Warts, World, WorldSize
from harvester.emulator.server import _parser, config_from_args

Y2010 = calendar.timegm((2010, 1, 1, 0, 0, 0))
Y2012_MARCH = calendar.timegm((2012, 3, 1, 0, 0, 0))
Y2020 = calendar.timegm((2020, 1, 1, 0, 0, 0))
Y2021 = calendar.timegm((2021, 1, 1, 0, 0, 0))
# A limiting agent for geo queries, before any photo: without one they see only 12 hours.
SINCE_2004 = {"min_upload_date": "2004-01-01"}


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
        # Large or the original, unless its owner hides the original (then Mediums only).
        assert "url_l" in p or "url_o" in p or "originalsecret" not in p
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
    body = await flickr(session, emulator, text="beach", has_geo="0", extras="geo", **SINCE_2004)
    assert int(body["photos"]["total"]) > 0
    for p in body["photos"]["photo"]:
        assert (p["latitude"], p["longitude"], p["accuracy"]) == (0, 0, 0)


async def test_per_page_defaults_to_100_and_caps_at_500_or_250_for_geo_queries(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    plain = await flickr(session, emulator, text="sunset")
    big = await flickr(session, emulator, text="sunset", per_page="900")
    geo = await flickr(
        session, emulator, text="sunset", per_page="500", bbox="-180,-90,180,90", **SINCE_2004
    )
    assert plain["photos"]["perpage"] == 100 and len(plain["photos"]["photo"]) == 100
    assert big["photos"]["perpage"] == 500 and len(big["photos"]["photo"]) == 500
    assert geo["photos"]["perpage"] == 250 and len(geo["photos"]["photo"]) == 250
    assert big["photos"]["pages"] == -(-int(big["photos"]["total"]) // 500)
    # has_geo alone makes a geo query too (as it does for the limiting-agent rule).
    tagged = await flickr(
        session, emulator, text="sunset", per_page="500", has_geo="1", **SINCE_2004
    )
    assert tagged["photos"]["perpage"] == 250 and len(tagged["photos"]["photo"]) == 250


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
        assert int(body["photos"]["total"]) < 250
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
    assert int(unix["photos"]["total"]) == int(mysql["photos"]["total"]) > 0
    assert unix["photos"]["photo"] == mysql["photos"]["photo"]


async def test_text_search_is_case_insensitive_and_reaches_descriptions(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    lower = await flickr(session, emulator, text="castle", extras="tags,description")
    upper = await flickr(session, emulator, text="CASTLE")
    assert int(lower["photos"]["total"]) == int(upper["photos"]["total"]) > 0
    tagged = await flickr(session, emulator, tags="castle")
    assert int(tagged["photos"]["total"]) < int(lower["photos"]["total"])
    by_text = await _all_pages(session, emulator, 2, text="castle", extras="tags,description")
    assert len(by_text) == int(lower["photos"]["total"])


async def test_filters_bbox_license_and_accuracy_hold(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    bbox = "2.0,48.5,2.7,49.2"
    body = await flickr(
        session, emulator, text="street", bbox=bbox, license="4,5", accuracy="16",
        extras="geo,license", per_page="250", **SINCE_2004,
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


async def test_licenses_lists_ids_0_to_16_with_real_names_in_flickrs_order(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(session, emulator, method="flickr.photos.licenses.getInfo")
    rows = body["licenses"]["license"]
    assert [r["id"] for r in rows][:4] == [0, 4, 6, 3]  # not by id, as Flickr lists them
    assert sorted(r["id"] for r in rows) == list(range(17))
    by_id = {r["id"]: r for r in rows}
    assert by_id[0]["name"] == "All Rights Reserved" and "flickrhelp.com" in by_id[0]["url"]
    assert (by_id[4]["name"], by_id[4]["url"]) == (
        "CC BY 2.0",
        "https://creativecommons.org/licenses/by/2.0/",
    )
    assert by_id[9]["name"] == "Public Domain Dedication (CC0)"
    assert (by_id[16]["name"], by_id[16]["url"]) == (
        "CC BY-NC-ND 4.0",
        "https://creativecommons.org/licenses/by-nc-nd/4.0/",
    )


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


async def test_total_is_a_string_and_a_page_past_the_last_repeats_the_last_page(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    strict, lenient = (
        await start(),
        await start(warts=Warts(flickr_total_as_string=False, flickr_past_last_repeats=False)),
    )
    window = {"text": "glacier", "min_upload_date": str(Y2020), "max_upload_date": str(Y2021)}
    last = await flickr(session, strict, per_page="10", page="1", **window)
    pages, total = last["photos"]["pages"], last["photos"]["total"]
    assert isinstance(total, str) and isinstance(pages, int) and 10 < int(total) < 500
    final = await flickr(session, strict, per_page="10", page=str(pages), **window)
    past = await flickr(session, strict, per_page="10", page=str(pages + 3), **window)
    assert past["photos"]["photo"] == final["photos"]["photo"] != []
    none = await flickr(session, strict, text="no-such-word-anywhere")
    assert none["photos"]["total"] == "0" and none["photos"]["photo"] == []
    plain = await flickr(session, lenient, per_page="10", page=str(pages + 3), **window)
    assert plain["photos"]["total"] == int(total) and plain["photos"]["photo"] == []


async def test_a_querys_first_search_can_answer_a_blank_total_and_a_page_come_back_empty(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    """flickrapi #109's answer (stat ok, total "", pages 0, no photos) to a query's first
    search, in JSON as in XML, and an empty page before the last on its first ask; each
    asked again is answered truly, and no other query or page is touched."""
    emu = await start(warts=Warts(flickr_blank_total_share=1.0, flickr_empty_page_share=1.0))
    window = {"text": "glacier", "min_upload_date": str(Y2020), "max_upload_date": str(Y2021)}
    blank = await flickr(session, emu, per_page="10", **window)
    assert blank["stat"] == "ok" and blank["photos"]["photo"] == []
    assert (blank["photos"]["total"], blank["photos"]["pages"]) == ("", 0)
    empty, full = [await flickr(session, emu, per_page="10", **window) for _ in range(2)]
    assert empty["photos"]["photo"] == [] and len(full["photos"]["photo"]) == 10
    assert empty["photos"]["pages"] == full["photos"]["pages"] > 2
    assert empty["photos"]["total"] == full["photos"]["total"]
    last = await flickr(session, emu, per_page="10", page=str(full["photos"]["pages"]), **window)
    assert last["photos"]["photo"] != []  # the last page is never the empty one
    xml = {"method": "flickr.photos.search", "api_key": FLICKR_KEY, "text": "castle"}
    async with session.get(emu.flickr_api_url, params=xml) as resp:
        photos = ElementTree.fromstring(await resp.text()).find("photos")
    assert photos is not None and (photos.get("total"), photos.get("pages")) == ("", "0")
    for total in ("", "0"):  # a query nothing matches is blank first, then "0"
        none = await flickr(session, emu, text="no-such-word-anywhere")
        assert (none["photos"]["total"], none["photos"]["pages"]) == (total, 0)


async def test_an_overcounted_total_lists_nothing_past_its_photos_until_the_announced_last(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    """A total that counts photos no page lists: the pages between the listed ones and the
    announced last answer no photos, every time; past the announced last, the last listed
    page comes again (the repeat every search has)."""
    emu = await start(warts=Warts(flickr_total_overcount=25))
    window = {"text": "glacier", "min_upload_date": str(Y2020), "max_upload_date": str(Y2021)}
    first = await flickr(session, emu, per_page="10", **window)
    total, pages = int(first["photos"]["total"]), first["photos"]["pages"]
    listed = total - 25
    assert pages == -(-total // 10) and listed > 10
    photos = []
    for page in range(1, pages + 1):
        asks = range(2)
        again = [await flickr(session, emu, per_page="10", page=str(page), **window) for _ in asks]
        assert again[0] == again[1]  # asked again, the same answer
        photos.append([p["id"] for p in again[0]["photos"]["photo"]])
    listed_pages = -(-listed // 10)
    assert all(photos[:listed_pages]) and sum(map(len, photos)) == listed
    assert photos[listed_pages:] == [[]] * (pages - listed_pages) and pages - listed_pages >= 2
    past = await flickr(session, emu, per_page="10", page=str(pages + 1), **window)
    assert [p["id"] for p in past["photos"]["photo"]] == photos[listed_pages - 1]


async def test_coarse_taken_dates_carry_their_granularity(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(world=WorldSize(flickr_taken_granularity=(0.2, 0.2, 0.2)))
    body = await flickr(session, emu, text="sunset", extras="date_taken", per_page="500")
    seen: dict[int, list[str]] = {}
    for p in body["photos"]["photo"]:
        seen.setdefault(int(p["datetakengranularity"]), []).append(p["datetaken"])
    assert set(seen) == {0, 4, 6, 8} and all(len(seen[g]) > 50 for g in (4, 6, 8))
    assert {type(p["datetakengranularity"]) for p in body["photos"]["photo"]} == {int, str}
    # A month is its first day (or day 00, as older records have it); a year its 1 January.
    assert all(re.fullmatch(r"\d{4}-\d\d-0[01] 00:00:00", t) for t in seen[4])
    assert {t[8:10] for t in seen[4]} == {"00", "01"}
    assert all(re.fullmatch(r"\d{4}-01-01 00:00:00", t) for t in seen[6] + seen[8])
    fine = await start(world=WorldSize(flickr_taken_granularity=(0, 0, 0)))
    body = await flickr(session, fine, text="sunset", extras="date_taken", per_page="500")
    assert {int(p["datetakengranularity"]) for p in body["photos"]["photo"]} == {0}


MEDIUM_EXTRAS = "url_m,url_n,url_w,url_z,url_c,url_l,url_o,o_dims,date_upload,original_format"


async def test_medium_sizes_never_exceed_the_original_and_medium_800_starts_in_2012(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start()
    edges = {"m": 240, "n": 320, "w": 400, "z": 640, "c": 800, "l": 1024}
    old, new = 0, 0
    for since, until in ((Y2010, Y2012_MARCH - 1), (Y2012_MARCH, Y2021)):
        body = await flickr(
            session, emu, text="street", extras=MEDIUM_EXTRAS, per_page="500",
            min_upload_date=str(since), max_upload_date=str(until),
        )  # fmt: skip
        for p in body["photos"]["photo"]:
            photo = emu.world.flickr_by_id[p["id"]]
            longest = max(photo.o_width, photo.o_height)
            for size, edge in edges.items():
                offered = f"url_{size}" in p
                # Sizes are made by shrinking; Medium 800 only for uploads since March 2012.
                made = longest > edge and (size != "c" or since == Y2012_MARCH)
                assert offered == (made if size != "l" else photo.has_large), (p["id"], size)
                if offered:
                    assert max(int(p[f"width_{size}"]), int(p[f"height_{size}"])) == edge
                    assert p[f"url_{size}"].endswith(f"_{'b' if size == 'l' else size}.jpg")
            old += since == Y2010 and "url_z" in p
            new += since == Y2012_MARCH and "url_c" in p
    assert old > 20 and new > 20
    bare = await start(warts=Warts(flickr_mediums="none"))
    body = await flickr(session, bare, text="street", extras=MEDIUM_EXTRAS, per_page="500")
    assert not [k for p in body["photos"]["photo"] for k in p if k[:6] in ("url_z", "url_c")]


async def test_gif_and_hidden_originals_leave_only_their_jpeg_sizes(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(world=WorldSize(flickr_gif_share=0.3, flickr_hidden_original_share=0.3))
    body = await flickr(session, emu, text="sunset", extras=MEDIUM_EXTRAS, per_page="500")
    photos = body["photos"]["photo"]
    gifs = [p for p in photos if p.get("originalformat") == "gif"]
    assert len(gifs) > 50 and all(p["url_o"].endswith("_o.gif") for p in gifs)
    hidden = [p for p in photos if "originalsecret" not in p]
    assert len(hidden) > 50
    assert all("url_o" not in p and "o_width" not in p for p in hidden)
    # An original without a Large is hidden only by the trait; with a Large, by the world.
    assert any("url_l" not in p and "url_z" in p for p in hidden)


def test_flickr_wart_flags_default_to_the_strict_side_and_set_the_config() -> None:
    strict = config_from_args(_parser().parse_args([]))
    assert strict.world == WorldSize() and strict.world.flickr_gif_share > 0
    assert min(strict.world.flickr_taken_granularity) > 0
    assert strict.world.flickr_hidden_original_share > 0
    warts = strict.warts
    assert (warts.flickr_mediums, warts.flickr_total_as_string) == ("dated", True)
    assert warts.flickr_past_last_repeats and warts.flickr_geo_recent_only
    assert warts.flickr_blank_total_share == warts.flickr_empty_page_share == 0  # fault rates
    assert warts.flickr_total_overcount == 0
    flags = "--granularity-mix 0.1,0,0.2 --gif-share 0 --hidden-original-share 0.5"
    flags += " --flickr-mediums none --total-as-number --empty-past-last-page"
    flags += " --geo-without-limit --blank-total-share 0.1 --empty-page-share 0.2"
    flags += " --total-overcount 30"
    lenient = config_from_args(_parser().parse_args(flags.split()))
    assert lenient.world == WorldSize(
        flickr_taken_granularity=(0.1, 0, 0.2), flickr_gif_share=0, flickr_hidden_original_share=0.5
    )
    assert lenient.warts == Warts(
        flickr_mediums="none",
        flickr_total_as_string=False,
        flickr_past_last_repeats=False,
        flickr_geo_recent_only=False,
        flickr_blank_total_share=0.1,
        flickr_empty_page_share=0.2,
        flickr_total_overcount=30,
    )


def test_photo_traits_change_no_other_photo() -> None:
    """Coarse dates, GIFs and hidden originals come from each photo's own hash."""
    plain = WorldSize(
        flickr_taken_granularity=(0, 0, 0), flickr_gif_share=0, flickr_hidden_original_share=0
    )
    before = {p.id: p for p in World(7, plain).flickr.photos}
    after = World(7).flickr.photos
    assert [p.id for p in after] == list(before)
    changed = [p for p in after if p != before[p.id]]
    assert 0 < len(changed) < len(after) // 5
    kept = ("o_width", "o_height", "title", "dateupload", "has_large", "lat", "frames")
    assert all(getattr(p, k) == getattr(before[p.id], k) for p in after for k in kept)


async def test_a_geo_query_without_a_tag_or_min_date_sees_only_the_last_12_hours(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    """flickr.photos.search: "If no limiting factor is passed we return only photos added in
    the last 12 hours"; a tag, min_upload_date or min_taken_date limits, free text and
    max_upload_date alone are not vouched for."""
    strict, lenient = await start(), await start(warts=Warts(flickr_geo_recent_only=False))
    recent = max((p for p in strict.world.flickr.photos if p.has_geo), key=lambda p: p.dateupload)
    # The clock stands one hour after the newest geotagged upload.
    for emu in (strict, lenient):
        emu.state.clock.advance(recent.dateupload + 3600 - emu.state.clock.now())
    world = "-180,-90,180,90"
    geo_only = await flickr(session, strict, bbox=world, extras="date_upload", per_page="250")
    found = [(p["id"], int(p["dateupload"])) for p in geo_only["photos"]["photo"]]
    cutoff = recent.dateupload + 3600 - 12 * 3600
    assert (recent.id, recent.dateupload) in found
    assert all(uploaded >= cutoff for _, uploaded in found)
    texts = await flickr(session, strict, text="sunset", has_geo="1", max_upload_date=str(Y2021))
    assert texts["photos"]["total"] == "0"
    epoch = await flickr(session, strict, bbox=world, min_upload_date="0", per_page="250")
    assert epoch["photos"]["total"] == geo_only["photos"]["total"]  # "0" limits nothing
    limited = [
        await flickr(session, strict, bbox=world, min_upload_date=str(Y2010)),
        await flickr(session, strict, has_geo="1", min_taken_date="2010-01-01"),
        await flickr(session, strict, bbox=world, tags="sunset"),
        await flickr(session, lenient, bbox=world, text="sunset"),
    ]
    for body in limited:
        assert int(body["photos"]["total"]) > 1000


async def test_large_1600_and_2048_have_secrets_of_their_own_and_follow_the_original(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(
        session, emulator, text="sunset", extras="url_h,url_k,url_l,o_dims,date_upload",
        min_upload_date=str(Y2010), max_upload_date=str(Y2020), per_page="500",
    )  # fmt: skip
    photos = body["photos"]["photo"]
    with_k = [p for p in photos if "url_k" in p]
    assert with_k and any("url_h" in p and "url_k" not in p for p in photos)
    for p in photos:
        if "url_h" in p or "url_k" in p:  # the owner lets the original be seen, since 2012-03
            assert "o_width" in p and int(p["dateupload"]) >= Y2012_MARCH
    for p in with_k[:5]:
        assert max(int(p["width_k"]), int(p["height_k"])) == 2048
        own = p["url_k"].rsplit("/", 1)[1].split("_")[1]
        assert own != p["secret"] and p["url_l"].endswith(f"_{p['secret']}_b.jpg")
        async with session.get(p["url_k"]) as good:
            assert good.status == 200 and good.content_type == "image/jpeg"
        built = p["url_l"].replace("_b.jpg", "_k.jpg")  # the photo's secret with size k
        async with session.get(built) as bad:
            assert bad.status == 404
