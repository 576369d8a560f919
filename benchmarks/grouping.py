"""Near-duplicate grouping at scale: random difference hashes with planted near-copies.

    python benchmarks/grouping.py [--photos 90000] [--classes 500] [--copies 0.05] [--seed 0]

Times ``group_near_duplicates`` twice on the same hashes: all photos in one class (the
worst case, since every pair of a class is compared) and spread evenly over ``--classes``
classes. A fraction ``--copies`` of the photos are copies of another photo of their class
with 0 to 8 bits flipped, so groups form, some at exactly the threshold and some just past
it. No images are decoded: only the grouping is measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe_machine
from bird_model.near_duplicates import NEAR_DUPLICATE_BITS, group_near_duplicates


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=90_000, help="hashes to group (default: 90000)")
    parser.add_argument("--classes", type=int, default=500, help="classes of the spread run (default: 500)")
    parser.add_argument("--copies", type=float, default=0.05, help="fraction that are near-copies (default: 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def planted_hashes(count: int, copies: float, block: int, rng: np.random.Generator) -> np.ndarray:
    """Random 64-bit hashes in which some photos copy an earlier one of their block, a few bits flipped.

    Random hashes are about 32 bits apart, so only the planted copies group. Originals come
    from the copy's own block of consecutive photos, which is its class in both runs, and
    may be copies themselves, so chains form too.
    """
    hashes = rng.integers(0, np.iinfo(np.uint64).max, size=count, dtype=np.uint64, endpoint=True)
    not_first = np.flatnonzero(np.arange(count) % block)
    for index in np.sort(rng.choice(not_first, size=int(count * copies), replace=False)):
        original = rng.integers(index - index % block, index)
        flips = rng.choice(64, size=rng.integers(0, NEAR_DUPLICATE_BITS + 3), replace=False)
        hashes[index] = hashes[original] ^ np.uint64(sum(1 << int(bit) for bit in flips))
    return hashes


def timed_grouping(hashes: np.ndarray, labels: list[str]) -> tuple[float, int]:
    """Seconds to group, and how many groups hold more than one photo."""
    start = time.perf_counter()
    groups = group_near_duplicates(labels, [int(h) for h in hashes])
    return time.perf_counter() - start, sum(len(group) > 1 for group in groups)


def main() -> None:
    args = parse_args()
    print(describe_machine())
    per_class = -(-args.photos // args.classes)
    hashes = planted_hashes(args.photos, args.copies, per_class, np.random.default_rng(args.seed))
    runs = {
        "one class": ["bird"] * args.photos,
        f"{args.classes} classes": [f"class {i // per_class}" for i in range(args.photos)],
    }
    for name, labels in runs.items():
        seconds, grouped = timed_grouping(hashes, labels)
        print(f"{args.photos} hashes, {name}: {seconds:.2f} s ({grouped} near-duplicate groups)")
    print(describe_machine().splitlines()[0])


if __name__ == "__main__":
    main()
