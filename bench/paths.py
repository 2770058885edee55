"""`python -m bench.paths`: pixel paths side by side on real photos, one core, per case.

Each case (size, baseline or progressive) is timed image by image, paths interleaved so
the machine's drift falls on all alike, and scored by PSNR against a full decode resized
with Lanczos. The paths: harvester's pipeline; Pillow alone (DCT-scaled decode, Hamming for
the rest: the pipeline before OpenCV); img2dataset's (OpenCV full decode, INTER_AREA,
imencode); simplejpeg's decode at any factor it offers (3/8, 3/4, ...) with OpenCV bilinear.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from bench.photos import Photo, render
from bench.quality import psnr
from harvester.imaging import Metadata, SizeRules, fit, process
from harvester.imaging.pipeline import opencv

Path_ = Callable[[bytes], bytes]
RULES = SizeRules()
META = Metadata(lat=50.0, lon=4.0, artist="bench")
CASES = {
    "2048x1536": {"width": 2048, "height": 1536},
    "2048x1536 progressive": {"width": 2048, "height": 1536, "progressive": True},
    "1600x1200": {"width": 1600, "height": 1200},
    "4000x3000": {"width": 4000, "height": 3000},
    "1024x768": {"width": 1024, "height": 768},
    "1024x768 progressive": {"width": 1024, "height": 768, "progressive": True},
}


def harvester(data: bytes) -> bytes:
    return process(data, RULES, META).jpeg


def pillow_only(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data))
    target = fit(*im.size, 1024)
    im.draft("RGB", target)
    picture = im.convert("RGB")
    if picture.size != target:
        picture = picture.resize(target, Image.Resampling.HAMMING, reducing_gap=2.0)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def img2dataset_like(data: bytes) -> bytes:
    cv2 = opencv()
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    h, w = pixels.shape[:2]
    target = fit(w, h, 1024)
    if target != (w, h):
        pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
    return bytes(cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())


def paths() -> dict[str, Path_]:
    found: dict[str, Path_] = {
        "harvester": harvester,
        "pillow only": pillow_only,
        "img2dataset (OpenCV)": img2dataset_like,
    }
    import simplejpeg

    def simple(data: bytes) -> bytes:
        cv2 = opencv()
        h, w, _, _ = simplejpeg.decode_jpeg_header(data)  # (height, width, ...)
        target = fit(w, h, 1024)
        pixels = simplejpeg.decode_jpeg(data, min_width=target[0], min_height=target[1])
        if (pixels.shape[1], pixels.shape[0]) != target:
            pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_LINEAR)
        return bytes(simplejpeg.encode_jpeg(pixels, quality=90, colorsubsampling="420"))

    found["simplejpeg + OpenCV"] = simple
    return found


def main(argv: list[str]) -> int:
    per_case = int(argv[0]) if argv else 6
    chosen = paths()
    print(f"ms per image (median) / mean PSNR dB, {per_case} photos per case, one core")
    for case, size in CASES.items():
        blobs = [render(Photo(seed=500 + i, **size)) for i in range(per_case)]  # type: ignore[arg-type]
        times: dict[str, list[float]] = {name: [] for name in chosen}
        scores: dict[str, list[float]] = {name: [] for name in chosen}
        for round_ in range(3):
            for data in blobs:
                for name, path in chosen.items():
                    started = time.process_time()
                    out = path(data)
                    times[name].append(time.process_time() - started)
                    if round_ == 0:
                        ours = Image.open(io.BytesIO(out)).convert("RGB")
                        ref = Image.open(io.BytesIO(data)).convert("RGB")
                        scores[name].append(
                            psnr(ours, ref.resize(ours.size, Image.Resampling.LANCZOS))
                        )
        shown = ", ".join(
            f"{name} {1000 * statistics.median(times[name]):.1f}/"
            f"{statistics.mean(min(s, 99.0) for s in scores[name]):.1f}"
            for name in chosen
        )
        print(f"{case:<22} {shown}", flush=True)
    print("(99.0 dB: decodes to exactly the source's pixels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
