"""The numbers behind a campaign's figures, apart from drawing them: the report draws them
to PNG, and the operator dashboard can show the same data live.

Pure: stored images and counted outcomes in, plain data out."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from harvester.db.exports import StoredImage
from harvester.db.reports import Counted
from harvester.exporters.capture import capture_key, capture_month
from harvester.exporters.near_duplicates import NEAR, groups_by_campaign


@dataclass(frozen=True)
class Track:
    sequence: str
    points: list[tuple[float, float]]  # (lon, lat) in capture order


@dataclass
class FigureData:
    campaign: str
    stored: int
    points: list[tuple[float, float]] = field(default_factory=list)  # (lon, lat), no sequence
    tracks: list[Track] = field(default_factory=list)
    per_month: list[tuple[str, int]] = field(default_factory=list)  # ("2023-07", n)
    licences: list[tuple[str, int]] = field(default_factory=list)
    queries: list[tuple[str, dict[str, int]]] = field(default_factory=list)  # state -> n
    outcomes: list[tuple[str, str, int]] = field(default_factory=list)  # state, reason, n
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    kilobytes: list[float] = field(default_factory=list)
    near_distance: int = NEAR
    near_groups: list[int] = field(default_factory=list)  # sizes of near-duplicate groups

    @property
    def near_duplicates(self) -> int:
        """Images that another image of their group makes redundant."""
        return sum(size - 1 for size in self.near_groups)


def figure_data(
    campaign: str,
    images: Sequence[StoredImage],
    outcomes: Sequence[Counted],
    queries: Sequence[Counted],
    near_distance: int = NEAR,
) -> FigureData:
    own = [i for i in images if i.campaign == campaign]
    data = FigureData(campaign, len(own), near_distance=near_distance)
    _positions(data, own)
    months = Counter(month for i in own if (month := capture_month(i.record)))
    data.per_month = sorted(months.items())
    licences = Counter(i.licence[0] or "unknown" for i in own)
    data.licences = sorted(licences.items(), key=lambda kv: (-kv[1], kv[0]))
    by_query: dict[str, dict[str, int]] = defaultdict(dict)
    for counted in queries:
        by_query[counted.what][counted.state] = counted.count
    data.queries = sorted(by_query.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    data.outcomes = [(c.state, c.what, c.count) for c in outcomes]
    data.widths = [int(i.record["width"]) for i in own if i.record["width"]]
    data.heights = [int(i.record["height"]) for i in own if i.record["height"]]
    data.kilobytes = [i.record["bytes"] / 1024 for i in own if i.record["bytes"]]
    rows = [(campaign, i.record["id"], i.record["phash"]) for i in own]
    groups = groups_by_campaign(rows, near_distance).get(campaign, [])
    data.near_groups = sorted((len(g) for g in groups), reverse=True)
    return data


def _positions(data: FigureData, images: Sequence[StoredImage]) -> None:
    """Images of a sequence drawn as its track; the others as points."""
    by_sequence: dict[str, list[StoredImage]] = defaultdict(list)
    for image in images:
        record = image.record
        if record["lat"] is None or record["lon"] is None:
            continue
        if record["sequence_id"]:
            by_sequence[record["sequence_id"]].append(image)
        else:
            data.points.append((float(record["lon"]), float(record["lat"])))
    for sequence, members in sorted(by_sequence.items()):
        members.sort(key=lambda i: (not capture_key(i.record), capture_key(i.record)))
        points = [(float(i.record["lon"]), float(i.record["lat"])) for i in members]
        data.tracks.append(Track(sequence, points))
