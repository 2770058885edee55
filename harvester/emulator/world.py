"""One deterministic world behind every endpoint, with ground-truth helpers for tests.

Tests ask the world what a complete harvest must contain (all matching photos,
every image in a box) instead of hard-coding numbers that drift with the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harvester.emulator.config import WorldSize
from harvester.emulator.flickr_world import (
    EDGES,
    FlickrIndex,
    FlickrPhoto,
    SearchQuery,
    generate_photos,
)
from harvester.emulator.images import HOSTILE_KINDS, ImageRecipe
from harvester.emulator.mapillary_world import (
    DENSE_CENTER,
    MapillaryImage,
    MapillaryIndex,
    generate_images,
)

URL_KINDS_HOSTILE: tuple[str, ...] = (*HOSTILE_KINDS, "not_found", "too_small")
# An original's `originalformat` -> the renderer's format name.
ORIGINAL_FORMATS = {"jpg": "jpeg", "png": "png", "gif": "gif"}
WEB_LICENSES = ("CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "all-rights-reserved")


@dataclass(frozen=True)
class WebImage:
    """One row of a URL-list campaign and what a correct harvest does with it."""

    index: int
    kind: str  # "ok", "too_small", "not_found" or a hostile kind
    recipe: ImageRecipe | None
    hostile_list: bool = True

    @property
    def id(self) -> str:
        """ "w" rows come from lists with hostile entries, "c" rows from clean ones."""
        return f"{'w' if self.hostile_list else 'c'}{self.index:07d}"


class World:
    """Flickr photos, Mapillary images and URL-list rows, all from `seed`."""

    def __init__(self, seed: int, size: WorldSize | None = None) -> None:
        self.seed = seed
        self.size = size or WorldSize()
        self.flickr = FlickrIndex(generate_photos(seed, self.size))
        self.flickr_by_id = {p.id: p for p in self.flickr.photos}
        self.mapillary = MapillaryIndex(generate_images(seed, self.size))

    # ---- Flickr -------------------------------------------------------------------

    def flickr_search_truth(
        self,
        *,
        text: str | None = None,
        tags: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        min_upload: int | None = None,
        max_upload: int | None = None,
        has_geo: bool | None = True,
        accuracy: int | None = None,
        licenses: frozenset[int] | None = None,
        min_taken: int | None = None,
        max_taken: int | None = None,
    ) -> list[FlickrPhoto]:
        """Every photo a complete search would find, each once, oldest upload first."""
        query = SearchQuery(
            text=text,
            tags=tuple(t.strip().lower() for t in (tags or "").split(",") if t.strip()),
            bbox=bbox,
            has_geo=has_geo,
            accuracy=accuracy,
            min_upload=min_upload,
            max_upload=max_upload,
            min_taken=min_taken,
            max_taken=max_taken,
            licenses=licenses,
            sort="date-posted-asc",
        )
        return self.flickr.search(query)

    def flickr_recipe(self, photo: FlickrPhoto, size: str) -> ImageRecipe:
        """The picture behind a photo's URL of one size: a suffix of `SIZES` (Large "b",
        Medium "z"...: always a JPEG) or the Original "o" (in the format it was uploaded)."""
        seed = int(photo.id) % 2**31
        if size != "o":
            w, h = photo.dims_at(EDGES[size])
            scale = w / photo.o_width
            frames = tuple((max(1, round(bw * scale)), c) for bw, c in photo.frames)
            return ImageRecipe(seed, w, h, frames, photo.uniform_sky)
        return ImageRecipe(
            seed,
            photo.o_width,
            photo.o_height,
            photo.frames,
            photo.uniform_sky,
            fmt=ORIGINAL_FORMATS.get(photo.originalformat, "jpeg"),
            cmyk=photo.cmyk,
            exif_orientation=photo.exif_orientation,
            progressive=photo.progressive,
        )

    # ---- Mapillary ----------------------------------------------------------------

    def mapillary_images_in_bbox(
        self,
        bbox: tuple[float, float, float, float],
        *,
        is_pano: bool | None = None,
        start_captured_at: int | None = None,
        end_captured_at: int | None = None,
        sequence_id: str | None = None,
        creator_username: str | None = None,
    ) -> list[MapillaryImage]:
        """Every image in the box passing the filters (no 2,000 cap); times in ms."""
        return mapillary_filter(
            self.mapillary.in_bbox(bbox),
            is_pano=is_pano,
            start_captured_at=start_captured_at,
            end_captured_at=end_captured_at,
            sequence_id=sequence_id,
            creator_username=creator_username,
        )

    def mapillary_sequence(self, sequence_id: str) -> list[MapillaryImage]:
        """A sequence's images in capture order."""
        return list(self.mapillary.by_sequence.get(sequence_id, ()))

    def mapillary_sequence_pairs(self) -> list[tuple[str, str]]:
        """(database, query) sequence ids of paths travelled twice."""
        by_path: dict[str, dict[int, str]] = {}
        for im in self.mapillary.images:
            if not im.path.startswith("dense-"):
                by_path.setdefault(im.path, {})[im.travel] = im.sequence
        return [(t[0], t[1]) for t in by_path.values() if 0 in t and 1 in t]

    def mapillary_dense_bbox(self) -> tuple[float, float, float, float]:
        """A box larger than 0.01 sq deg holding the dense area (> 2,000 images)."""
        lon, lat = DENSE_CENTER
        return (lon - 0.06, lat - 0.05, lon + 0.06, lat + 0.05)

    def mapillary_recipe(self, image: MapillaryImage, longest: int | None) -> ImageRecipe:
        w, h = image.width, image.height
        if longest is not None and longest < max(w, h):
            scale = longest / max(w, h)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
        return ImageRecipe(int(image.id) % 2**31, w, h)

    # ---- URL lists ----------------------------------------------------------------

    def web_image(self, index: int, *, hostile: bool = True) -> WebImage:
        """Row `index` of the endless URL list: the same whatever list length is asked."""
        every = self.size.hostile_urls_every
        if hostile and every > 0 and index % every == every - 1:
            kind = URL_KINDS_HOSTILE[(index // every) % len(URL_KINDS_HOSTILE)]
        else:
            kind = "ok"
        seed = (self.seed * 1_000_033 + index) % 2**31
        if kind == "ok":
            shapes = ((1600, 1200), (1280, 960), (1024, 768), (2048, 1365), (900, 1200))
            w, h = shapes[index % len(shapes)]
            fmt = "png" if index % 17 == 5 else "jpeg"
            return WebImage(index, kind, ImageRecipe(seed, w, h, fmt=fmt), hostile)
        if kind == "too_small":
            return WebImage(index, kind, ImageRecipe(seed, 400, 300), hostile)
        return WebImage(index, kind, None, hostile)

    def url_list(self, n: int, *, base_url: str, hostile: bool = True) -> list[dict[str, str]]:
        """Rows for a URL-list campaign; `expected` says what a correct harvest does."""
        rows = []
        for i in range(n):
            item = self.web_image(i, hostile=hostile)
            ext = "png" if item.recipe is not None and item.recipe.fmt == "png" else "jpg"
            captured = datetime.fromtimestamp(1_500_000_000 + i * 3_607, UTC)
            rows.append(
                {
                    "url": f"{base_url}/cdn/web/{item.id}.{ext}",
                    "id": item.id,
                    "lat": f"{45.0 + (i * 0.0137) % 10:.6f}",
                    "lon": f"{5.0 + (i * 0.0291) % 20:.6f}",
                    "captured_at": captured.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "license": WEB_LICENSES[i % len(WEB_LICENSES)],
                    "owner": f"owner{i % 37}",
                    "title": f"Street view {i}",
                    "expected": _expected(item.kind),
                }
            )
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "flickr_photos": len(self.flickr.photos),
            "mapillary_images": len(self.mapillary.images),
            "mapillary_sequences": len(self.mapillary.by_sequence),
        }


def _expected(kind: str) -> str:
    if kind == "ok":
        return "stored"
    if kind == "too_small":
        return "skipped"
    return "failed"


def mapillary_filter(
    images: list[MapillaryImage],
    *,
    is_pano: bool | None = None,
    start_captured_at: int | None = None,
    end_captured_at: int | None = None,
    sequence_id: str | None = None,
    creator_username: str | None = None,
) -> list[MapillaryImage]:
    """The Graph search filters, applied in Python; capture times in ms."""
    return [
        im
        for im in images
        if (is_pano is None or im.is_pano == is_pano)
        and (start_captured_at is None or im.captured_at >= start_captured_at)
        and (end_captured_at is None or im.captured_at <= end_captured_at)
        and (sequence_id is None or im.sequence == sequence_id)
        and (creator_username is None or im.creator_username == creator_username)
    ]
