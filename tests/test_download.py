"""download() and fetch_corpus() against a local HTTP server (127.0.0.1, in a thread)."""
from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest
from corpus_fixtures import make_ravdess

from emodarts_core.data.download import DownloadError, download, extract_zip, fetch_corpus


class Server:
    """Serves ``files`` (path -> bytes); honours ``Range``; can cut the body of the next
    ``cut_next`` responses after ``cut_at`` bytes; logs (path, Range header) per request."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True):
        self.files, self.honour_range = files, honour_range
        self.log: list[tuple[str, str | None]] = []
        self.cut_next, self.cut_at = 0, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):            # keep test output quiet
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                outer.log.append((path, rng))
                if path not in outer.files:
                    self.send_error(404)
                    return
                data = outer.files[path]
                start = 0
                if rng and outer.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_next > 0:
                    outer.cut_next -= 1
                    self.wfile.write(body[: outer.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload() -> bytes:
    return bytes(range(256)) * 400                        # 102 400 bytes


@pytest.fixture
def server(payload):
    s = Server({"/data.bin": payload})
    yield s
    s.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_plain_download_and_idempotent(tmp_path, server, payload):
    out = download(f"{server.url}/data.bin", tmp_path, sha256=sha(payload), progress=False)
    assert out == tmp_path / "data.bin" and out.read_bytes() == payload
    assert not (tmp_path / "data.bin.part").exists()
    download(f"{server.url}/data.bin", out, sha256=sha(payload), progress=False)
    assert len(server.log) == 1                            # already there and verified: no request


def test_interrupted_download_resumes_with_range(tmp_path, server, payload):
    dest = tmp_path / "data.bin"
    server.cut_next, server.cut_at = 1, 30_000
    with pytest.raises(DownloadError, match="call again to resume"):
        download(f"{server.url}/data.bin", dest, retries=0, progress=False)
    part = tmp_path / "data.bin.part"
    assert part.is_file() and 0 < part.stat().st_size <= 30_000 and not dest.exists()
    kept = part.stat().st_size
    out = download(f"{server.url}/data.bin", dest, sha256=sha(payload), progress=False)
    assert out.read_bytes() == payload
    assert server.log[-1] == ("/data.bin", f"bytes={kept}-")


def test_retry_within_one_call_resumes(tmp_path, server, payload):
    server.cut_next, server.cut_at = 2, 20_000
    out = download(f"{server.url}/data.bin", tmp_path / "d.bin", sha256=sha(payload), retries=3,
                   progress=False)
    assert out.read_bytes() == payload
    assert len(server.log) == 3 and server.log[0][1] is None
    assert all(r is not None and r.startswith("bytes=") for _, r in server.log[1:])


def test_server_without_range_restarts(tmp_path, payload):
    s = Server({"/data.bin": payload}, honour_range=False)
    try:
        (tmp_path / "data.bin.part").write_bytes(b"garbage-prefix")
        out = download(f"{s.url}/data.bin", tmp_path / "data.bin", sha256=sha(payload), progress=False)
        assert out.read_bytes() == payload
    finally:
        s.close()


def test_checksum_mismatch_deletes_and_raises(tmp_path, server):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{server.url}/data.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_http_error_is_clear(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.zip", tmp_path / "m.zip", progress=False)


def ravdess_zip(tmp: Path) -> bytes:
    root, _ = make_ravdess(tmp / "src", actors=("01", "02"))
    archive = tmp / "Audio_Speech_Actors_01-24.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(root.rglob("*.wav")):
            zf.write(p, p.relative_to(root).as_posix())
    return archive.read_bytes()


def test_fetch_ravdess_from_local_server(tmp_path):
    data = ravdess_zip(tmp_path)
    s = Server({"/Audio_Speech_Actors_01-24.zip": data})
    try:
        root = tmp_path / "ravdess"
        url = f"{s.url}/Audio_Speech_Actors_01-24.zip"
        assert fetch_corpus("ravdess", root, url=url, progress=False) == root
        assert (root / "Actor_01" / "03-01-05-02-02-01-01.wav").is_file()
        assert not (root / ".downloads").exists()           # archive removed after unpacking
        from emodarts_core.data.corpora import load_corpus
        assert len(load_corpus("ravdess", root)) == 18
        record = (root / ".emodarts_fetch.json").read_text()
        assert sha(data) in record                          # size/sha256 recorded at first download
        fetch_corpus("ravdess", root, url=url, progress=False)
        assert len(s.log) == 1                              # idempotent: nothing fetched again
        # A later re-download must match the recorded checksum.
        for p in root.glob("Actor_*"):
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
        s.files["/Audio_Speech_Actors_01-24.zip"] = data[:-10] + b"0123456789"
        with pytest.raises(DownloadError, match="checksum mismatch"):
            fetch_corpus("ravdess", root, url=url, progress=False)
    finally:
        s.close()


def test_fetch_licensed_and_unknown(tmp_path):
    with pytest.raises(DownloadError, match="Session1"):
        fetch_corpus("iemocap", tmp_path)
    with pytest.raises(DownloadError, match="Evalution.txt"):
        fetch_corpus("msp_improv", tmp_path)
    with pytest.raises(DownloadError, match="labels_consensus.csv"):
        fetch_corpus("msp_podcast", tmp_path)
    with pytest.raises(DownloadError, match="unknown corpus"):
        fetch_corpus("timit", tmp_path)


def test_extract_zip_refuses_escaping_members(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DownloadError, match="escapes"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
