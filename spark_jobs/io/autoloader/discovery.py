"""Which landed files are new: listing the landing path, and the offsets that say what was read.

Offsets, kept in the Spark checkpoint, are `{"v": 1, "before": ms, "seen": [names]}`: every
file whose modification time (epoch ms) is earlier than `before`, plus the named files (paths
relative to `path`, modified at or after `before`), has been read. Files are taken in
(modification time, path) order and `before` follows the newest file read, so by default the
list only names files sharing the latest time; the offset stays small however many files land.

A file that lands with a modification time older than `before` is not read: an upload to S3
gets the time it completes, but a local file written elsewhere and renamed into place keeps
the time of its last write, and another file may have been read in between.
`cloudFiles.lateFileSeconds` (default 0) keeps `before` that many seconds behind the newest
file read, so such late files are still found, at the price of naming every file of the last
seconds in the offset.

Listing and reading go through pyarrow's filesystems, so the same code serves a local
directory and `s3://` on the driver and on executors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow.fs as pafs

from spark_jobs.io.autoloader.options import AutoloaderOptions
from spark_jobs.io.storage import arrow_filesystem

OFFSET_VERSION = 1


@dataclass(frozen=True, order=True)
class Landed:
    """One landed file: ordered by (modification time, name), the order files are read in."""

    mtime_ms: int
    name: str  # relative to the landing path
    size: int = field(default=0, compare=False)


def list_landed(options: AutoloaderOptions) -> list[Landed]:
    """Every readable file under the landing path, oldest first."""
    filesystem, root = landing_filesystem(options)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    found = []
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        name = info.path[len(root) :].lstrip("/")
        if any(part.startswith((".", "_")) for part in name.split("/")):
            continue
        mtime = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else 0
        found.append(Landed(mtime, name, info.size or 0))
    return sorted(found)


@lru_cache(maxsize=8)
def landing_filesystem(options: AutoloaderOptions) -> tuple[pafs.FileSystem, str]:
    """The landing path's filesystem, built once per process (every file read needs it)."""
    return arrow_filesystem(options.path, dict(options.storage))


def read_bytes(options: AutoloaderOptions, name: str, limit: int | None = None) -> bytes:
    """A landed file's bytes (the first `limit` of them): files are parsed whole."""
    filesystem, root = landing_filesystem(options)
    with filesystem.open_input_stream(f"{root}/{name}") as stream:
        data: bytes = stream.read(limit) if limit else stream.read()
        return data


def full_path(options: AutoloaderOptions, name: str) -> str:
    """The file's address as users see it: an absolute local path or `s3://bucket/key`."""
    return f"{options.path.rstrip('/')}/{name}"


def make_offset(before: int, seen: Iterable[str]) -> dict[str, Any]:
    """An offset as it goes into the checkpoint: plain JSON, names sorted so it is stable."""
    return {"v": OFFSET_VERSION, "before": before, "seen": sorted(set(seen))}


def check_offset(offset: dict[str, Any]) -> dict[str, Any]:
    """The offset if this version of the source wrote it; a clear error otherwise."""
    if offset.get("v") != OFFSET_VERSION or "before" not in offset or "seen" not in offset:
        raise ValueError(
            f"cloudFiles: the checkpoint holds an offset this source cannot read: {offset}"
        )
    return offset


def is_read(offset: dict[str, Any], landed: Landed) -> bool:
    """True when `offset` covers the file: older than its mark, or named at the mark."""
    return landed.mtime_ms < offset["before"] or landed.name in offset["seen"]


def advance(
    offset: dict[str, Any], taken: Sequence[Landed], mtimes: Mapping[str, int], window_ms: int = 0
) -> dict[str, Any]:
    """The offset after reading `taken` (new files, oldest first) on top of `offset`.

    The mark moves to the newest file read minus `window_ms`; files read at or after the mark
    stay named, so a file landing late (older than the newest, newer than the mark) is still
    found. Names no longer listed (deleted files) are dropped.
    """
    if not taken:
        return offset
    mark = max(offset["before"], taken[-1].mtime_ms - window_ms)
    known = {**mtimes, **{landed.name: landed.mtime_ms for landed in taken}}
    names = set(offset["seen"]) | {landed.name for landed in taken}
    return make_offset(mark, (name for name in names if known.get(name, mark - 1) >= mark))
