"""The emulated Mapillary Graph API: auth, search limits, entities, batches, sequences."""

from __future__ import annotations

from typing import Any

import aiohttp
import yarl
from emu_helpers import MLY_TOKEN, Starter, mly_headers

from harvester.emulator import AREA, RunningEmulator, Warts
from harvester.emulator.mapillary_world import DENSE_CORE

# Sides just under 0.01 degree: legal under the strict (per-side) reading of the limit.
CORE_BOX = (
    f"{DENSE_CORE[0] - 0.0049},{DENSE_CORE[1] - 0.0049},"
    f"{DENSE_CORE[0] + 0.0049},{DENSE_CORE[1] + 0.0049}"
)

FIELDS = (
    "id,captured_at,compass_angle,computed_compass_angle,geometry,computed_geometry,"
    "camera_type,is_pano,sequence,creator,width,height,thumb_256_url,thumb_1024_url,"
    "thumb_2048_url,thumb_original_url"
)


async def _get(
    session: aiohttp.ClientSession, url: str, **params: str
) -> tuple[int, dict[str, Any]]:
    async with session.get(url, params=params, headers=mly_headers()) as resp:
        body: dict[str, Any] = await resp.json()
        return resp.status, body


def _tile(center: tuple[float, float], half: float) -> str:
    lon, lat = center
    return f"{lon - half},{lat - half},{lon + half},{lat + half}"


async def test_missing_or_bad_token_gets_a_401_graph_error(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(mapillary_tokens=frozenset({MLY_TOKEN}))
    url = f"{emu.mapillary_api_url}/images"
    for headers in ({}, {"Authorization": "OAuth MLY|nope"}, {"Authorization": "OAuth "}):
        async with session.get(
            url, params={"bbox": "4.35,50.85,4.359,50.859"}, headers=headers
        ) as r:
            assert r.status == 401
            error = (await r.json())["error"]
        assert error["type"] == "OAuthException" and error["code"] == 190
        assert {"message", "fbtrace_id"} <= error.keys()
    ok = await session.get(
        url, params={"bbox": "4.35,50.85,4.359,50.859", "access_token": MLY_TOKEN}
    )
    assert ok.status == 200
    ok.release()


async def test_search_returns_requested_fields_in_graph_shapes(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    status, body = await _get(
        session, f"{emulator.mapillary_api_url}/images", bbox=CORE_BOX,
        fields=FIELDS, limit="200",
    )  # fmt: skip
    assert status == 200 and len(body["data"]) == 200
    missing_computed = 0
    for im in body["data"]:
        assert isinstance(im["id"], str) and isinstance(im["captured_at"], int)
        assert im["geometry"]["type"] == "Point" and len(im["geometry"]["coordinates"]) == 2
        assert im["camera_type"] in ("spherical", "equirectangular", "perspective", "fisheye")
        assert im["is_pano"] == (im["camera_type"] in ("spherical", "equirectangular"))
        assert set(im["creator"]) == {"id", "username"}
        assert all(im[f"thumb_{s}_url"].startswith("http") for s in ("256", "1024", "2048"))
        missing_computed += "computed_geometry" not in im
    assert 0 < missing_computed < 200  # optional fields are sometimes absent


# Every image field Mapillary's v4 docs (and its Python SDK's list) name beyond FIELDS.
DOCUMENTED_EXTRA = (
    "altitude,atomic_scale,camera_parameters,computed_altitude,computed_rotation,"
    "exif_orientation,make,model,merge_cc,mesh,quality_score,sfm_cluster,detections"
)


async def test_every_documented_image_field_is_accepted_and_a_made_up_one_refused(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    url = f"{emulator.mapillary_api_url}/images"
    status, body = await _get(
        session, url, bbox=CORE_BOX, fields=f"{FIELDS},{DOCUMENTED_EXTRA}", limit="200"
    )
    assert status == 200 and len(body["data"]) == 200
    for im in body["data"]:
        assert isinstance(im["altitude"], float) and isinstance(im["quality_score"], float)
        assert isinstance(im["camera_parameters"], list) and isinstance(im["exif_orientation"], int)
        assert isinstance(im["detections"]["data"], list)
        if "computed_geometry" in im:  # the reconstruction's own fields come with it
            assert isinstance(im["computed_altitude"], float) and len(im["computed_rotation"]) == 3
            assert isinstance(im["merge_cc"], int) and isinstance(im["atomic_scale"], float)
            assert {"id", "url"} <= im["mesh"].keys() and {"id", "url"} <= im["sfm_cluster"].keys()
        if im["camera_type"] in ("spherical", "equirectangular"):
            assert im["camera_parameters"] == []
        else:
            assert len(im["camera_parameters"]) == 3
    status, body = await _get(session, url, bbox=CORE_BOX, fields="id,no_such_field")
    assert status == 400 and "nonexisting field (no_such_field)" in body["error"]["message"]


async def test_bbox_with_a_side_of_001_degree_is_refused_by_default(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    url = f"{emulator.mapillary_api_url}/images"
    for bbox in ("4.30,50.80,4.31,50.805", "4.30,50.80,4.305,50.81", "4.30,50.80,4.40,50.90"):
        status, body = await _get(session, url, bbox=bbox)
        assert status == 400 and "error" in body and body["error"]["code"] == 100, bbox
    status, _ = await _get(session, url, bbox="4.30,50.80,4.3099,50.8099")
    assert status == 200


async def test_bbox_under_the_area_rule_is_refused_only_over_001_square_degrees(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(warts=Warts(bbox_rule=AREA, dense_refusal_above=None))
    url = f"{emu.mapillary_api_url}/images"
    status, body = await _get(session, url, bbox="4.30,50.80,4.41,50.90")
    assert status == 400 and "error" in body and body["error"]["code"] == 100
    status, _ = await _get(session, url, bbox="4.30,50.80,4.40,50.90")
    assert status == 200


async def test_a_box_holding_too_many_images_is_refused_whatever_the_limit(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emulator = await start(warts=Warts(dense_refusal_above=300))
    url = f"{emulator.mapillary_api_url}/images"
    held = len(emulator.world.mapillary_images_in_bbox(_bounds(CORE_BOX)))
    assert held > 300
    for limit in ("10", "2000"):
        status, body = await _get(session, url, bbox=CORE_BOX, limit=limit, fields="id")
        assert status == 500 and body["error"]["code"] == 1, limit
        assert "reduce the amount of data" in body["error"]["message"]
    lon, lat = DENSE_CORE
    status, body = await _get(session, url, bbox=_tile((lon + 0.3, lat + 0.3), 0.004))
    assert status == 200


async def test_a_box_holding_too_many_images_can_time_out_at_the_gateway_instead(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emulator = await start(warts=Warts(dense_timeout_above=300))
    url = f"{emulator.mapillary_api_url}/images"
    async with session.get(url, params={"bbox": CORE_BOX}, headers=mly_headers()) as resp:
        assert resp.status == 504 and "Gateway Time-out" in await resp.text()
    lon, lat = DENSE_CORE
    status, _ = await _get(session, url, bbox=_tile((lon + 0.3, lat + 0.3), 0.004))
    assert status == 200
    assert emulator.state.stats.snapshot()["gateway_timeout"] == 1


def _bounds(bbox: str) -> tuple[float, float, float, float]:
    minlon, minlat, maxlon, maxlat = (float(v) for v in bbox.split(","))
    return minlon, minlat, maxlon, maxlat


async def test_search_stops_at_2000_and_split_tiles_find_everything(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emulator = await start(warts=Warts(bbox_rule=AREA, dense_refusal_above=None))
    world = emulator.world
    minlon, minlat, maxlon, maxlat = world.mapillary_dense_bbox()
    assert (maxlon - minlon) * (maxlat - minlat) > 0.01
    truth = {im.id for im in world.mapillary_images_in_bbox(world.mapillary_dense_bbox())}
    assert len(truth) > 2000
    found: set[str] = set()
    capped = 0
    tiles = [
        (
            minlon + i * (maxlon - minlon) / 2,
            minlat,
            minlon + (i + 1) * (maxlon - minlon) / 2,
            maxlat,
        )
        for i in range(2)
    ]
    while tiles:
        x0, y0, x1, y1 = tiles.pop()
        status, body = await _get(
            session, f"{emulator.mapillary_api_url}/images", bbox=f"{x0},{y0},{x1},{y1}",
            limit="2000",
        )  # fmt: skip
        assert status == 200 and len(body["data"]) <= 2000
        if len(body["data"]) == 2000:
            capped += 1
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            tiles += [(x0, y0, mx, my), (mx, y0, x1, my), (x0, my, mx, y1), (mx, my, x1, y1)]
        else:
            found |= {im["id"] for im in body["data"]}
    assert capped >= 1 and found == truth


async def test_filters_pano_time_and_creator(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    url = f"{emulator.mapillary_api_url}/images"
    bbox = CORE_BOX
    _, panos = await _get(session, url, bbox=bbox, is_pano="true", fields="is_pano,captured_at")
    assert panos["data"] and all(im["is_pano"] for im in panos["data"])
    _, recent = await _get(
        session, url, bbox=bbox, start_captured_at="2022-01-01T00:00:00Z", fields="captured_at"
    )
    assert recent["data"] and all(im["captured_at"] >= 1_640_995_200_000 for im in recent["data"])
    status, refused = await _get(  # a fraction of a second: not the documented form
        session, url, bbox=bbox, end_captured_at="2022-01-01T23:59:59.999Z", fields="captured_at"
    )
    assert status == 400 and "Invalid datetime" in refused["error"]["message"]
    _, mine = await _get(session, url, bbox=bbox, creator_username="velo_map", fields="creator")
    assert mine["data"] and all(im["creator"]["username"] == "velo_map" for im in mine["data"])


async def test_entity_and_batch_answer_by_id(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    ids = [im.id for im in emulator.world.mapillary.images[:3]]
    base = emulator.mapillary_api_url
    status, one = await _get(session, f"{base}/{ids[0]}", fields="id,sequence,width")
    assert status == 200 and one["id"] == ids[0] and set(one) == {"id", "sequence", "width"}
    status, many = await _get(session, f"{base}/", ids=",".join(ids), fields="captured_at")
    assert status == 200 and set(many) == set(ids)
    assert all(many[i]["id"] == i and "captured_at" in many[i] for i in ids)
    status, body = await _get(session, f"{base}/999")
    assert status == 400 and body["error"]["type"] == "GraphMethodException"


async def test_a_multi_get_naming_one_unknown_id_fails_as_a_whole(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    strict = await start()
    ids = [im.id for im in strict.world.mapillary.images[:3]]
    status, body = await _get(session, f"{strict.mapillary_api_url}/", ids=",".join([*ids, "999"]))
    assert status == 404 and body["error"]["code"] == 803 and "999" in body["error"]["message"]
    lenient = await start(warts=Warts(multiget_drops_unknown=True))
    status, many = await _get(session, f"{lenient.mapillary_api_url}/", ids=",".join([*ids, "9"]))
    assert status == 200 and set(many) == set(ids)


async def test_deleted_images_are_gone_from_search_sequences_entities_and_the_cdn(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    plain = await start()
    seq, _ = plain.world.mapillary_sequence_pairs()[0]
    images = plain.world.mapillary_sequence(seq)
    gone = images[3]
    emu = await start(warts=Warts(mapillary_deleted=frozenset({gone.id})))
    base = emu.mapillary_api_url
    _, listed = await _get(session, f"{base}/image_ids", sequence_id=seq)
    assert [r["id"] for r in listed["data"]] == [im.id for im in images if im is not gone]
    status, body = await _get(session, f"{base}/{gone.id}", fields="thumb_1024_url")
    assert status == 400 and body["error"]["code"] == 100
    _, alive = await _get(session, f"{plain.mapillary_api_url}/{gone.id}", fields="thumb_1024_url")
    thumb = alive["thumb_1024_url"].replace(plain.base_url, emu.base_url)
    async with session.get(thumb) as resp:
        assert resp.status == 404
    stats = emu.state.stats.snapshot()
    assert stats["deleted"] == 1


async def test_image_ids_lists_a_sequence_in_capture_order(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    db_seq, _ = emulator.world.mapillary_sequence_pairs()[0]
    status, body = await _get(
        session, f"{emulator.mapillary_api_url}/image_ids", sequence_id=db_seq
    )
    assert status == 200
    expected = emulator.world.mapillary_sequence(db_seq)
    assert [row["id"] for row in body["data"]] == [im.id for im in expected]
    assert [im.captured_at for im in expected] == sorted(im.captured_at for im in expected)


async def test_paths_are_travelled_twice_at_different_times(
    emulator: RunningEmulator,
) -> None:
    world = emulator.world
    pairs = world.mapillary_sequence_pairs()
    assert len(pairs) >= 4
    panoramic = 0
    for db_seq, query_seq in pairs:
        a, b = world.mapillary_sequence(db_seq), world.mapillary_sequence(query_seq)
        assert len(a) == len(b) and a[0].captured_at != b[0].captured_at
        assert abs(a[-1].lat - b[-1].lat) < 2e-4 and abs(a[-1].lon - b[-1].lon) < 2e-4
        panoramic += a[0].is_pano and b[0].is_pano
    assert panoramic >= 2


async def test_thumbnail_urls_expire_and_fresh_ones_work(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(url_ttl_s=600)
    image = emu.world.mapillary.images[0]
    _, body = await _get(session, f"{emu.mapillary_api_url}/{image.id}", fields="thumb_256_url")
    url = body["thumb_256_url"]
    async with session.get(url) as resp:
        assert resp.status == 200
    async with session.get(url.replace("&oh=", "&oh=0")) as resp:
        assert resp.status == 403
    async with session.post(f"{emu.base_url}/_emulator/clock", params={"advance": "601"}) as r:
        assert r.status == 200
    async with session.get(url) as resp:
        assert resp.status == 403 and "expired" in await resp.text()
    _, fresh = await _get(session, f"{emu.mapillary_api_url}/{image.id}", fields="thumb_256_url")
    async with session.get(fresh["thumb_256_url"]) as resp:
        assert resp.status == 200


async def test_collections_come_in_pages_whose_next_url_holds_the_token(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(warts=Warts(mapillary_page_size=50))
    seq, _ = emu.world.mapillary_sequence_pairs()[0]
    expected = [im.id for im in emu.world.mapillary_sequence(seq)]
    url, params, seen = f"{emu.mapillary_api_url}/image_ids", {"sequence_id": seq}, []
    while True:
        status, body = await _get(session, url, **params)
        assert status == 200 and len(body["data"]) <= 50
        seen += [row["id"] for row in body["data"]]
        if "paging" not in body:
            break
        link = yarl.URL(body["paging"]["next"])
        assert link.query["access_token"] == MLY_TOKEN  # Graph writes it in, header or not
        assert link.query["after"] == body["paging"]["cursors"]["after"]
        params = {"sequence_id": seq, "after": link.query["after"]}
    assert seen == expected and len(expected) > 100
    status, body = await _get(session, url, sequence_id=seq, after="not-a-cursor")
    assert status == 400 and "cursor" in body["error"]["message"]
    stats = emu.state.stats.snapshot()
    assert stats["token_in_url"] == 0  # every call above sent it in the header
    async with session.get(link) as resp:
        assert resp.status == 200
    assert emu.state.stats.snapshot()["token_in_url"] == 1


async def test_a_stricter_bbox_limit_and_retired_fields_are_refused_as_graph_words_them(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(warts=Warts(bbox_limit=0.001, mapillary_retired_fields=frozenset({"make"})))
    url = f"{emu.mapillary_api_url}/images"
    status, body = await _get(session, url, bbox=_tile(DENSE_CORE, 0.0005))
    assert status == 400 and "smaller than 0.001 degrees" in body["error"]["message"]
    status, body = await _get(session, url, bbox=_tile(DENSE_CORE, 0.0004), fields="id,make")
    assert status == 400 and "nonexisting field (make)" in body["error"]["message"]
    status, body = await _get(session, url, bbox=_tile(DENSE_CORE, 0.0004), fields="id,model")
    assert status == 200 and body["data"]


async def test_some_reconstructions_are_kilometres_off_while_the_camera_fix_stays_true(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    """As Mapillary's own now and then are, by default: the camera's geometry and compass
    angle are untouched, a wild computed position lies 0.4 to 2 km away."""
    emu = await start(mapillary_tokens=frozenset({MLY_TOKEN}))
    status, body = await _get(
        session, f"{emu.mapillary_api_url}/images", bbox=CORE_BOX, fields=FIELDS
    )
    assert status == 200
    world, wild = emu.world.mapillary.by_id, 0
    for im in body["data"]:
        truth = world[im["id"]]
        assert im["geometry"]["coordinates"] == [truth.lon, truth.lat]
        assert im["compass_angle"] == truth.compass_angle
        if truth.computed is None:
            continue
        lon, lat = im["computed_geometry"]["coordinates"]
        off = max(abs(lon - truth.lon), abs(lat - truth.lat))
        wild += off > 0.003
        assert off < 1e-4 or 0.003 < off <= 0.02
    assert 0 < wild < len(body["data"]) * 0.1
