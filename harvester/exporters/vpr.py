"""The visual place recognition layout of GeoWarp:
`images/{train,val,test}/{gallery,queries}/@east@north@zone@letter@lat@lon@...@.jpg`, the
names of gmberton's VPR-datasets-downloader (whose folders say `database` for `gallery`).

Train/val/test are split by UTM cells, each cell's split fixed by a hash of the cell (adding
images never moves one placed before), and an image near one of a split kept before it (test,
then val) is left out, so that no place is in two splits though cells meet at their edges;
gallery and queries as `vpr_roles` says, and a query no gallery image is near is left out.
All pure but `export_vpr`."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from functools import cached_property
from typing import Any

from harvester.errors import InputError
from harvester.exporters.capture import capture_time
from harvester.exporters.images import read_in_order
from harvester.exporters.nearby import Grid, Utm, plane, planes, utm_of
from harvester.exporters.output import ExportFolder
from harvester.exporters.selection import Item
from harvester.exporters.vpr_roles import GALLERY, QUERIES, hashed, roles, rule_said
from harvester.storage.base import Storage
from harvester.storage.layout import digest

SPLITS = ("train", "val", "test")
# The buffer keeps test whole, then val but its images near test, then train but its images
# near either: numbers are reported on test and models picked on val, so those keep all of
# their cells (thinned at cell edges they were 39% smaller with 100 m cells of dense streets,
# and leaned to cells' middles); train is the largest and the one a researcher can spare.
KEPT_FIRST = ("test", "val", "train")
GALLERY_NAMES = (GALLERY, "database")  # GeoWarp's folder name, VPR-datasets-downloader's
KEEP = ".keep"  # in a role folder with no image, so that it is kept (loaders read *.jpg)
MAX_FIELD_BYTES = 120  # a name's other fields take under 100 of a file name's 255 bytes
UNFIT = '@/\\<>:"|?*'  # the separator, and what Windows forbids in a name (':' of URL-list ids)
ZONES_SHOWN = 6  # of a split's UTM zones, in a warning
UTM_LATITUDES = (-80.0, 84.0)  # the `utm` package refuses a latitude outside these
NO_POSITION = "with no position"
OUTSIDE_UTM = f"at a latitude outside UTM's {UTM_LATITUDES[0]:g} to {UTM_LATITUDES[1]:g}"
Cell = tuple[int, str, int, int]  # UTM zone, latitude band, easting and northing // cell_m


@dataclass(frozen=True)
class VprOptions:
    cell_m: float = 100.0
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    queries_by: str = "auto"
    query_fraction: float = 0.25  # of the images hashed to a role (--queries-by random/time)
    gallery_name: str = GALLERY  # the gallery folder's name, one of GALLERY_NAMES
    buffer_m: float = 25.0  # GeoWarp's positive threshold; 0: no buffer between splits
    positive_m: float = 25.0  # a query needs a gallery image this near (GeoWarp's, > 0)


@dataclass(frozen=True)
class Placed:
    item: Item
    split: str
    role: str  # its folder: QUERIES, or the gallery's name
    name: str

    @property
    def relative(self) -> str:
        return f"images/{self.split}/{self.role}/{self.name}"

    @cached_property
    def plane(self) -> tuple[tuple[int, bool], float, float]:
        """Where GeoWarp puts it: its name's zone and hemisphere (north: True), easting and
        northing as the name rounds them."""
        fields = parse_vpr_name(self.name)
        zone = (int(fields["zone_number"]), fields["zone_letter"] >= "N")
        return zone, float(fields["east"]), float(fields["north"])


def _coord(value: float, left: int, right: int) -> str:
    """`-45.12345` as gmberton's `format_coord` writes it: `left` characters before the point,
    a minus sign among them, zero-padded, rounded to `right` decimals. Its util.py has
    formatted so since May 2024 (75abd38, 4fedc82); the 2021 one cut the decimals of str(x),
    and failed on a value under 1e-4, which str writes with an exponent."""
    return f"{float(value):0{left + 1 + right}.{right}f}"


def vpr_name(
    lat: float,
    lon: float,
    *,
    pano_id: str = "",
    heading: float | None = None,
    timestamp: datetime | None = None,
    note: str = "",
    position: Utm | None = None,
) -> str:
    """The gmberton file name; empty fields stay empty, roll and height are never known.
    `position` is the point's `utm_of`, when it is known already."""
    east, north, zone, letter = position or utm_of(lat, lon)
    fields = [
        _coord(east, 7, 2),
        _coord(north, 7, 2),
        f"{int(zone):02d}",
        str(letter),
        _coord(lat, 3, 5),
        _coord(lon, 4, 5),
        _field(pano_id),
        "",  # tile_num
        "" if heading is None else f"{int(heading % 360) % 360:03d}",
        "",  # pitch
        "",  # roll
        "",  # height
        _stamp(timestamp),
        _field(note),
    ]
    return "@" + "@".join(fields) + "@.jpg"


def _field(text: str) -> str:
    """Text fit for one field of a file name on any system: no separator, path, space,
    unprintable or UNFIT character, at most MAX_FIELD_BYTES; text that had to change ends in
    a hash of itself, so two ids never give one name."""
    cleaned = "".join(
        c if c.isprintable() and not c.isspace() and c not in UNFIT else "-" for c in text
    )
    if cleaned == text and len(text.encode()) <= MAX_FIELD_BYTES:
        return text
    short = cleaned.encode()[: MAX_FIELD_BYTES - 13].decode(errors="ignore")
    return f"{short}-{digest(text)}"


def _stamp(timestamp: datetime | None) -> str:
    """`YYYYMMDD_hhmmss`: UTC for an instant; a naive wall clock (Flickr's) as it reads."""
    if timestamp is None:
        return ""
    return (timestamp.astimezone(UTC) if timestamp.tzinfo else timestamp).strftime("%Y%m%d_%H%M%S")


def parse_vpr_name(name: str) -> dict[str, str]:
    """The fields of a VPR file name, as text (the inverse of `vpr_name`, for checks)."""
    keys = (
        "east", "north", "zone_number", "zone_letter", "lat", "lon", "pano_id", "tile_num",
        "heading", "pitch", "roll", "height", "timestamp", "note",
    )  # fmt: skip
    parts = name.split("@")
    if len(parts) != len(keys) + 2 or parts[0] or parts[-1] != ".jpg":
        raise ValueError(f"not a VPR file name: {name!r}")
    return dict(zip(keys, parts[1:-1], strict=True))


def cell_of(item: Item, cell_m: float) -> Cell:
    assert item.lat is not None and item.lon is not None
    return _cell(utm_of(item.lat, item.lon), cell_m)


def _cell(position: Utm, cell_m: float) -> Cell:
    east, north, zone, letter = position
    return zone, letter, math.floor(east / cell_m), math.floor(north / cell_m)


def split_of(cell: Cell, ratios: Sequence[float], seed: int) -> str:
    """The split of one cell, from the cell and the seed alone, so images that arrive later
    never move a cell placed before: the first 8 bytes of the SHA-256 of
    `{seed}:{zone}:{letter}:{east_index}:{north_index}`, as a fraction of 2**64, fall in
    train's, val's or test's share of 0..1 (ratios taken exactly, so a 0 ratio gets none)."""
    zone, letter, east, north = cell
    point = hashed(f"{seed}:{zone}:{letter}:{east}:{north}")
    total = sum(Fraction(r) for r in ratios)
    bound = Fraction(0)
    for split, ratio in zip(SPLITS, ratios, strict=True):
        bound += Fraction(ratio) / total
        if point < bound:
            return split
    raise AssertionError("the shares sum to 1 and the point is below 1")


def warnings(
    counts: Mapping[str, int], options: VprOptions, zones: Mapping[str, Sequence[str]]
) -> list[str]:
    """What a researcher must know before training on the folder, for README.txt and the
    summary: a split its ratio wants that got no image (shares are of cells, each fixed by
    its hash, so a harvest of few cells can leave one empty), a split that has images but
    no queries or no gallery (a loader finds both folders, and nothing to evaluate), and a
    split of more than one UTM zone (`zones`, by split: GeoWarp reads no zone)."""
    roles = ((QUERIES, "queries"), (options.gallery_name, "gallery images"))
    placed = [s for s in SPLITS if any(counts.get(f"{s}/{role}") for role, _ in roles)]
    said = []
    empty = [s for s, r in zip(SPLITS, options.ratios, strict=True) if r > 0 and s not in placed]
    if placed and empty:
        said.append(
            f"no image fell in {' or '.join(empty)}: too few cells for the ratios"
            " (a smaller --cell-m makes more)"
        )
    for role, what in roles:
        if lacking := [s for s in placed if not counts.get(f"{s}/{role}")]:
            said.append(f"{_listed(lacking)} {'has' if len(lacking) == 1 else 'have'} no {what}")
    if mixed := [f"{s} spans UTM zones {_listed(z)}" for s, z in zones.items() if len(z) > 1]:
        said.append(
            f"{'; '.join(mixed)}: GeoWarp measures distances by the names' easting and northing"
            " alone, so images of two zones may be taken for neighbours; export one zone at a"
            " time (--bbox)"
        )
    return said


def zones_of(placed: Sequence[Placed]) -> dict[str, list[str]]:
    """The UTM zones of each split's images: number and hemisphere (`32 north`), the plane
    a name's easting and northing are in; at most ZONES_SHOWN, then how many more."""
    found: dict[str, set[tuple[int, bool]]] = {s: set() for s in SPLITS}
    for entry in placed:
        found[entry.split].add(entry.plane[0])
    shown = {}
    for split, zones in found.items():
        labels = [f"{n} {'north' if north else 'south'}" for n, north in sorted(zones)]
        more = len(labels) - ZONES_SHOWN
        shown[split] = labels if more <= 0 else [*labels[:ZONES_SHOWN], f"{more} more"]
    return shown


def _listed(names: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def summary(counts: Mapping[str, int], dropped: Mapping[str, int], said: Sequence[str]) -> str:
    """Images per folder, those left out by why, then the warnings."""
    parts = [", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    if dropped:
        why = ", ".join(f"{n} {why}" for why, n in dropped.items())
        parts.append(f"left out {sum(dropped.values())}: {why}")
    return "; ".join([*parts, *said])


def unplaceable(item: Item) -> str | None:
    """Why an image can have no VPR name (made of its UTM position), or None."""
    if item.lat is None or item.lon is None:
        return NO_POSITION
    south, north = UTM_LATITUDES
    return None if south <= item.lat <= north else OUTSIDE_UTM


@dataclass(frozen=True)
class Placement:
    placed: list[Placed]
    unnamed: list[tuple[Mapping[str, Any], str]]  # record, why it is `unplaceable`
    near: Mapping[str, int]  # left out by split: within the buffer of a split kept before
    unfound: int  # queries left out: no gallery image of their split is near
    rule: str  # how roles were given (`vpr_roles.rule_said`), for README.txt


def place_items(items: Sequence[Item], options: VprOptions) -> Placement:
    """Where each image UTM can name goes; the others cannot be placed (`unplaceable`)."""
    located: list[Item] = []
    unnamed: list[tuple[Mapping[str, Any], str]] = []
    for item in items:
        if why := unplaceable(item):
            unnamed.append((item.record, why))
        else:
            located.append(item)
    positions = {id(i): utm_of(*_at(i)) for i in located}
    cells = {key: _cell(position, options.cell_m) for key, position in positions.items()}
    splits = {cell: split_of(cell, options.ratios, options.seed) for cell in set(cells.values())}
    split = {key: splits[cell] for key, cell in cells.items()}
    kept, near = _apart(located, split, positions, options.buffer_m)
    role = roles(kept, options.queries_by, cells, options.seed, options.query_fraction)
    folders = {GALLERY: options.gallery_name, QUERIES: QUERIES}
    placed = [
        Placed(i, split[id(i)], folders[role[id(i)]], _name(i, positions[id(i)])) for i in kept
    ]
    found = _findable(placed, options.positive_m)
    rule = rule_said([p.item for p in found], options.queries_by)
    return Placement(found, unnamed, near, len(placed) - len(found), rule)


def _findable(placed: Sequence[Placed], positive_m: float) -> list[Placed]:
    """The placed images but the queries with no gallery image of their split within
    `positive_m`, as GeoWarp measures it: easting and northing as the names give them, in one
    zone and hemisphere (another's numbers are another plane). No method could find such a
    query; it is left out, not made a gallery image, so that it keeps its role: a later
    export, with a gallery image near it, adds it as a query."""
    grids = {s: Grid(positive_m) for s in SPLITS}
    for entry in placed:
        if entry.role != QUERIES:
            grids[entry.split].add(*entry.plane)
    return [p for p in placed if p.role != QUERIES or grids[p.split].near(*p.plane)]


def _apart(
    items: Sequence[Item], split: Mapping[int, str], positions: Mapping[int, Utm], buffer_m: float
) -> tuple[list[Item], Counter[str]]:
    """The images not within `buffer_m` of a kept image of a split kept before theirs
    (KEPT_FIRST: test is whole, val has no image near test's, train none near val's or
    test's), and how many of each split are left out. Cells meet at their edges, so without a
    buffer one place is seen from two splits. Distances are in UTM metres, on a grid of the
    buffer's size (9 buckets read a look-up)."""
    if buffer_m <= 0:
        return list(items), Counter()
    grid, gone = Grid(buffer_m), set[int]()
    for name in KEPT_FIRST:
        # Test's images, kept first, are looked up in an empty grid: their own plane will do.
        mine = {id(i): planes(*_at(i), positions[id(i)], buffer_m) if grid
                else [plane(positions[id(i)])] for i in items if split[id(i)] == name}  # fmt: skip
        near = {key for key, seen in mine.items() if any(grid.near(*w) for w in seen)}
        for key, seen in mine.items():
            if key not in near:
                grid.add(*seen[0])  # its own zone's plane
        gone |= near
    return [i for i in items if id(i) not in gone], Counter(split[key] for key in gone)


def _at(item: Item) -> tuple[float, float]:
    assert item.lat is not None and item.lon is not None, "placed images have a position"
    return item.lat, item.lon


def left_out(placement: Placement, options: VprOptions) -> dict[str, int]:
    """How many images were left out, by why (the whys that have some)."""
    unnamed = Counter(why for _, why in placement.unnamed)
    buffer = f"within {options.buffer_m:g} m of"
    whys = {
        NO_POSITION: unnamed[NO_POSITION],
        OUTSIDE_UTM: unnamed[OUTSIDE_UTM],
        f"val images {buffer} a test image": placement.near.get("val", 0),
        f"train images {buffer} a val or test image": placement.near.get("train", 0),
        f"queries with no gallery image within {options.positive_m:g} m": placement.unfound,
    }
    return {why: n for why, n in whys.items() if n}


def _name(item: Item, position: Utm) -> str:
    record = item.record
    return vpr_name(
        *_at(item),
        pano_id=str(record["provider_id"]),
        heading=item.heading,
        timestamp=capture_time(record),
        note=str(record["provider"]),
        position=position,
    )


async def export_vpr(
    items: Sequence[Item],
    folder: ExportFolder,
    storage: Storage,
    options: VprOptions,
    made_with: Sequence[str],
) -> tuple[str, dict[int, str]]:
    """Put every placed image in its split and role (hard links to local files where the
    filesystem allows, else copies; an object store's images are read and written), and a
    KEEP file in each of the six folders that got none; README.txt says how. Returns the
    summary and where each image went, by image id."""
    placement = place_items(items, options)
    placed = placement.placed
    dropped = left_out(placement, options)
    if not placed:
        why = ", ".join(f"{n} {why}" for why, n in dropped.items())
        raise InputError(
            f"none of the {len(items)} images can be placed ({why}): VPR file names are made"
            f" of a UTM position, which needs a latitude from {UTM_LATITUDES[0]:g} to"
            f" {UTM_LATITUDES[1]:g}"
        )
    counts = dict.fromkeys((f"{s}/{r}" for s in SPLITS for r in (options.gallery_name, QUERIES)), 0)
    files: dict[int, str] = {}
    to_read: list[Placed] = []
    for entry in placed:
        record = entry.item.record
        local = storage.local_path(record["path"])
        if local is not None:
            folder.place(entry.relative, local, record["sha256"])
        elif not folder.unchanged(entry.relative, record["sha256"]):
            to_read.append(entry)
        counts[f"{entry.split}/{entry.role}"] += 1
        files[record["id"]] = entry.relative
    reading = iter(to_read)
    async for data in read_in_order(storage, [e.item.record["path"] for e in to_read]):
        folder.write(next(reading).relative, data)
    for empty in (key for key, n in counts.items() if not n):
        folder.write(f"images/{empty}/{KEEP}", b"")
    said = warnings(counts, options, zones_of(placed))
    readme = _readme(options, placement, made_with, counts, dropped, said)
    folder.write("README.txt", readme.encode("utf-8"))
    return summary(counts, dropped, said), files


def _unnamed(record: Mapping[str, Any], why: str) -> str:
    if why != OUTSIDE_UTM:
        return why.removeprefix("with ")
    south, north = UTM_LATITUDES
    return f"latitude {float(record['lat']):g} is outside UTM's {south:g} to {north:g}"


def _splits_said(options: VprOptions) -> list[str]:
    return [
        f"Splits: UTM cells of {options.cell_m:g} m, each cell in exactly one split; "
        f"ratios train/val/test = {'/'.join(f'{r:g}' for r in options.ratios)}, "
        f"seed {options.seed}.",
        "  A cell's split depends on the cell and the seed alone, so images added later never",
        "  move a cell: the first 8 bytes of sha256('SEED:ZONE:LETTER:E:N') (E, N = UTM easting,",
        "  northing // cell size) over 2**64 fall in train's, val's or test's share of 0..1.",
        f"  Cells meet at their edges, so an image within {options.buffer_m:g} m (--buffer-m) of"
        " a kept image",
        "  of another split is left out: test keeps all of its images, val loses those near a",
        "  test image, train those near a val or test image, so that no place is in two splits",
        "  and the splits evaluated on are whole (UTM metres; an image near a zone's edge is",
        "  projected into the next zone too). A larger --cell-m leaves fewer out: fewer images",
        "  are near an edge.",
    ]


def _roles_said(options: VprOptions, rule: str) -> list[str]:
    return [
        f"Gallery/queries: by {rule}.",
        "  time: a Mapillary sequence is a traversal; in each cell the one captured first is",
        "  the gallery, later ones are queries. An image of no sequence (Flickr, URL lists) is",
        "  a query when the first 8 bytes of sha256('SEED:PROVIDER:ID') over 2**64 are below",
        f"  {options.query_fraction:g} (--query-fraction), so it keeps its role as images arrive.",
        "  pairs: the roles of the Spherical-VPR pairs file; an image in none is a gallery image.",
        "  auto: those roles for the images in a pairs file, time for the others. random: every",
        "  image by that hash.",
        f"  A query with no gallery image of its split within {options.positive_m:g} m"
        " (--positive-m, as GeoWarp",
        "  measures: the names' easting and northing, in one zone) is left out, as nothing could",
        "  find it; not made a gallery image, so that it keeps its role when one arrives. Of",
        "  sparse photos (Flickr's), that is most of --query-fraction of them.",
    ]


def _readme(
    options: VprOptions,
    placement: Placement,
    made_with: Sequence[str],
    counts: Mapping[str, int],
    dropped: Mapping[str, int],
    said: Sequence[str],
) -> str:
    gallery = options.gallery_name
    lines = [
        "Visual place recognition dataset exported by harvester (`harvester export --format vpr`).",
        "",
        f"Layout: images/{{train,val,test}}/{{{gallery},queries}}/ (GeoWarp's), all six folders",
        f"  always, a folder with no image holding only an empty {KEEP}; --gallery-name {gallery}",
        "  (GeoWarp reads `gallery`, VPR-datasets-downloader writes `database`).",
        "File names: @UTM_east@UTM_north@UTM_zone_number@UTM_zone_letter@lat@lon@pano_id@tile_num"
        "@heading@pitch@roll@height@timestamp@note@.jpg",
        "  UTM from the `utm` package (WGS84); easting/northing 2 decimals, lat/lon 5;",
        "  pano_id = provider image id; heading in whole degrees; timestamp = capture time",
        "  YYYYMMDD_hhmmss, in UTC where the provider gives one (Mapillary), else the camera's",
        "  wall clock with no zone (Flickr's date taken), empty when not known to the second;",
        "  note = provider; empty fields left empty.",
        "",
        *_splits_said(options),
        *_roles_said(options, placement.rule),
        "",
        "Made with:",
        *(f"  {line}" for line in made_with),
        "",
        f"Images: {sum(counts.values()) + sum(dropped.values())} selected,"
        f" {sum(counts.values())} exported, {sum(dropped.values())} left out.",
        "Images per folder:",
        *(f"  {key}: {counts[key]}" for key in sorted(counts)),
    ]
    if said:
        lines += ["", "Warnings:", *(f"  {line}" for line in said)]
    if dropped:
        lines += ["", f"Left out ({sum(dropped.values())}):"]
        lines += [f"  {n} {why}" for why, n in dropped.items()]
    if placement.unnamed:
        lines += ["", "With no VPR name (UTM cannot name the position):"]
        lines += [
            f"  {r['provider']} {str(r['provider_id'])!r}: {_unnamed(r, why)}"
            for r, why in placement.unnamed
        ]
    return "\n".join(lines) + "\n"
