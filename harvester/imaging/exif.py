"""EXIF for the stored JPEG: where, when, which way, who, and the record.

The file carries its own provenance so a dataset copied away from the
database still says where each picture was taken and under whose name.
"""

from __future__ import annotations

import json
from datetime import datetime
from fractions import Fraction

from PIL import Image, TiffImagePlugin
from PIL.ExifTags import GPS, IFD, Base

from harvester.imaging.model import Metadata

__all__ = ["MAX_EXIF_BYTES", "build_exif"]

# A JPEG APP1 segment holds at most 65533 bytes, "Exif\0\0" included.
MAX_EXIF_BYTES = 65_000
_SECONDS_DENOMINATOR = 1_000_000  # 1e-6 arc seconds: far finer than any GPS


def build_exif(meta: Metadata) -> bytes:
    """Serialized EXIF for `meta`; a description too large for APP1 is left out."""
    exif = _exif(meta, with_description=True)
    data = exif.tobytes()
    if len(data) > MAX_EXIF_BYTES:
        data = _exif(meta, with_description=False).tobytes()
    return data


def _exif(meta: Metadata, *, with_description: bool) -> Image.Exif:
    exif = Image.Exif()
    # Names are often not ASCII; EXIF "ASCII" fields carry UTF-8 in practice
    # (what exiftool and browsers read), where Pillow would write "?" for them.
    if meta.artist:
        exif[Base.Artist] = meta.artist.encode("utf-8")
    if meta.copyright:
        exif[Base.Copyright] = meta.copyright.encode("utf-8")
    if with_description and meta.description is not None:
        exif[Base.ImageDescription] = json.dumps(
            meta.description, separators=(",", ":"), ensure_ascii=True, default=str
        )
    if meta.captured_at is not None:
        _set_capture_time(exif, meta.captured_at)
    if meta.lat is not None and meta.lon is not None:
        _set_gps(exif, meta.lat, meta.lon, meta.heading)
    return exif


def _set_capture_time(exif: Image.Exif, when: datetime) -> None:
    """Wall-clock time as EXIF wants it, plus its UTC offset when known."""
    sub = exif.get_ifd(IFD.Exif)
    sub[Base.DateTimeOriginal] = when.strftime("%Y:%m:%d %H:%M:%S")
    offset = when.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        sub[Base.OffsetTimeOriginal] = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _set_gps(exif: Image.Exif, lat: float, lon: float, heading: float | None) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"coordinates out of range: {lat}, {lon}")
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
    gps[GPS.GPSLatitude] = _dms(abs(lat))
    gps[GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
    gps[GPS.GPSLongitude] = _dms(abs(lon))
    if heading is not None:
        gps[GPS.GPSImgDirectionRef] = "T"
        # EXIF's range is 0.00 to 359.99: a heading of 359.996 rounds to 0, not to 360.00.
        gps[GPS.GPSImgDirection] = _rational(Fraction(round(heading % 360 * 100) % 36000, 100))


def _dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    """Degrees, minutes, seconds with micro-second-of-arc resolution."""
    micro = round(value * 3600 * _SECONDS_DENOMINATOR)
    degrees, rest = divmod(micro, 3600 * _SECONDS_DENOMINATOR)
    minutes, seconds = divmod(rest, 60 * _SECONDS_DENOMINATOR)
    return (
        _rational(Fraction(degrees)),
        _rational(Fraction(minutes)),
        _rational(Fraction(seconds, _SECONDS_DENOMINATOR)),
    )


def _rational(value: Fraction) -> TiffImagePlugin.IFDRational:
    return TiffImagePlugin.IFDRational(value.numerator, value.denominator)
