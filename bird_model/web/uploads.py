"""The upload cache's budget: what strangers' uploads may hold on disk at once.

Gradio keeps every upload in its cache folder until its age-based sweep (``delete_cache``)
comes round; one client uploading 25 MB files in a loop fills a disk long before that. This
ASGI middleware, in front of Gradio's ``/gradio_api/upload``, keeps the uploads Gradio has
recorded (``Blocks.upload_file_set``) under a size and a count: the oldest uploads that are
old enough to have been classified go first, and an upload that still does not fit is refused
with HTTP 413 and one line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import anyio
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

UPLOAD_PATH = "/gradio_api/upload"
FULL = ("This demo is receiving more photos than it can hold just now; please try again in a minute "
        "(or send a smaller photo).")


class UploadBudget:
    """``Middleware(UploadBudget, uploads=..., max_bytes=..., max_files=..., min_age=...)``.

    ``uploads`` returns Gradio's live set of uploaded paths; ``min_age`` (seconds) protects an
    upload from eviction while its prediction may still read it; ``max_incoming`` is assumed
    for an upload that does not say its size (Gradio's per-file limit).
    """

    def __init__(self, app: ASGIApp, *, uploads: Callable[[], set[str]], max_bytes: int, max_files: int,
                 min_age: float, max_incoming: int) -> None:
        self.app, self.uploads = app, uploads
        self.max_bytes, self.max_files, self.min_age, self.max_incoming = max_bytes, max_files, min_age, max_incoming
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith(UPLOAD_PATH):
            incoming = _content_length(scope) or self.max_incoming
            if not await anyio.to_thread.run_sync(self.make_room, incoming):
                await _drain(receive, self.max_incoming)
                await PlainTextResponse(FULL, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def make_room(self, incoming: int) -> bool:
        """Evict the oldest evictable uploads until ``incoming`` more bytes and one more file fit."""
        with self._lock:
            uploads = self.uploads()
            kept: list[tuple[float, int, str]] = []
            for path in list(uploads):
                try:
                    status = os.stat(path)
                except OSError:
                    uploads.discard(path)  # swept by Gradio or already evicted
                    continue
                kept.append((status.st_mtime, status.st_size, path))
            kept.sort()
            total, count, now = sum(size for _, size, _ in kept), len(kept), time.time()
            for modified, size, path in kept:
                if total + incoming <= self.max_bytes and count + 1 <= self.max_files:
                    break
                if now - modified < self.min_age:
                    break  # the rest are newer still
                _remove(path)
                uploads.discard(path)
                total, count = total - size, count - 1
            return total + incoming <= self.max_bytes and count + 1 <= self.max_files


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop the refused upload (up to ``limit`` bytes), so the client, still sending,
    gets the answer instead of a reset connection."""
    read = 0
    while read <= limit:
        message = await receive()
        read += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _remove(path: str) -> None:
    """The file and, when it was the only one, the content-hash folder Gradio made for it."""
    try:
        os.remove(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass

