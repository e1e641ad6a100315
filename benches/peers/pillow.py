"""Peer runner for `compare`: sharp's benchmark workload with Pillow, timed in rounds.

usage: python pillow.py INPUT THREADS WARMUP ROUNDS PER_ROUND OUTPUT

Each image: Image.open(INPUT) (file in), im.draft('RGB', (720, 588)) (JPEG DCT shrink-on-load),
im.resize((720, 588), Image.LANCZOS), im.save(BytesIO, 'JPEG', quality=80) (buffer out).
THREADS=1 runs in this process; THREADS=N>1 runs the images of each round on a
multiprocessing.Pool(N) (started, and warmed up, before any timing).

Prints one line of JSON on stdout:
{"ms_per_image", "rounds_ms", "images_per_round", "bytes", "width", "height", "version"}
where ms_per_image is the median over rounds of (round wall time / images in round), and writes
the last image made to OUTPUT.
"""

import io
import json
import multiprocessing
import statistics
import sys
import time

import PIL
from PIL import Image

SIZE = (720, 588)
QUALITY = 80


def encode(path):
    """Makes one 720x588 JPEG from the image at `path`; returns its bytes."""
    with Image.open(path) as im:
        im.draft("RGB", SIZE)
        resized = im.resize(SIZE, Image.LANCZOS)
    buf = io.BytesIO()
    resized.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def encoded_size(path):
    """Like `encode`, but returns only the size, so workers send back an int, not the image."""
    return len(encode(path))


def count(name, text, minimum):
    value = int(text)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def main(argv):
    if len(argv) != 6:
        sys.exit("usage: python pillow.py INPUT THREADS WARMUP ROUNDS PER_ROUND OUTPUT")
    path, output = argv[0], argv[5]
    threads = count("THREADS", argv[1], 1)
    warmup = count("WARMUP", argv[2], 0)
    rounds = count("ROUNDS", argv[3], 1)
    per_round = count("PER_ROUND", argv[4], 1)

    pool = multiprocessing.Pool(threads) if threads > 1 else None

    def batch(n):
        """Processes `n` images: in this process, or spread over the pool one at a time."""
        if pool is None:
            for _ in range(n):
                encoded_size(path)
        else:
            pool.map(encoded_size, [path] * n, chunksize=1)

    try:
        batch(warmup)
        rounds_ms = []
        for _ in range(rounds):
            start = time.perf_counter()
            batch(per_round)
            rounds_ms.append((time.perf_counter() - start) * 1000.0)
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    data = encode(path)
    with open(output, "wb") as f:
        f.write(data)
    with Image.open(io.BytesIO(data)) as out:
        width, height = out.size

    report = {
        "ms_per_image": statistics.median(ms / per_round for ms in rounds_ms),
        "rounds_ms": rounds_ms,
        "images_per_round": per_round,
        "bytes": len(data),
        "width": width,
        "height": height,
        "version": PIL.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
