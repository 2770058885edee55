"""The emulated Mapillary: sequences laid along paths, from one seed.

Each path is travelled twice at different times (database/query pairs for place
recognition, as in the Spherical-VPR seed); one dense area holds more than
2,000 images inside a box smaller than the 0.01 square-degree search limit, so
a client that does not split capped tiles visibly loses images.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from harvester.emulator.config import WorldSize

CELL = 0.01  # spatial index cell, degrees
# A 360° camera's projection: v4's docs say "spherical", real records (and mapillary-js's
# isSpherical) also "equirectangular"; both are served.
SPHERICAL = ("spherical", "equirectangular")
DENSE_CENTER = (4.3517, 50.8503)  # lon, lat (Brussels): centre of the dense area
# The core (0.02 x 0.02 degrees) sits off-centre, so halving or quartering the
# dense area's box leaves it whole: some tile a client makes will hit the cap.
DENSE_CORE = (4.3767, 50.8703)
DENSE_CORE_HALF = 0.01
PATH_STARTS: tuple[tuple[str, float, float], ...] = (
    ("tsukuba", 140.0764, 36.0835),
    ("paris", 2.3522, 48.8566),
    ("paris-suburbs", 2.2370, 48.8950),
    ("brussels", 4.3700, 50.8300),
    ("berlin", 13.4050, 52.5200),
    ("countryside-fr", 1.9000, 47.9000),
    ("countryside-jp", 138.2500, 36.2000),
    ("lisbon", -9.1393, 38.7223),
)
CREATORS = ("andre_a", "caron_g", "streetwalker", "velo_map", "kartograf", "mly_fan")


@dataclass(frozen=True)
class MapillaryImage:
    """One image as the emulated Graph API knows it."""

    id: str
    sequence: str
    captured_at: int  # ms epoch
    lon: float
    lat: float
    compass_angle: float
    computed: tuple[float, float, float] | None  # lon, lat, compass; None when not computed
    camera_type: str
    width: int
    height: int
    creator_id: str
    creator_username: str
    path: str
    travel: int

    @property
    def is_pano(self) -> bool:
        return self.camera_type in SPHERICAL


@dataclass(frozen=True)
class _Travel:
    path: str
    travel: int
    camera: str
    start_ms: int
    creator: int


def _sequence_id(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(22))


def _walk(rng: random.Random, lon: float, lat: float, n: int) -> list[tuple[float, float, float]]:
    """A street-like polyline: ~8 m steps, heading drifting, occasional corners."""
    heading = rng.uniform(0, 360)
    points = []
    for _ in range(n):
        points.append((lon, lat, heading % 360))
        if rng.random() < 0.03:
            heading += rng.choice((-90, 90))
        heading += rng.gauss(0, 3)
        step = 7.5e-5
        lat += step * math.cos(math.radians(heading))
        lon += step * math.sin(math.radians(heading)) / max(0.2, math.cos(math.radians(lat)))
    return points


def _dims(camera: str) -> tuple[int, int]:
    if camera in SPHERICAL:
        return 4096, 2048
    if camera == "fisheye":
        return 2048, 1536
    return 1920, 1080


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed * 7_919 + 3)
        self.next_id = 100_000_000_000_000 + self.rng.randrange(10**12)
        self.images: list[MapillaryImage] = []

    def lay(self, points: list[tuple[float, float, float]], t: _Travel, jitter: float) -> None:
        rng = self.rng
        seq = _sequence_id(rng)
        creator = CREATORS[t.creator % len(CREATORS)]
        w, h = _dims(t.camera)
        for k, (lon, lat, heading) in enumerate(points):
            self.next_id += rng.randrange(1, 5000)
            lon_j = round(lon + rng.gauss(0, jitter), 7)
            lat_j = round(lat + rng.gauss(0, jitter), 7)
            compass = round((heading + rng.gauss(0, 4)) % 360, 2)
            computed = None
            if rng.random() > 0.1:
                computed = (
                    round(lon_j + rng.gauss(0, 2e-6), 7),
                    round(lat_j + rng.gauss(0, 2e-6), 7),
                    round((compass + rng.gauss(0, 2)) % 360, 2),
                )
            self.images.append(
                MapillaryImage(
                    id=str(self.next_id),
                    sequence=seq,
                    captured_at=t.start_ms + k * 2000,
                    lon=lon_j,
                    lat=lat_j,
                    compass_angle=compass,
                    computed=computed,
                    camera_type=t.camera,
                    width=w,
                    height=h,
                    creator_id=str(10**14 + t.creator),
                    creator_username=creator,
                    path=t.path,
                    travel=t.travel,
                )
            )


def _ms(year: int, month: int, day: int, hour: int) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


def generate_images(seed: int, size: WorldSize) -> list[MapillaryImage]:
    """Paired travels along each path, then the dense area."""
    b = _Builder(seed)
    rng = b.rng
    for k in range(size.mapillary_paths):
        name, lon, lat = PATH_STARTS[k % len(PATH_STARTS)]
        camera = ("spherical", "equirectangular", "perspective", "fisheye")[k % 4]
        points = _walk(rng, lon + 0.01 * (k // len(PATH_STARTS)), lat, rng.randrange(60, 160))
        first = _ms(2019 + k % 3, 1 + k % 12, 3 + k, 9)
        second = _ms(2021 + k % 3, 1 + (k + 5) % 12, 10 + k, 17)
        for travel, start in ((0, first), (1, second)):
            b.lay(points, _Travel(f"{name}-{k}", travel, camera, start, k + travel), 2e-5)
    _dense(b, rng, size.mapillary_dense_images)
    return b.images


def _dense(b: _Builder, rng: random.Random, n_images: int) -> None:
    per_seq = 100
    n_seq = max(1, n_images // per_seq)
    inner = max(1, round(n_seq * 0.85))
    for s in range(n_seq):
        cx, cy = DENSE_CORE if s < inner else DENSE_CENTER
        spread = DENSE_CORE_HALF * 0.5 if s < inner else 0.045
        lon = cx + rng.uniform(-spread, spread)
        lat = cy + rng.uniform(-spread * 0.8, spread * 0.8)
        points = _walk(rng, lon, lat, per_seq)
        if s < inner:
            points = [_clamp(p, cx, cy, DENSE_CORE_HALF * 0.95) for p in points]
        camera = "perspective" if s % 3 else "spherical"
        start = _ms(2020 + s % 4, 1 + s % 12, 1 + s % 27, 8 + s % 10)
        b.lay(points, _Travel(f"dense-{s}", 0, camera, start, s), 0.0)


def _clamp(
    p: tuple[float, float, float], cx: float, cy: float, half: float
) -> tuple[float, float, float]:
    """Fold a point back into the core box so the core really holds > 2,000 images."""
    lon, lat, heading = p

    def fold(v: float, c: float) -> float:
        d = v - c
        while abs(d) > half:
            d = math.copysign(2 * half - abs(d), d)
        return c + d

    return fold(lon, cx), fold(lat, cy), heading


class MapillaryIndex:
    """Images by id, by sequence and by 0.01-degree grid cell."""

    def __init__(self, images: list[MapillaryImage]) -> None:
        self.images = images
        self.by_id = {im.id: im for im in images}
        self.by_sequence: dict[str, list[MapillaryImage]] = {}
        self.grid: dict[tuple[int, int], list[MapillaryImage]] = {}
        for im in images:
            self.by_sequence.setdefault(im.sequence, []).append(im)
            self.grid.setdefault(_cell(im.lon, im.lat), []).append(im)

    def in_bbox(self, bbox: tuple[float, float, float, float]) -> list[MapillaryImage]:
        """Every image inside the box, in a stable but unsorted (hash) order."""
        minlon, minlat, maxlon, maxlat = bbox
        x0, y0 = _cell(minlon, minlat)
        x1, y1 = _cell(maxlon, maxlat)
        found = []
        for cell in _cells(x0, y0, x1, y1, self.grid):
            for im in self.grid[cell]:
                if minlon <= im.lon <= maxlon and minlat <= im.lat <= maxlat:
                    found.append(im)
        found.sort(key=lambda im: hash_order(im.id))
        return found


def _cells(
    x0: int, y0: int, x1: int, y1: int, grid: dict[tuple[int, int], list[MapillaryImage]]
) -> Iterable[tuple[int, int]]:
    if (x1 - x0 + 1) * (y1 - y0 + 1) > len(grid):
        return [c for c in grid if x0 <= c[0] <= x1 and y0 <= c[1] <= y1]
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1) if (x, y) in grid]


def _cell(lon: float, lat: float) -> tuple[int, int]:
    return math.floor(lon / CELL), math.floor(lat / CELL)


def hash_order(image_id: str) -> int:
    return (int(image_id) * 2_654_435_761) % 2**32
