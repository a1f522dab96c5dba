"""Connections watched for events: a git repository, a folder, an OCI registry (``config.yaml``'s
``connections:``; DESIGN §3 "Events", docs/semantics.md), and a bucket (``sources.buckets``).

Each :class:`Source` answers one question, :meth:`Source.poll`: what is there now that is newer than the
event last handled? It returns candidates, oldest first, each with an id that names it for good (a commit
sha, a file's path, a tag); the watch (``polynb.scheduler.watch``) keeps the ids it handled in the store,
so a candidate seen again is dropped and nothing is handled twice.

When to poll is :class:`SourceLoop`'s business: a local source (a repository on this machine, a folder) is
polled when inotify says its folder changed, so it costs nothing while nothing happens; a remote one (``git
ls-remote`` of a URL, a registry's tags list, a bucket's listing) every ``poll`` seconds, twice as long after
each error up to :data:`MAX_BACKOFF` times, back to normal on the first success (both said as warnings).
Nothing runs when nothing is watched: the loop exists only while ``polynb watch`` runs.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polynb.scheduler.sources import inotify

logger = logging.getLogger(__name__)

DEFAULT_REMOTE_POLL = 60.0
"""Seconds between two looks at a remote source (a connection's ``poll`` overrides it)."""
LOCAL_FALLBACK_POLL = 1.0
"""Seconds between two looks at a local source where inotify is not available."""
MAX_BACKOFF = 16
"""After errors, a source is polled at most this many times less often."""
GIT_TIMEOUT = 60.0
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class SourceEvent:
    source: str
    """The connection's name."""
    kind: str
    id: str
    """Names the event for good: a commit sha, a file's path, an image tag."""
    payload: dict[str, Any] = field(default_factory=dict)


class SourceError(Exception):
    """A source could not be read (a network error, a missing repository); it is retried with back-off."""


class Source(ABC):
    kind: str

    def __init__(self, name: str, schema: Mapping[str, Any], poll: float | None) -> None:
        self.name = name
        self.schema = dict(schema)
        self.poll_interval = poll

    @property
    def local(self) -> bool:
        """Watched through its folders (inotify) rather than polled."""
        return False

    @property
    def folders(self) -> list[tuple[Path, int]]:
        """Folders (and inotify masks) whose changes make this source worth polling; none for a remote one."""
        return []

    @abstractmethod
    def poll(self, last_id: str | None) -> list[SourceEvent]:
        """Candidates newer than ``last_id`` (None: everything there now, the baseline), oldest first."""

    def event(self, event_id: str, payload: dict[str, Any]) -> SourceEvent:
        return SourceEvent(self.name, self.kind, event_id, {"connection": self.name, **payload})


# -- git ---------------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise SourceError(f"git {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


class GitSource(Source):
    """``connection_git_commit``: new commits on a branch.

    A local repository (``url`` is a folder) is watched through inotify on its ``refs/heads`` folder and its
    git folder (``packed-refs``): git updates a ref by renaming a lock file onto it. Each new commit since
    the last one handled is an event (``git rev-list``), oldest first; after a force push, the new head
    alone. A remote (any other ``url``) is polled with ``git ls-remote``: one event per new head.
    """

    kind = "connection_git_commit"

    def __init__(self, name: str, schema: Mapping[str, Any], poll: float | None) -> None:
        super().__init__(name, schema, poll)
        url = schema.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError(f"connection {name}: a git connection needs `schema.url`")
        self.url = url
        self.branch = str(schema.get("revision") or "main")
        path = Path(url).expanduser()
        self.repo = path if path.is_dir() else None
        """The repository's folder when it is on this machine (else ``url`` is a remote)."""
        self._git_dir: Path | None = None

    @property
    def local(self) -> bool:
        return self.repo is not None

    @property
    def git_dir(self) -> Path:
        if self._git_dir is None:
            assert self.repo is not None
            self._git_dir = Path(_git("-C", str(self.repo), "rev-parse", "--absolute-git-dir").strip())
        return self._git_dir

    @property
    def folders(self) -> list[tuple[Path, int]]:
        if self.repo is None:
            return []
        mask = inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE | inotify.IN_CREATE
        heads = self.git_dir / "refs" / "heads" / self.branch
        return [(heads.parent, mask), (self.git_dir, mask)]

    def head(self) -> str | None:
        ref = f"refs/heads/{self.branch}"
        if self.repo is not None:
            try:
                return _git("-C", str(self.repo), "rev-parse", "--verify", "--quiet", ref).strip() or None
            except SourceError:
                return None  # no commit on the branch yet
        line = _git("ls-remote", self.url, ref).strip()
        return line.split()[0] if line else None

    def poll(self, last_id: str | None) -> list[SourceEvent]:
        head = self.head()
        if head is None or head == last_id:
            return []
        shas = [head]
        if self.repo is not None and last_id is not None:
            try:
                listed = _git("-C", str(self.repo), "rev-list", "--reverse", f"{last_id}..{head}").split()
                shas = listed or [head]
            except SourceError:
                shas = [head]  # the last commit is gone (a force push): the new head alone
        events = []
        for sha in shas:
            payload: dict[str, Any] = {"sha": sha, "branch": self.branch, "url": self.url}
            if self.repo is not None:
                payload["message"] = _git("-C", str(self.repo), "log", "-1", "--format=%s", sha).strip()
            events.append(self.event(sha, payload))
        return events


# -- a folder ----------------------------------------------------------------------------------------------


class FolderSource(Source):
    """``connection_dataset_version``: a new file under a folder (a ``host_path`` connection's ``hostPath``).

    Each file is an event once, named by its path relative to the folder. inotify reports a file when it is
    closed after writing or moved in, so a file being written is not handed over half-written; a writer of
    big files should still write elsewhere and rename into the folder (one atomic step). Hidden files
    (``.name``) and ``*.tmp`` / ``*.part`` files are left out.
    """

    kind = "connection_dataset_version"

    def __init__(self, name: str, schema: Mapping[str, Any], poll: float | None) -> None:
        super().__init__(name, schema, poll)
        path = schema.get("hostPath") or schema.get("path") or schema.get("url")
        if not isinstance(path, str) or not path:
            raise ValueError(f"connection {name}: a host_path connection needs `schema.hostPath`")
        self.root = Path(path).expanduser()

    @property
    def local(self) -> bool:
        return True

    @property
    def folders(self) -> list[tuple[Path, int]]:
        mask = inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_CREATE
        found = [(self.root, mask)]
        for dirpath, dirnames, _ in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [(Path(dirpath) / d, mask) for d in dirnames]
        return found

    def poll(self, last_id: str | None) -> list[SourceEvent]:
        if not self.root.is_dir():
            raise SourceError(f"{self.root} is not a folder")
        files: list[tuple[int, str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                if filename.startswith(".") or filename.endswith((".tmp", ".part")):
                    continue
                path = Path(dirpath) / filename
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime_ns, str(path.relative_to(self.root)), path))
        files.sort()
        return [
            self.event(rel, {"path": str(path), "relative_path": rel, "folder": str(self.root)})
            for _, rel, path in files
        ]


# -- an OCI registry ---------------------------------------------------------------------------------------


class RegistrySource(Source):
    """``connection_registry_image``: a new tag of an image, from the registry's HTTP API
    (``GET /v2/<name>/tags/list``, OCI distribution spec; pages followed through the ``Link`` header).
    A bearer ``token`` in the schema is sent as ``Authorization``; the registry's own token dance is not done."""

    kind = "connection_registry_image"

    def __init__(self, name: str, schema: Mapping[str, Any], poll: float | None) -> None:
        super().__init__(name, schema, poll)
        url, image = schema.get("url"), schema.get("image")
        if not isinstance(url, str) or not isinstance(image, str) or not url or not image:
            raise ValueError(f"connection {name}: a registry connection needs `schema.url` and `schema.image`")
        self.url = url.rstrip("/") if "://" in url else f"https://{url.rstrip('/')}"
        self.image = image
        self.token = schema.get("token")

    def tags(self) -> list[str]:
        found: list[str] = []
        next_url: str | None = f"{self.url}/v2/{self.image}/tags/list"
        while next_url:
            request = urllib.request.Request(next_url, headers={"Accept": "application/json"})  # noqa: S310
            if isinstance(self.token, str):
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
                    body = json.loads(response.read() or b"{}")
                    link = response.headers.get("Link")
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise SourceError(f"{next_url}: {exc}") from None
            found += [t for t in body.get("tags") or () if isinstance(t, str)]
            next_url = None
            if link and 'rel="next"' in link:
                target = link.split(";")[0].strip().strip("<>")
                next_url = urllib.parse.urljoin(self.url, target)
        return found

    def poll(self, last_id: str | None) -> list[SourceEvent]:
        host = urllib.parse.urlsplit(self.url).netloc
        return [
            self.event(
                tag, {"image": self.image, "tag": tag, "registry": self.url, "reference": f"{host}/{self.image}:{tag}"}
            )
            for tag in self.tags()
        ]


# -- when to poll ------------------------------------------------------------------------------------------


class SourceLoop:
    """Calls ``look(source)`` (on its own thread) when a source may have news: at start, when inotify says
    one of its folders changed, and every ``poll`` seconds for a remote one. ``look`` polls the source with
    its own cursor; a :class:`SourceError` out of it backs the source off."""

    def __init__(
        self,
        sources: Sequence[Source],
        look: Callable[[Source], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = list(sources)
        self._look_at = look
        self._clock = clock
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._inotify: inotify.Inotify | None = None
        self._folders: dict[Path, list[Source]] = {}
        self._due: dict[str, float] = {}
        self._backoff: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        local = [s for s in self.sources if s.local]
        if local and inotify.available():
            self._inotify = inotify.Inotify()
            for source in local:
                self._arm(source)
        now = self._clock()
        for source in self.sources:
            self._due[source.name] = now  # a first look at everything: what came while nobody watched
        self._thread = threading.Thread(target=self._run, name="polynb-sources", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join()
        if self._inotify is not None:
            self._inotify.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _arm(self, source: Source) -> None:
        assert self._inotify is not None
        for folder, mask in source.folders:
            if folder in self._folders:
                if source not in self._folders[folder]:
                    self._folders[folder].append(source)
                continue
            try:
                self._inotify.add(folder, mask)
            except OSError as exc:
                logger.debug("not watching %s: %s", folder, exc)  # not there yet: a parent's change re-arms
                continue
            self._folders[folder] = [source]

    def _interval(self, source: Source) -> float | None:
        """Seconds to the next look when nothing wakes the loop (None: only inotify does)."""
        if source.poll_interval is not None:
            return source.poll_interval
        if source.local:
            return None if self._inotify is not None else LOCAL_FALLBACK_POLL
        return DEFAULT_REMOTE_POLL

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            timeout = min((d - now for d in self._due.values()), default=None)
            fds: list[int] = [self._wake_r] + ([self._inotify.fileno()] if self._inotify is not None else [])
            ready, _, _ = select.select(fds, [], [], None if timeout is None else max(0.0, timeout))
            if self._stop.is_set():
                return
            if self._inotify is not None and self._inotify.fileno() in ready:
                for change in self._inotify.read():
                    if change.mask & inotify.IN_Q_OVERFLOW:
                        for source in self.sources:
                            self._due[source.name] = self._clock()
                        continue
                    for source in self._folders.get(change.folder, ()):
                        self._due[source.name] = self._clock()
                        if change.mask & inotify.IN_ISDIR:
                            self._arm(source)  # a new sub-folder, or a branch folder that now exists
            now = self._clock()
            for source in self.sources:
                due = self._due.get(source.name)
                if due is not None and due <= now:
                    self._look(source)

    def next_look(self, name: str) -> float | None:
        """Seconds until the source ``name`` is looked at again unprompted (None: only inotify wakes it)."""
        due = self._due.get(name)
        return None if due is None else max(0.0, due - self._clock())

    def backoff(self, name: str) -> int:
        """How many errors in a row the source ``name`` had (0: its last look succeeded)."""
        return self._backoff.get(name, 0)

    def _look(self, source: Source) -> None:
        try:
            self._look_at(source)
        except SourceError as exc:
            steps = self._backoff[source.name] = self._backoff.get(source.name, 0) + 1
            base = self._interval(source) or LOCAL_FALLBACK_POLL
            delay = base * min(2**steps, MAX_BACKOFF)
            logger.warning("connection %s: %s (next look in %g s)", source.name, exc, delay)
            self._due[source.name] = self._clock() + delay
            return
        except Exception:
            logger.exception("connection %s: unexpected error", source.name)
            self._due[source.name] = self._clock() + (self._interval(source) or LOCAL_FALLBACK_POLL) * MAX_BACKOFF
            return
        failures = self._backoff.pop(source.name, 0)
        if failures:
            logger.warning("connection %s: back after %d failed look%s", source.name, failures,
                           "s" * (failures != 1))  # fmt: skip
        interval = self._interval(source)
        if interval is None:
            self._due.pop(source.name, None)  # inotify wakes it
        else:
            self._due[source.name] = self._clock() + interval
