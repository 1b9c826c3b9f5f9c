"""The stand-in's history of changes and its watches, as the API documents them:

- "Kubernetes API Concepts" (https://kubernetes.io/docs/reference/using-api/api-concepts/),
  "Efficient detection of changes": `watch=1&resourceVersion=X` streams the changes after X,
  chunked, one JSON object per line, `{"type": ADDED | MODIFIED | DELETED | BOOKMARK | ERROR,
  "object": ...}`, the objects with their kind; without a resourceVersion (or with "0") the
  current objects come first as ADDED ("Resource versions": get state and start at most
  recent). History is kept for a limited time: a watch from a resourceVersion no longer held
  fails with 410 Gone, and the client must list again and watch from the list's version.
- Same page, "Watch bookmarks": with `allowWatchBookmarks=true` a BOOKMARK may come whose
  object holds only kind, apiVersion and `metadata.resourceVersion`, at no set interval (here
  when a test calls `bookmark()`, and as `timeoutSeconds` ends the watch, as cache_watcher.go's
  `nextBookmarkTime` sends one just before the deadline).
- kubernetes/kubernetes#25151 and #35068: an expired resourceVersion is answered either as
  HTTP 410 (the watch cache) or as 200 and one ERROR event whose object is a Status with code
  410, reason `Expired`, message `too old resource version: X (Y)`; `expire(how=...)` picks.
- A watch with a selector sees an object that starts matching as ADDED and one that stops as
  DELETED (k8s.io/apiserver pkg/storage/cacher/cache_watcher.go, `convertToWatchEvent`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from devstack.kubepatch import Fail, status
from devstack.kubeselect import Match

Object = dict[str, Any]
GoneAs = Literal["event", "status"]


@dataclass(frozen=True)
class Change:
    """One write to the store: the object before (None: created) and after (None: deleted)."""

    old: Object | None
    new: Object | None
    version: int


@dataclass(eq=False)
class Watch:
    """One open watch: what it selects, whether it takes bookmarks, what is still to send
    (None ends it)."""

    matches: Match
    bookmarks: bool
    lasts: float | None = None
    """Seconds until the server ends it (timeoutSeconds); None: until dropped."""
    events: asyncio.Queue[Object | None] = field(default_factory=asyncio.Queue)


def event_for(watch: Watch, change: Change) -> Object | None:
    """CHANGE as WATCH sees it through its selectors: an object that starts matching is ADDED,
    one that stops is DELETED (cache_watcher.go's convertToWatchEvent); None: not its business."""
    was = change.old is not None and watch.matches(change.old)
    now = change.new is not None and watch.matches(change.new)
    if now:
        return {"type": "MODIFIED" if was else "ADDED", "object": copy.deepcopy(change.new)}
    if was:
        gone = copy.deepcopy(change.new or change.old)
        assert gone is not None
        gone["metadata"]["resourceVersion"] = str(change.version)
        return {"type": "DELETED", "object": gone}
    return None


class History:
    """The changes a watch may start after, and the watches open now."""

    def __init__(self) -> None:
        self.version = 999
        self.changes: list[Change] = []
        self.compacted = 0
        """Changes up to this version are forgotten: a watch from an older one is 410 Gone."""
        self.gone_as: GoneAs = "event"
        self.watches: set[Watch] = set()

    def record(self, old: Object | None, new: Object | None) -> None:
        change = Change(copy.deepcopy(old), copy.deepcopy(new), self.version)
        self.changes.append(change)
        for watch in self.watches:
            if (event := event_for(watch, change)) is not None:
                watch.events.put_nowait(event)

    def bookmark_event(self) -> Object:
        meta = {"resourceVersion": str(self.version)}
        return {
            "type": "BOOKMARK",
            "object": {"kind": "Node", "apiVersion": "v1", "metadata": meta},
        }

    def bookmark(self) -> None:
        for watch in self.watches:
            if watch.bookmarks:
                watch.events.put_nowait(self.bookmark_event())

    def drop(self) -> None:
        for watch in self.watches:
            watch.events.put_nowait(None)

    def expire(self, how: GoneAs) -> None:
        self.gone_as = how
        self.compacted = self.version
        self.changes.clear()
        self.drop()

    def backlog(self, watch: Watch, since: str, current: list[Object]) -> list[Object]:
        """What a new watch sends first: the CURRENT objects (no resourceVersion, or "0"), the
        changes after SINCE, or one ERROR event for a resourceVersion no longer held (HTTP 410
        instead when `gone_as` is "status")."""
        if since in ("", "0"):
            return [{"type": "ADDED", "object": copy.deepcopy(n)} for n in current]
        if not since.isdigit():
            raise Fail(400, "BadRequest", f"invalid resource version: {since!r}")
        if int(since) < self.compacted:
            gone = Fail(410, "Expired", f"too old resource version: {since} ({self.compacted})")
            if self.gone_as == "status":
                raise gone
            return [{"type": "ERROR", "object": status(gone, None)}]
        changes = (c for c in self.changes if c.version > int(since))
        return [e for c in changes if (e := event_for(watch, c)) is not None]

    async def serve(
        self, request: web.Request, watch: Watch, backlog: list[Object]
    ) -> web.StreamResponse:
        """Stream BACKLOG, then every change until the watch is dropped, its time is up (a
        bookmark first, if allowed) or the client goes away."""
        expired = bool(backlog) and backlog[-1]["type"] == "ERROR"
        if not expired:
            self.watches.add(watch)  # before the first await: no change is missed
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for event in backlog:
                await _send(response, event)
            if not expired:
                await self._follow(response, watch)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.watches.discard(watch)
        return response

    async def _follow(self, response: web.StreamResponse, watch: Watch) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if watch.lasts is None else loop.time() + watch.lasts
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                event = await asyncio.wait_for(watch.events.get(), left)
            except TimeoutError:
                if watch.bookmarks:
                    await _send(response, self.bookmark_event())
                return
            if event is None:
                return
            await _send(response, event)


async def _send(response: web.StreamResponse, event: Object) -> None:
    await response.write(json.dumps(event).encode() + b"\n")


def seconds(text: str | None) -> float | None:
    """`timeoutSeconds`: a whole number of seconds, or 400."""
    if text is None:
        return None
    if not text.isdigit():
        raise Fail(400, "BadRequest", f"timeoutSeconds: invalid value {text!r}")
    return float(text)
