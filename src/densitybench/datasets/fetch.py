"""Downloads that survive bad networks: every mirror in turn, a deadline, no debris.

:func:`download` fetches one file:

* **Mirrors.** The URLs are tried in order. A mirror whose download fails (refused, a
  timeout, an HTTP error, a connection closed early) *or* whose content fails verification
  is recorded with its reason and the next one is tried. When none gives a verified file the
  :class:`FetchError` lists every URL with its reason.
* **Deadline.** Every socket operation has a timeout (``timeout``), and the whole download
  of a file has a deadline (``deadline``): a server that trickles bytes slowly enough never
  to trip the first is abandoned by the second, at most ``min(timeout, deadline)`` seconds late.
* **Temporary files.** A download goes to a private folder ``.fetch-<host>-<pid>-<random>``
  beside the target and is moved into place only once verified; the folder is removed
  however the download ends. A folder left by a process that was killed (its pid is no
  longer running on this host) is removed by the next :func:`remove_stale` of that
  directory, which :func:`download` and the dataset fetches call first.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Callable, Iterable

from .core import DataError

__all__ = [
    "FetchError",
    "DEFAULT_TIMEOUT",
    "DEFAULT_DEADLINE",
    "TMP_PREFIX",
    "download",
    "remove_stale",
]

log = logging.getLogger(__name__)

#: Seconds any one socket operation (connect, one read) may take.
DEFAULT_TIMEOUT = 60.0
#: Seconds the whole download of one file may take.
DEFAULT_DEADLINE = 600.0
#: Name prefix of the temporary download folders.
TMP_PREFIX = ".fetch-"

_CHUNK = 1 << 16
_STALE = re.compile(re.escape(TMP_PREFIX) + r"(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+")


class FetchError(DataError):
    """No URL of a file gave a verified download.

    Attributes:
        attempts: ``[(url, reason)]``, one per URL tried, in order.
    """

    def __init__(self, message: str, attempts: list[tuple[str, str]]):
        super().__init__(message)
        self.attempts = attempts


class _DeadlineExceeded(Exception):
    pass


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _running(pid: int) -> bool:
    """Whether process ``pid`` is running on this host (a zombie, killed but not yet reaped, is not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def remove_stale(root: str | os.PathLike, depth: int = 1) -> list[Path]:
    """Remove the temporary download folders that killed processes left in ``root`` and in its
    subfolders down to ``depth`` levels; the folders removed.

    Only folders this module names (``.fetch-<host>-<pid>-...``) made on this host by a
    process that is no longer running are removed; a download in progress is left alone.
    """
    root = Path(root)
    folders, level = [root], [root]
    for _ in range(depth):
        level = [p for d in level if d.is_dir() for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
        folders += level
    removed, host = [], _host()
    for folder in folders:
        try:
            candidates = list(folder.glob(TMP_PREFIX + "*"))
        except OSError:
            continue
        for p in candidates:
            m = _STALE.fullmatch(p.name)
            if m and p.is_dir() and m["host"] == host and not _running(int(m["pid"])):
                shutil.rmtree(p, ignore_errors=True)
                if not p.exists():
                    removed.append(p)
                    log.info("removed %s, left by a download that was killed", p)
    return removed


def _copy(url: str, out_path: Path, deadline: float, timeout: float) -> int:
    """Stream ``url`` into ``out_path``; the number of bytes. Raises on any failure."""
    end = time.monotonic() + deadline
    n = 0
    with urllib.request.urlopen(url, timeout=min(timeout, deadline)) as r, open(out_path, "wb") as out:
        length = r.headers.get("Content-Length")
        read = getattr(r, "read1", None) or r.read  # read1: what has arrived, so the deadline is checked often
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            n += len(chunk)
            if time.monotonic() > end:
                raise _DeadlineExceeded(
                    f"not finished within the deadline of {deadline:g} s ({n:,} bytes received); abandoned"
                )
    if length is not None and length.isdigit() and n < int(length):
        raise HTTPException(f"the connection closed after {n:,} of {int(length):,} bytes")
    return n


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"cannot connect ({e.reason})"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"timed out ({e})"
    if isinstance(e, _DeadlineExceeded):
        return str(e)
    return f"{type(e).__name__}: {e}"


def download(
    urls: Iterable[str],
    target: str | os.PathLike,
    verify: Callable[[Path], object] | None = None,
    *,
    name: str | None = None,
    deadline: float = DEFAULT_DEADLINE,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
) -> Path:
    """Download ``target`` from the first of ``urls`` that gives a file ``verify`` accepts.

    Args:
        urls: the mirrors, tried in order (any scheme ``urllib`` opens: http, https, file).
        target: where the file goes; it is written only once verified (atomically, by a rename).
        verify: called with the downloaded file before it is moved into place; raises
            (a :class:`~densitybench.datasets.core.DataError` or a ``ValueError``) to refuse it.
        name: what the messages call the download (default: the target's file name).
        deadline: seconds the download of the file from one URL may take in all.
        timeout: seconds any one socket operation may take.
        progress: print each attempt (each failure is logged as a warning, progress or not).

    Returns:
        ``target``.

    Raises:
        FetchError: no URL gave a verified file; the message lists each URL with its reason
            (``attempts`` holds them too).
    """
    target = Path(target)
    label = name or target.name
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale(folder, depth=0)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{_host()}-{os.getpid()}-", dir=folder))
    attempts: list[tuple[str, str]] = []
    try:
        for url in urls:
            part = tmp / target.name
            if progress:
                print(f"{label}: downloading {url}")
            try:
                _copy(url, part, deadline, timeout)
            except (OSError, HTTPException, ValueError, _DeadlineExceeded) as e:
                attempts.append((url, _reason(e)))
            else:
                try:
                    if verify is not None:
                        verify(part)
                except (DataError, ValueError) as e:
                    # the message names the temporary file, which is about to vanish: name the URL
                    why = str(e).replace(str(part), url).strip()
                    why = why[len(label) + 2 :] if why.startswith(f"{label}: ") else why
                    attempts.append((url, f"downloaded, but the content failed verification: {why}"))
                else:
                    os.replace(part, target)
                    return target
            part.unlink(missing_ok=True)
            log.warning("%s: %s failed: %s", label, url, attempts[-1][1])
        if not attempts:
            raise FetchError(f"{label}: could not download {target.name}: no URL to download it from", attempts)
        listed = "\n  ".join(f"{url}: {why}".replace("\n", "\n    ") for url, why in attempts)
        raise FetchError(f"{label}: could not download {target.name}:\n  {listed}", attempts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
