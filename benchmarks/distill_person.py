"""Distil the built-in MediaPipe person model into a small Pixelwise student.

Frames of OpenCV's ``vtest.avi`` (a static camera over a walkway; people cover 0.2-3 % of a
frame) plus the two portrait photos of ``tests/data/photos`` are the training images; no
labels are used (the teacher is the only source). The last part of the video is held out,
so the held-out frames are not near-duplicates of training frames. Prints one JSON line per
figure: held-out IoU of the ``person`` class and pixel agreement (teacher labels as
reference, also for the untrained student), and ms/image of teacher (LiteRT, 256x256) and
student (PyTorch eager at ``--input-size``), both through ``Segmenter.predict`` with the same
thread count.

Run: ``python benchmarks/distill_person.py`` (a few minutes on 2 cores); ``--video`` picks
another video, otherwise ``../shared/data/video/vtest.avi`` or, if missing, the 12 frames in
``tests/data/vtest_frames``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "video" / "vtest.avi"


def extract_frames(video: Path, out_dir: Path, count: int, size: tuple[int, int] = (384, 288)) -> list[Path]:
    """Write ``count`` evenly spaced frames of ``video`` as JPEG (``size`` = (width, height))."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    paths = []
    for k in range(count):
        index = int(k * (total - 1) / max(1, count - 1))
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        if not ok:
            continue
        path = out_dir / f"frame_{index:04d}.jpg"
        cv2.imwrite(str(path), cv2.resize(frame, size, interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    cap.release()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=60, help="frames taken from the video")
    parser.add_argument("--heldout", type=float, default=0.2, help="fraction of frames (the last ones) held out")
    parser.add_argument("--student", default="unet-mobilenet_v2")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--input-size", default="192x256", help="student input HxW")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="student checkpoint (default: temporary)")
    args = parser.parse_args()

    from pixelwise.training.distill import distill

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        if args.video.is_file():
            frames = extract_frames(args.video, tmp_dir, args.frames)
            source = str(args.video)
        else:
            frames = sorted((ROOT / "tests" / "data" / "vtest_frames").glob("*.jpg"))
            source = "tests/data/vtest_frames"
        n_held = max(1, round(len(frames) * args.heldout))
        train, held = frames[:-n_held], frames[-n_held:]
        photos = sorted((ROOT / "tests" / "data" / "photos").glob("*"))
        h, w = (int(v) for v in args.input_size.split("x"))
        start = time.perf_counter()
        report = distill(
            "person",
            args.student,
            train + photos,
            heldout=held,
            steps=args.steps,
            batch_size=args.batch_size,
            input_size=(h, w),
            threads=args.threads,
            out_path=args.out or tmp_dir / "student.pt",
            progress=True,
        )
        seconds = time.perf_counter() - start
    common = {
        "benchmark": "distill_person",
        "video": source,
        "student": report.student,
        "student_params": report.student_params,
        "input_size": [h, w],
        "steps": report.steps,
        "train_images": report.train_images,
        "heldout_frames": report.heldout_images,
        "threads": report.threads,
    }
    assert report.heldout is not None and report.heldout_untrained is not None
    rows = [
        ("heldout_person_iou", report.heldout.iou),
        ("heldout_pixel_agreement", report.heldout.pixel_agreement),
        ("untrained_person_iou", report.heldout_untrained.iou),
        ("untrained_pixel_agreement", report.heldout_untrained.pixel_agreement),
        ("teacher_ms_per_image", report.teacher_ms),
        ("student_ms_per_image", report.student_ms),
        ("distill_seconds", seconds),
    ]
    for name, value in rows:
        print(json.dumps({**common, "figure": name, "value": None if value is None else round(float(value), 4)}))


if __name__ == "__main__":
    main()
