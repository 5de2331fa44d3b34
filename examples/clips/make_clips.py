"""Make the small reference clips used by the examples and tests (motion-transfer sources).

    python examples/clips/make_clips.py            # writes next to this script
    python examples/clips/make_clips.py OUT_DIR

* ``bounce.mp4``: 64x64, 8 fps, 16 frames. An orange disc hops from left to right over a
  grey floor, with shading, a contact shadow and a little squash on landing. Drawn at 4x and
  area-downsampled, so edges are anti-aliased; deterministic (fixed noise seed).
* ``pan.mp4``: 64x64, 8 fps, 16 frames. A camera pan to the right across ffmpeg's
  ``testsrc2`` pattern (a 192 px wide source cropped by a moving window).

Both are H.264 / yuv420p without audio and well under 100 KB. Only numpy, OpenCV and the
ffmpeg bundled with imageio-ffmpeg are needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

SIZE = 64
FPS = 8
FRAMES = 16
SS = 4  # supersampling factor for anti-aliasing
X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", "-preset", "slow",
        "-movflags", "+faststart", "-an"]


def _background(rng: np.random.Generator) -> np.ndarray:
    """Grey studio backdrop: a wall with a soft vertical gradient over a darker floor."""
    n = SIZE * SS
    y = np.linspace(0.0, 1.0, n)[:, None]
    wall = 150 + 30 * (1 - y)  # lighter at the top
    floor_y = 0.78
    floor = 110 - 25 * (y - floor_y) / (1 - floor_y)
    g = np.where(y < floor_y, wall, floor) * np.ones((1, n))
    g = g + rng.normal(0, 1.5, g.shape)  # a little sensor-like grain
    return np.repeat(g[..., None], 3, axis=2) * np.array([1.0, 1.0, 1.03])


def _bounce_frame(t: float, bg: np.ndarray) -> np.ndarray:
    """Frame at phase ``t`` in [0, 1]: two hops from left to right."""
    n = SIZE * SS
    r = 0.13 * n
    floor = 0.78 * n
    x = (0.16 + 0.68 * t) * n
    hop = abs(np.sin(2 * np.pi * t))  # two hops over the clip
    lift = 0.42 * n * hop
    squash = 1.0 + 0.18 * max(0.0, 1 - hop / 0.25)  # flatten near the floor
    rx, ry = r * squash, r / squash
    cy = floor - ry - lift

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = bg.copy()
    # Contact shadow: wider and fainter when the disc is high.
    sh = np.exp(-(((xx - x) / (rx * (1.2 + 0.6 * hop))) ** 2 + ((yy - floor) / (0.18 * r)) ** 2))
    img *= (1 - 0.45 * (1 - 0.6 * hop) * sh)[..., None]
    # Disc with a highlight towards the upper left (soft "sphere" shading).
    d = ((xx - x) / rx) ** 2 + ((yy - cy) / ry) ** 2
    inside = d <= 1.0
    hl = np.exp(-(((xx - (x - 0.35 * rx)) ** 2 + (yy - (cy - 0.4 * ry)) ** 2) / (0.5 * r) ** 2))
    shade = 0.72 + 0.28 * np.clip(1 - d, 0, 1) + 0.35 * hl
    orange = np.array([245.0, 130.0, 30.0])
    disc = np.clip(orange[None, None, :] * shade[..., None], 0, 255)
    img[inside] = disc[inside]
    img = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def bounce_frames() -> np.ndarray:
    """The 16 RGB frames of ``bounce.mp4`` as uint8 ``(16, 64, 64, 3)``."""
    rng = np.random.default_rng(0)
    bg = _background(rng)
    return np.stack([_bounce_frame(i / (FRAMES - 1), bg) for i in range(FRAMES)])


def _ffmpeg(args: list[str], out: Path, stdin: bytes | None = None) -> None:
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args, str(tmp)]
    try:
        subprocess.run(cmd, input=stdin, check=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def make_bounce(out: Path) -> Path:
    """Write ``bounce.mp4`` to ``out``."""
    frames = bounce_frames()
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE}x{SIZE}", "-r", str(FPS), "-i", "-"]
    _ffmpeg([*raw, *X264, "-frames:v", str(FRAMES)], out, stdin=frames.tobytes())
    return out


def make_pan(out: Path) -> Path:
    """Write ``pan.mp4`` to ``out``: a rightward pan over ffmpeg's testsrc2."""
    width = 3 * SIZE
    src = f"testsrc2=size={width}x{SIZE}:rate={FPS}"
    # Crop window slides from x=0 to x=width-SIZE over the clip (n = frame number).
    crop = f"crop={SIZE}:{SIZE}:x='n*{width - SIZE}/{FRAMES - 1}':y=0"
    _ffmpeg(["-f", "lavfi", "-i", src, "-vf", crop, *X264, "-frames:v", str(FRAMES)], out)
    return out


def main(argv: list[str]) -> None:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in (make_bounce(out_dir / "bounce.mp4"), make_pan(out_dir / "pan.mp4")):
        print(f"{path}  {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
