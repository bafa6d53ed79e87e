"""Frame sources: a video file (OpenCV) or a folder of frame images, read in frame order."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

from ..data.imaging import load_image
from ..errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FrameSource:
    """Where frames come from: `path` is a video file or a folder of images (one per frame, name order)."""

    path: Path
    n_frames: int
    width: int
    height: int

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    def frame_files(self) -> list[Path]:
        """The images of a frame folder, in frame order."""
        return sorted(p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)

    def iter_frames(self, frames: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
        """Decode the given frame indices (0-based; sorted and de-duplicated here) as RGB images."""
        wanted = sorted(set(int(f) for f in frames))
        if not wanted:
            return
        if wanted[0] < 0 or wanted[-1] >= self.n_frames:
            raise DataError(f"{self.path} has {self.n_frames} frames; frame {wanted[-1] if wanted[-1] >= 0 else wanted[0]} "
                            "was asked for")
        if self.is_folder:
            files = self.frame_files()
            for f in wanted:
                yield f, load_image(files[f])
            return
        yield from _decode(self.path, wanted)


def _decode(path: Path, wanted: list[int]) -> Iterator[tuple[int, Image.Image]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"cannot open video {path}")
    try:
        pos, k = 0, 0
        if wanted[0] > 64:  # seek close to the first wanted frame, then decode forward
            cap.set(cv2.CAP_PROP_POS_FRAMES, wanted[0])
            pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            if pos != wanted[0]:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                pos = 0
        while k < len(wanted):
            if wanted[k] - pos > 256:  # long gap: seek instead of decoding every frame in between
                cap.set(cv2.CAP_PROP_POS_FRAMES, wanted[k])
                pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            ok, bgr = cap.read()
            if not ok:
                raise DataError(f"{path}: decoding stopped at frame {pos}; frame {wanted[k]} is missing")
            if pos == wanted[k]:
                yield pos, Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                k += 1
            pos += 1
    finally:
        cap.release()


def open_frames(path: str | Path) -> FrameSource:
    """A FrameSource for a video file or a frame folder; a clear DataError when it cannot be read."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise DataError(f"{path} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
        first = load_image(files[0])
        return FrameSource(path, len(files), first.width, first.height)
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"cannot open video {path}: not a video OpenCV can decode")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or n <= 0 or w <= 0 or h <= 0:
        raise DataError(f"cannot decode video {path}: no readable frame")
    return FrameSource(path, n, w, h)


def iter_frames(path: str | Path, frames: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
    """Decode the given frame indices of a video file or frame folder as RGB PIL images."""
    return open_frames(path).iter_frames(frames)
