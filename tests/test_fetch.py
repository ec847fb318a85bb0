"""Fetching survives bad networks: a junk mirror is skipped, a trickling server is abandoned at
the deadline, and a fetch killed mid-download leaves nothing behind after the next one.

Every server is a local ``http.server`` on 127.0.0.1, in a thread of the test process.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from densitybench.datasets import fetch as fetching
from densitybench.datasets.core import SPLITS, array_sha256
from densitybench.datasets.fetch import FetchError, download, remove_stale
from densitybench.datasets.files import fetch_files, load_files
from densitybench.datasets.verify import DatasetSpec, FileSpec

#: seconds between two bytes of the trickling server
TRICKLE = 0.5


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


RNG = np.random.default_rng(0)
ARRAYS = {s: RNG.integers(0, 2, (n, 4), dtype=np.uint8) for s, n in zip(SPLITS, (6, 2, 2))}
GOOD = _npz(ARRAYS)
#: a well-formed npz with other content: it downloads fine and fails verification
JUNK = _npz({s: 1 - a for s, a in ARRAYS.items()})


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def do_GET(self):
        kind = self.path.strip("/").split("/")[0]
        if kind not in ("good", "junk", "trickle"):
            self.send_error(404, "no such file")
            return
        body = {"good": GOOD, "junk": JUNK, "trickle": GOOD}[kind]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if kind != "trickle":
                self.wfile.write(body)
                return
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(TRICKLE)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def tiny_spec(*urls: str) -> DatasetSpec:
    """A small file-based dataset whose one file is downloaded from ``urls``."""
    check = ("sha256-arrays", {s: array_sha256(a) for s, a in ARRAYS.items()})
    return DatasetSpec(
        name="tiny",
        folder="tiny",
        kind="binary",
        n_levels=2,
        image_shape=(1, 2, 2),
        layouts=((FileSpec("tiny.npz", tuple(urls), check, "npz"),),),
        reader=lambda spec, arrays: tuple(arrays["tiny.npz"][s] for s in SPLITS),
        description="four binary pixels",
        citation="",
    )


def leftovers(root):
    return sorted(str(p) for p in root.rglob(fetching.TMP_PREFIX + "*"))


def test_a_junk_mirror_is_skipped_and_its_reason_logged(server, tmp_path, caplog):
    junk, good = f"{server}/junk/tiny.npz", f"{server}/good/tiny.npz"
    spec = tiny_spec(junk, good)
    with caplog.at_level(logging.WARNING, logger=fetching.__name__):
        folder = fetch_files(spec, tmp_path, progress=False)
    assert (folder / "tiny.npz").read_bytes() == GOOD
    ds = load_files(spec, tmp_path)
    assert all(np.array_equal(getattr(ds, s).reshape(len(ARRAYS[s]), -1).numpy(), ARRAYS[s]) for s in SPLITS)
    # the junk mirror was tried, refused for its content, and said so, naming the URL, not a temporary file
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and junk in logged[0]
    assert "failed verification" in logged[0] and "content checksum mismatch" in logged[0]
    assert fetching.TMP_PREFIX not in logged[0]
    assert leftovers(tmp_path) == []


def test_when_every_mirror_fails_each_url_is_listed_with_its_reason(server, tmp_path):
    missing, junk = f"{server}/nothing/tiny.npz", f"{server}/junk/tiny.npz"
    refused = "http://127.0.0.1:9/tiny.npz"  # the discard port: nothing listens
    with pytest.raises(FetchError) as e:
        fetch_files(tiny_spec(missing, junk, refused), tmp_path, progress=False)
    msg = str(e.value)
    assert msg.startswith("tiny: could not download tiny.npz:")
    assert [url for url, _ in e.value.attempts] == [missing, junk, refused]
    reasons = dict(e.value.attempts)
    assert reasons[missing] == "HTTP 404 no such file"
    assert reasons[junk].startswith("downloaded, but the content failed verification")
    assert "cannot connect" in reasons[refused]
    for url in (missing, junk, refused):
        assert f"\n  {url}: " in msg
    assert fetching.TMP_PREFIX not in msg and str(tmp_path) not in msg, "no vanished temporary path"
    assert not (tmp_path / "tiny" / "tiny.npz").exists() and leftovers(tmp_path) == []


def test_a_trickling_server_is_abandoned_at_the_deadline(server, tmp_path):
    spec = tiny_spec(f"{server}/trickle/tiny.npz")
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"deadline of 2 s") as e:
        fetch_files(spec, tmp_path, progress=False, deadline=2, timeout=5)
    took = time.monotonic() - start
    assert 2 <= took < 2 + 3 * TRICKLE, f"abandoned after {took:.1f} s"
    assert "bytes received" in str(e.value)
    assert not (tmp_path / "tiny" / "tiny.npz").exists() and leftovers(tmp_path) == []


def test_a_second_mirror_is_tried_after_a_trickling_one(server, tmp_path):
    target = tmp_path / "tiny.npz"
    download([f"{server}/trickle/tiny.npz", f"{server}/good/tiny.npz"], target, deadline=1, timeout=5)
    assert target.read_bytes() == GOOD and leftovers(tmp_path) == []


_KILLED_FETCH = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from densitybench.datasets.fetch import download

    download([sys.argv[1]], Path(sys.argv[2]), deadline=600, timeout=60)
    """
)


def test_a_killed_fetch_leaves_nothing_after_the_next_fetch(server, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_FETCH, f"{server}/trickle/tiny.npz", str(folder / "tiny.npz")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # wait until the download has opened its temporary file
        deadline = time.monotonic() + 60
        while not list(folder.glob(fetching.TMP_PREFIX + "*/tiny.npz")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the download did not start"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(leftovers(tmp_path)) == 1, "the killed fetch left its temporary folder"
    # the next fetch of that data directory, of any file, removes it
    fetch_files(tiny_spec(f"{server}/good/tiny.npz"), tmp_path, progress=False)
    assert leftovers(tmp_path) == []
    assert (folder / "tiny.npz").read_bytes() == GOOD


def test_a_download_in_progress_is_left_alone(tmp_path):
    live = tmp_path / "a" / f"{fetching.TMP_PREFIX}{fetching._host()}-{os.getpid()}-abc123"
    live.mkdir(parents=True)
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dead = tmp_path / "a" / f"{fetching.TMP_PREFIX}{fetching._host()}-{dead_pid}-xyz789"
    other_host = tmp_path / f"{fetching.TMP_PREFIX}elsewhere-{dead_pid}-xyz789"
    dead.mkdir()
    other_host.mkdir()
    assert remove_stale(tmp_path) == [dead]
    assert live.is_dir() and other_host.is_dir() and not dead.exists()
