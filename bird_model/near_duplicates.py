"""Near-identical photos (re-encodes, resizes, crops of one shot) found by their difference hashes.

The dataset check groups them so that a photo and its copy never land on both sides of the
split (validation would then grade what training saw). Every pair of a class is compared, in
tiles, so the time grows predictably with the class size (benchmarks/grouping.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

NEAR_DUPLICATE_BITS = 6
"""Two photos whose 64-bit difference hashes differ in at most this many bits are one group."""


def difference_hash(pixels: np.ndarray) -> int:
    """64-bit dHash: robust to re-encoding and resizing, cheap to compare.

    The first pixel pair is the most significant bit, so the integers match the hashes of
    earlier dataset reports.
    """
    gray = Image.fromarray(pixels).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    values = np.asarray(gray, dtype=np.int16)
    bits = values[:, 1:] > values[:, :-1]
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def group_near_duplicates(labels: Sequence[str], hashes: Sequence[int]) -> list[list[int]]:
    """Union-find over same-class pairs within :data:`NEAR_DUPLICATE_BITS`; every photo is in one group.

    ``labels[i]`` and ``hashes[i]`` (:func:`difference_hash`) are photo ``i``'s; the groups are
    lists of indices.

    Only photos of one class are grouped: the 64-bit hash of two different birds with a similar
    layout can come as close as a re-encoded copy, and a group spanning classes would also
    confuse the per-class stratification.
    """
    members_by_class: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members_by_class[label].append(index)
    groups: list[list[int]] = []
    for members in members_by_class.values():
        of_class = np.array([hashes[i] for i in members], dtype=np.uint64)
        roots = _connected_components(len(members), _near_pairs(of_class, NEAR_DUPLICATE_BITS))
        groups.extend(_members_by_root(np.array(members), roots))
    return sorted(groups)


def _members_by_root(members: np.ndarray, roots: np.ndarray) -> list[list[int]]:
    """One ascending list per component, as the splits expect, sorted without a Python loop per photo."""
    order = np.argsort(roots, kind="stable")
    boundaries = np.flatnonzero(np.diff(roots[order])) + 1
    return [members[part].tolist() for part in np.split(order, boundaries)]


# Hashes compared at once: 8 MiB of XORs, where 90,000 photos of one class would need 60 GiB in one go.
_TILE_ROWS = 256
_TILE_COLUMNS = 4096

# Pairs held before merging them: bounds memory however many pairs a class has.
_PAIRS_PER_UNION = 1 << 20


def _near_pairs(hashes: np.ndarray, max_bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs ``i < j`` whose hashes differ in at most ``max_bits`` bits, one tile at a time.

    Every pair of the class is compared with ``np.bitwise_count`` (benchmarks/README.md, "Near-duplicate
    grouping", has the time for 90,000 photos), so the time is predictable from the count;
    multi-index hashing would compare fewer pairs but slows down
    when many hashes share a chunk value, as photos of one class with a similar layout do.
    """
    xors = np.empty((_TILE_ROWS, _TILE_COLUMNS), dtype=np.uint64)
    bits = np.empty((_TILE_ROWS, _TILE_COLUMNS), dtype=np.uint8)
    for top in range(0, len(hashes), _TILE_ROWS):
        rows = hashes[top : top + _TILE_ROWS, None]
        for left in range(top, len(hashes), _TILE_COLUMNS):
            columns = hashes[None, left : left + _TILE_COLUMNS]
            shape = (rows.shape[0], columns.shape[1])
            tile_xors, tile_bits = xors[: shape[0], : shape[1]], bits[: shape[0], : shape[1]]
            np.bitwise_xor(rows, columns, out=tile_xors)
            np.bitwise_count(tile_xors, out=tile_bits)
            if tile_bits.min() > max_bits:  # most tiles: cheaper than searching them for pairs
                continue
            row, column = np.divmod(np.flatnonzero(tile_bits <= max_bits), shape[1])
            row, column = row + top, column + left
            above_diagonal = row < column
            if above_diagonal.any():
                yield row[above_diagonal], column[above_diagonal]


def _connected_components(count: int, pairs: Iterator[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The smallest member of each index's component, merging pairs in bulk to stay out of Python loops.

    Pairs already joined are dropped as they arrive: in a class of near-identical photos nearly
    all of its billions of pairs are, and the held pairs stay few.
    """
    parent = np.arange(count)
    pending: list[np.ndarray] = []
    held = 0
    for first, second in pairs:
        apart = parent[first] != parent[second]
        pending.append(np.stack((first[apart], second[apart])))
        held += pending[-1].shape[1]
        if held >= _PAIRS_PER_UNION:
            _union(parent, np.concatenate(pending, axis=1))
            pending, held = [], 0
    if pending:
        _union(parent, np.concatenate(pending, axis=1))
    return parent


def _union(parent: np.ndarray, pairs: np.ndarray) -> None:
    """Hook every root under the smallest root it is paired with, until each pair shares a root.

    ``parent`` stays flat (each index points at its root) between calls. A root paired with
    several others hooks under only the smallest of them, so its other pairs go round again;
    each round removes at least one root, and a photo bridging two groups takes two rounds.
    """
    first, second = pairs
    while True:
        first, second = parent[first], parent[second]
        apart = first != second
        if not apart.any():
            return
        first, second = first[apart], second[apart]
        np.minimum.at(parent, np.maximum(first, second), np.minimum(first, second))
        _flatten(parent)


def _flatten(parent: np.ndarray) -> None:
    """Point every index straight at its root by pointer jumping: rounds grow with log(depth)."""
    while True:
        grandparent = parent[parent]
        if np.array_equal(grandparent, parent):
            return
        parent[:] = grandparent
