"""What a worker spends on the biggest PNG or WebP it accepts, measured in a fresh process:
the memory bound the README promises (300 MB an image) holds for every pixel layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harvester.imaging import SizeRules
from harvester.imaging.decode import full_decode_pixels

MAKE = """
import sys
from PIL import Image
fmt, mode, side, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
colour = (10, 200, 30, 128)[: len(mode)]
options = {"lossless": True} if fmt == "WEBP" else {}
Image.new(mode, (side, side), colour).save(out, fmt, **options)
"""
MEASURE = """
import resource, sys
from harvester.imaging import Metadata, SizeRules, process
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = process(data, SizeRules(), Metadata())
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(result.width, grown // 1024)
"""


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGB"), ("PNG", "RGBA"), ("WEBP", "RGB"), ("WEBP", "RGBA")]
)
def test_the_largest_png_or_webp_accepted_stays_within_300_mb(
    fmt: str, mode: str, tmp_path: Path
) -> None:
    limit = full_decode_pixels(fmt.lower(), "A" in mode, SizeRules().max_decode_bytes)
    side = int(limit**0.5)
    path = tmp_path / f"big.{fmt.lower()}"
    subprocess.run([sys.executable, "-c", MAKE, fmt, mode, str(side), str(path)], check=True)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    width, grown_mb = map(int, done.stdout.split())
    assert width == 1024
    assert grown_mb <= 300, f"{side}x{side} {mode} {fmt}: {grown_mb} MB"
