"""The image CDN serves real, decodable images of the advertised size, and hostile ones."""

from __future__ import annotations

import csv
import io

import aiohttp
from emu_helpers import FLICKR_EXTRAS, Starter, flickr
from PIL import Image, ImageOps

from harvester.emulator import FlickrPhoto, RunningEmulator, Warts, WorldSize


def _decode(body: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(body))
    img.load()
    return img


async def _fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes, int]:
    async with session.get(url) as resp:
        body = await resp.read()
        return resp.status, resp.headers.get("Content-Type", ""), body, resp.content_length or 0


async def test_flickr_sizes_decode_at_the_dimensions_the_api_advertises(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    body = await flickr(session, emulator, text="glacier", extras=FLICKR_EXTRAS, per_page="40")
    checked = {"l": 0, "o": 0}
    for p in body["photos"]["photo"]:
        for size in ("l", "o"):
            if f"url_{size}" not in p or checked[size] >= 5:
                continue
            if size == "o" and max(int(p["width_o"]), int(p["height_o"])) > 1500:
                continue  # big originals render slowly; the Large ones cover the scaling
            status, ctype, data, length = await _fetch(session, p[f"url_{size}"])
            assert status == 200 and ctype.startswith("image/") and length == len(data)
            img = ImageOps.exif_transpose(_decode(data))
            assert img.size == (int(p[f"width_{size}"]), int(p[f"height_{size}"]))
            checked[size] += 1
    assert checked == {"l": 5, "o": 5}


def _first(emu: RunningEmulator, want: str) -> FlickrPhoto:
    return next(
        p
        for p in emu.world.flickr.photos
        if p.original_public
        and max(p.o_width, p.o_height) <= 1400
        and {
            "png": p.originalformat == "png",
            "cmyk": p.cmyk,
            "rotated": p.exif_orientation in (6, 8),
            "framed": bool(p.frames),
        }[want]
    )


async def test_png_cmyk_rotated_and_framed_originals_are_served_as_the_world_says(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    base = emulator.base_url
    for want in ("png", "cmyk", "rotated", "framed"):
        p = _first(emulator, want)
        url = f"{base}/cdn/flickr/{p.server}/{p.id}_{p.originalsecret}_o.{p.originalformat}"
        status, ctype, data, _ = await _fetch(session, url)
        assert status == 200
        img = _decode(data)
        if want == "png":
            assert img.format == "PNG" and ctype == "image/png"
        if want == "cmyk":
            assert img.mode == "CMYK"
        if want == "rotated":
            assert img.getexif().get(0x0112) == p.exif_orientation
            assert img.size == (p.o_height, p.o_width)
        if want == "framed":
            band, colour = p.frames[0]
            rgb = img.convert("RGB")
            for xy in ((band // 2, p.o_height // 2), (p.o_width // 2, band // 2)):
                got = rgb.getpixel(xy)
                assert isinstance(got, tuple)
                assert all(abs(g - c) <= 12 for g, c in zip(got, colour, strict=True))


async def test_unknown_photo_or_wrong_secret_is_404(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    p = next(p for p in emulator.world.flickr.photos if p.has_large)
    base = f"{emulator.base_url}/cdn/flickr/{p.server}"
    assert (await _fetch(session, f"{base}/{p.id}_{p.secret}_b.jpg"))[0] == 200
    assert (await _fetch(session, f"{base}/{p.id}_0000000000_b.jpg"))[0] == 404
    assert (await _fetch(session, f"{base}/1_{p.secret}_b.jpg"))[0] == 404


async def test_url_list_rows_lead_to_images_and_hostile_bodies_as_expected(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{emulator.base_url}/_emulator/urls.csv", params={"n": "63"}) as r:
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert len(rows) == 63
    assert list(rows[0]) == ["url", "id", "lat", "lon", "captured_at", "license", "owner", "title"]
    truth = emulator.world.url_list(63, base_url=emulator.base_url)
    assert [t["url"] for t in truth] == [row["url"] for row in rows]
    outcomes = set()
    for row in truth[:3] + [t for t in truth if t["expected"] != "stored"]:
        status, ctype, data, _ = await _fetch(session, row["url"])
        if row["expected"] == "stored":
            assert status == 200 and min(_decode(data).size) >= 500
        elif row["expected"] == "skipped":
            assert status == 200 and max(_decode(data).size) < 500
        else:
            outcomes.add((status, ctype.split(";")[0], len(data) > 0))
    assert (404, "text/plain", True) in outcomes
    assert (200, "image/jpeg", False) in outcomes  # zero bytes served as a JPEG
    assert (200, "image/png", True) in outcomes  # the decompression bomb


async def test_a_clean_url_list_has_only_good_images(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    rows = emulator.world.url_list(20, base_url=emulator.base_url, hostile=False)
    assert {row["expected"] for row in rows} == {"stored"}
    status, _, data, _ = await _fetch(session, rows[8]["url"])
    assert status == 200 and _decode(data).size[0] > 0


async def test_rendered_images_are_cached_by_url(
    emulator: RunningEmulator, session: aiohttp.ClientSession
) -> None:
    url = emulator.world.url_list(1, base_url=emulator.base_url)[0]["url"]
    cache = emulator.state.cache
    first = await _fetch(session, url)
    renders = cache.renders
    second = await _fetch(session, url)
    assert first == second and cache.renders == renders


async def test_image_variety_lets_same_shaped_photos_share_one_render(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(image_variety=1)
    rows = emu.world.url_list(11, base_url=emu.base_url, hostile=False)
    first = await _fetch(session, rows[0]["url"])
    again = await _fetch(session, rows[10]["url"])  # same shape, another photo
    assert first[2] == again[2] and emu.state.cache.renders == 1


async def test_deleted_flickr_photos_redirect_to_the_unavailable_placeholder(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(warts=Warts(deleted_share=0.3))
    body = await flickr(session, emu, text="glacier", extras=FLICKR_EXTRAS, per_page="60")
    photos = [p for p in body["photos"]["photo"] if "url_l" in p]
    deleted = [p for p in photos if emu.state.deletions.flickr(p["id"])]
    live = [p for p in photos if not emu.state.deletions.flickr(p["id"])]
    assert deleted and live
    async with session.get(deleted[0]["url_l"], allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"].endswith("/photo_unavailable.png")
    async with session.get(deleted[0]["url_l"]) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert resp.url.path.endswith("photo_unavailable.png")
        assert _decode(await resp.read()).size == (500, 374)
    status, ctype, _, _ = await _fetch(session, live[0]["url_l"])
    assert status == 200 and ctype == "image/jpeg"


async def test_a_gif_original_is_an_animated_gif_and_its_mediums_are_jpegs(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start(world=WorldSize(flickr_gif_share=0.5))
    p = next(
        p
        for p in emu.world.flickr.photos
        if p.originalformat == "gif" and not p.has_large and "c" in p.sizes()
    )
    base = f"{emu.base_url}/cdn/flickr/{p.server}/{p.id}"
    status, ctype, data, _ = await _fetch(session, f"{base}_{p.originalsecret}_o.gif")
    gif = _decode(data)
    assert status == 200 and ctype == "image/gif" and gif.format == "GIF"
    assert gif.size == (p.o_width, p.o_height) and getattr(gif, "n_frames", 1) > 1
    assert (await _fetch(session, f"{base}_{p.originalsecret}_o.jpg"))[0] == 404
    for size in ("c", "z"):
        status, ctype, data, _ = await _fetch(session, f"{base}_{p.secret}_{size}.jpg")
        medium = _decode(data)
        assert status == 200 and ctype == "image/jpeg" and medium.format == "JPEG"
        assert medium.size == p.sizes()[size]


async def test_a_size_the_api_does_not_offer_is_404(
    start: Starter, session: aiohttp.ClientSession
) -> None:
    emu = await start()
    before_2012 = next(
        p for p in emu.world.flickr.photos if p.dateupload < 1_330_560_000 and p.has_large
    )
    base = f"{emu.base_url}/cdn/flickr/{before_2012.server}/{before_2012.id}_{before_2012.secret}"
    assert (await _fetch(session, f"{base}_z.jpg"))[0] == 200
    assert (await _fetch(session, f"{base}_c.jpg"))[0] == 404  # Medium 800 only since 2012
    bare = await start(warts=Warts(flickr_mediums="none"))
    assert (await _fetch(session, f"{base.replace(emu.base_url, bare.base_url)}_z.jpg"))[0] == 404
