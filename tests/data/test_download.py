"""Downloads against a real local HTTP server; archives are built in each test."""

from __future__ import annotations

import hashlib
import logging
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inttower.config import parse_params
from inttower.data.fingerprint import source_fingerprint

from inttower.data.download import (
    DATASETS,
    GROUPLENS_URL,
    fetch_dataset,
    manifest_path,
    parse_md5,
)
from inttower.data.sources import read_dataset
from inttower.errors import DataSourceError, DownloadError, UnsafeArchiveError
from inttower.io import read_json

RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964981247\n"
MOVIES = b'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,"Heat, The (1995)",Action\n'
FAST = {"retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, "progress": False}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    truncate: bool = False  # announce the full length, send half, hang up
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    url: str
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def serve(self, path: str, *replies: Reply) -> None:
        """Answer `path` with `replies` in turn; the last one repeats."""
        self.routes[path] = list(replies)

    def total_hits(self) -> int:
        return sum(self.hits.values())


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            count = state.hits.get(self.path, 0)
            state.hits[self.path] = count + 1
            replies = state.routes.get(self.path, [Reply(404, b"not found")])
            reply = replies[min(count, len(replies) - 1)]
            self.send_response(reply.status)
            length = len(reply.body) * 2 if reply.truncate else len(reply.body)
            self.send_header("Content-Length", str(length))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body[: len(reply.body) // 2] if reply.truncate else reply.body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def make_zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(zipfile.ZipInfo(name), data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, target)
    return path.read_bytes()


def csv_dataset(folder: str) -> dict[str, bytes]:
    return {f"{folder}/ratings.csv": RATINGS, f"{folder}/movies.csv": MOVIES}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_registry_covers_every_grouplens_dataset() -> None:
    assert set(DATASETS) == {
        "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small",
    }  # fmt: skip
    assert DATASETS["ml-10m"].folder == "ml-10M100K"
    assert DATASETS["ml-100k"].url() == f"{GROUPLENS_URL}/ml-100k.zip"
    assert GROUPLENS_URL.startswith("https://")
    # Archives GroupLens rebuilds are checked against the .md5 it publishes at fetch time.
    assert DATASETS["ml-latest-small"].md5 is None


@pytest.mark.parametrize(
    "text",
    [
        "MD5 (ml-1m.zip) = C4D9EECFCA2AB87C1945AFE126590906\n",
        "c4d9eecfca2ab87c1945afe126590906  ml-1m.zip",
    ],
)
def test_parse_md5_reads_bsd_and_gnu_styles(text: str) -> None:
    assert parse_md5(text, "ml-1m.zip.md5") == "c4d9eecfca2ab87c1945afe126590906"


def test_good_archive_is_verified_extracted_and_then_reused(tmp_path: Path, server: Server) -> None:
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-latest-small"))
    server.serve("/datasets/ml-latest-small.zip", Reply(body=archive))
    server.serve(
        "/datasets/ml-latest-small.zip.md5", Reply(body=f"MD5 (x) = {md5(archive)}".encode())
    )
    downloads = tmp_path / "downloads"

    folder = fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)

    assert folder == downloads / "ml-latest-small"
    assert (folder / "ratings.csv").read_bytes() == RATINGS
    # no temp files; the manifest sits beside the folder, not among the files the parser reads
    assert leftovers(downloads) == [
        "ml-latest-small",
        "ml-latest-small.extracted.json",
        "ml-latest-small.zip",
    ]
    assert read_dataset(folder, "ml-latest-small").interactions.height == 2

    hits = server.total_hits()
    assert fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST) == folder
    assert server.total_hits() == hits  # already extracted: no request at all


def test_pinned_checksum_mismatch_names_url_and_both_sums(tmp_path: Path, server: Server) -> None:
    archive = make_zip(tmp_path / "src.zip", {"ml-100k/u.data": b"1\t1\t5\t881250949\n"})
    server.serve("/datasets/ml-100k.zip", Reply(body=archive))
    downloads = tmp_path / "downloads"

    with pytest.raises(DownloadError) as raised:
        fetch_dataset("ml-100k", downloads, base_url=server.url, **FAST)

    message = str(raised.value)
    assert f"{server.url}/ml-100k.zip" in message
    assert DATASETS["ml-100k"].md5 in message and md5(archive) in message
    assert leftovers(downloads) == []


def test_published_checksum_mismatch_leaves_nothing(tmp_path: Path, server: Server) -> None:
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-32m"))
    server.serve("/datasets/ml-32m.zip", Reply(body=archive))
    server.serve("/datasets/ml-32m.zip.md5", Reply(body=b"0" * 32 + b"  ml-32m.zip\n"))
    downloads = tmp_path / "downloads"

    with pytest.raises(DownloadError, match=f"expected {'0' * 32}, got {md5(archive)}"):
        fetch_dataset("ml-32m", downloads, base_url=server.url, **FAST)
    assert leftovers(downloads) == []


def test_truncated_body_fails_after_retries_and_leaves_nothing(
    tmp_path: Path, server: Server
) -> None:
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-32m"))
    server.serve("/datasets/ml-32m.zip", Reply(body=archive, truncate=True))
    server.serve("/datasets/ml-32m.zip.md5", Reply(body=md5(archive).encode()))
    downloads = tmp_path / "downloads"

    with pytest.raises(DownloadError) as raised:
        fetch_dataset("ml-32m", downloads, base_url=server.url, **FAST)

    message = str(raised.value)
    assert f"{server.url}/ml-32m.zip" in message
    assert "truncated" in message or "connection lost" in message
    assert str(2 * len(archive)) in message  # the announced size
    assert server.hits["/datasets/ml-32m.zip"] == FAST["retries"] + 1
    assert leftovers(downloads) == []


def test_server_errors_are_retried_then_succeed(tmp_path: Path, server: Server) -> None:
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-latest-small"))
    server.serve("/datasets/ml-latest-small.zip", Reply(503), Reply(503), Reply(body=archive))
    server.serve("/datasets/ml-latest-small.zip.md5", Reply(503), Reply(body=md5(archive).encode()))

    folder = fetch_dataset("ml-latest-small", tmp_path / "downloads", base_url=server.url, **FAST)

    assert (folder / "movies.csv").read_bytes() == MOVIES
    assert server.hits["/datasets/ml-latest-small.zip"] == 3
    assert server.hits["/datasets/ml-latest-small.zip.md5"] == 2


def test_client_errors_are_not_retried(tmp_path: Path, server: Server) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_dataset("ml-100k", tmp_path / "downloads", base_url=server.url, **FAST)
    assert server.hits["/datasets/ml-100k.zip"] == 1


@pytest.mark.parametrize(
    ("entries", "links", "entry"),
    [
        ({"ml-32m/../../escaped.txt": b"x"}, {}, "ml-32m/../../escaped.txt"),
        ({"/tmp/absolute.txt": b"x"}, {}, "/tmp/absolute.txt"),
        ({}, {"ml-32m/link": "/etc/passwd"}, "ml-32m/link"),
    ],
    ids=["parent", "absolute", "symlink"],
)
def test_unsafe_archives_are_refused_whole(
    tmp_path: Path, server: Server, entries: dict[str, bytes], links: dict[str, str], entry: str
) -> None:
    archive = make_zip(tmp_path / "src.zip", {**csv_dataset("ml-32m"), **entries}, links)
    server.serve("/datasets/ml-32m.zip", Reply(body=archive))
    server.serve("/datasets/ml-32m.zip.md5", Reply(body=md5(archive).encode()))
    downloads = tmp_path / "deep" / "downloads"

    with pytest.raises(UnsafeArchiveError, match="nothing was extracted") as raised:
        fetch_dataset("ml-32m", downloads, base_url=server.url, **FAST)

    assert repr(entry) in str(raised.value)
    assert leftovers(downloads) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_mirror_folder_is_used_without_network(tmp_path: Path, server: Server) -> None:
    mirror = tmp_path / "mirror"
    for name, data in csv_dataset("ml-25m").items():
        (mirror / name).parent.mkdir(parents=True, exist_ok=True)
        (mirror / name).write_bytes(data)
    downloads = tmp_path / "downloads"

    folder = fetch_dataset("ml-25m", downloads, mirror=mirror, base_url=server.url, **FAST)

    assert folder == mirror / "ml-25m"
    assert server.total_hits() == 0
    assert leftovers(downloads) == []


def test_mirror_folder_may_keep_the_archive_folder_name(tmp_path: Path) -> None:
    nested = tmp_path / "mirror" / "ml-10m" / "ml-10M100K"
    nested.mkdir(parents=True)
    (nested / "ratings.dat").write_bytes(b"1::1::4.5::1000000000\n")
    (nested / "movies.dat").write_bytes(b"1::Toy Story (1995)::Comedy\n")

    assert fetch_dataset("ml-10m", tmp_path / "downloads", mirror=tmp_path / "mirror") == nested


def test_mirror_zip_is_verified_and_extracted_without_network(
    tmp_path: Path, server: Server
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = make_zip(mirror / "ml-latest-small.zip", csv_dataset("ml-latest-small"))
    (mirror / "ml-latest-small.zip.md5").write_text(f"MD5 (ml-latest-small.zip) = {md5(archive)}\n")
    downloads = tmp_path / "downloads"

    folder = fetch_dataset("ml-latest-small", downloads, mirror=mirror, base_url=server.url, **FAST)

    assert folder == downloads / "ml-latest-small"
    assert (folder / "ratings.csv").read_bytes() == RATINGS
    assert server.total_hits() == 0


def test_mirror_zip_with_wrong_checksum_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_zip(mirror / "ml-100k.zip", {"ml-100k/u.data": b"1\t1\t5\t881250949\n"})
    downloads = tmp_path / "downloads"

    with pytest.raises(DownloadError, match=DATASETS["ml-100k"].md5):
        fetch_dataset("ml-100k", downloads, mirror=mirror)
    assert leftovers(downloads) == []


def test_mirror_without_the_dataset_fails_instead_of_downloading(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    with pytest.raises(
        DataSourceError, match=r"MOVIELENS_MIRROR holds neither ml-1m/ nor ml-1m\.zip"
    ):
        fetch_dataset("ml-1m", tmp_path / "downloads", mirror=tmp_path / "mirror")


def test_incomplete_mirror_folder_names_missing_files(tmp_path: Path) -> None:
    (tmp_path / "mirror" / "ml-1m").mkdir(parents=True)
    (tmp_path / "mirror" / "ml-1m" / "ratings.dat").write_bytes(b"1::1::5::978300760\n")
    with pytest.raises(DataSourceError, match=r"users\.dat"):
        fetch_dataset("ml-1m", tmp_path / "downloads", mirror=tmp_path / "mirror")


def zip_of_ml100k(ml100k_dir: Path, path: Path) -> bytes:
    """A GroupLens-shaped ml-100k.zip (`ml-100k/u.data`, ...) built from the real files."""
    return make_zip(
        path, {f"ml-100k/{file.name}": file.read_bytes() for file in sorted(ml100k_dir.iterdir())}
    )


def pin_md5(monkeypatch: pytest.MonkeyPatch, name: str, archive: bytes) -> None:
    """Our zip is not GroupLens's byte for byte: pin its md5 in place of the published one."""
    monkeypatch.setitem(DATASETS, name, replace(DATASETS[name], md5=md5(archive)))


def pinned_zip_mirror(
    tmp_path: Path, ml100k_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, bytes]:
    """A mirror holding only a real ml-100k.zip whose md5 is the pinned one."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = zip_of_ml100k(ml100k_dir, mirror / "ml-100k.zip")
    pin_md5(monkeypatch, "ml-100k", archive)
    return mirror, archive


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_extraction_manifest_records_archive_and_parsed_files(
    tmp_path: Path, ml100k_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror, archive = pinned_zip_mirror(tmp_path, ml100k_dir, monkeypatch)
    downloads = tmp_path / "downloads"

    fetch_dataset("ml-100k", downloads, mirror=mirror)

    manifest = read_json(manifest_path(downloads, DATASETS["ml-100k"]))
    assert manifest["archive_md5"] == md5(archive)
    assert set(manifest["files"]) == {"u.data", "u.item", "u.user"}
    u_data = (ml100k_dir / "u.data").read_bytes()
    assert manifest["files"]["u.data"] == {"md5": md5(u_data), "size": len(u_data)}


@pytest.mark.parametrize("tamper", ["flip_byte", "truncate"])
def test_edited_extraction_is_restored_from_the_verified_archive(
    tmp_path: Path,
    ml100k_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tamper: str,
) -> None:
    mirror, archive = pinned_zip_mirror(tmp_path, ml100k_dir, monkeypatch)
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-100k", downloads, mirror=mirror)
    if tamper == "flip_byte":
        flip_one_byte(folder / "u.data")
    else:
        with open(folder / "u.data", "r+b") as handle:
            handle.truncate(1000)

    with caplog.at_level(logging.WARNING, logger="inttower.data.download"):
        again = fetch_dataset("ml-100k", downloads, mirror=mirror)

    assert again == folder
    assert (again / "u.data").read_bytes() == (ml100k_dir / "u.data").read_bytes()
    assert "u.data changed since extraction" in caplog.text
    assert read_dataset(again, "ml-100k").interactions.height == 100_000


def _serve_latest_small(tmp_path: Path, server: Server) -> None:
    """A small ml-latest-small archive and its published md5 on the local server."""
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-latest-small"))
    server.serve("/datasets/ml-latest-small.zip", Reply(body=archive))
    server.serve("/datasets/ml-latest-small.zip.md5", Reply(body=md5(archive).encode()))


def test_untouched_extraction_is_reused_silently(
    tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    _serve_latest_small(tmp_path, server)
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)
    stamp = (folder / "ratings.csv").stat().st_mtime_ns

    with caplog.at_level(logging.WARNING, logger="inttower.data.download"):
        assert fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST) == folder

    assert caplog.text == ""
    assert (folder / "ratings.csv").stat().st_mtime_ns == stamp  # not extracted again


def test_edited_download_is_restored_offline_from_its_archive(
    tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    _serve_latest_small(tmp_path, server)
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)
    flip_one_byte(folder / "ratings.csv")
    hits = server.total_hits()

    with caplog.at_level(logging.WARNING, logger="inttower.data.download"):
        fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)

    assert (folder / "ratings.csv").read_bytes() == RATINGS
    assert "ratings.csv changed since extraction" in caplog.text
    # The archive still matches the md5 it was verified with: no need to ask GroupLens again.
    assert server.total_hits() == hits


def test_edited_download_without_its_archive_is_downloaded_again(
    tmp_path: Path, server: Server
) -> None:
    _serve_latest_small(tmp_path, server)
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)
    (downloads / "ml-latest-small.zip").unlink()
    flip_one_byte(folder / "movies.csv")

    fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)

    assert (folder / "movies.csv").read_bytes() == MOVIES
    assert server.hits["/datasets/ml-latest-small.zip"] == 2


def test_edited_download_that_cannot_be_restored_says_what_changed(
    tmp_path: Path, server: Server
) -> None:
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-latest-small"))
    server.serve("/datasets/ml-latest-small.zip", Reply(body=archive), Reply(404))
    server.serve("/datasets/ml-latest-small.zip.md5", Reply(body=md5(archive).encode()))
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)
    (downloads / "ml-latest-small.zip").unlink()
    (folder / "ratings.csv").write_bytes(RATINGS[:-1])

    with pytest.raises(DownloadError, match=r"ratings\.csv changed since extraction.*HTTP 404"):
        fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)


def test_extraction_without_manifest_is_not_trusted(
    tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    _serve_latest_small(tmp_path, server)
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)
    manifest = manifest_path(downloads, DATASETS["ml-latest-small"])
    manifest.unlink()  # as left by an older version, or a run killed before writing it
    (folder / "ratings.csv").write_bytes(RATINGS + b"9,9,1.0,964982703\n")

    with caplog.at_level(logging.WARNING, logger="inttower.data.download"):
        fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)

    assert "no extraction manifest" in caplog.text
    assert (folder / "ratings.csv").read_bytes() == RATINGS
    assert manifest.is_file()


def test_replaced_mirror_zip_is_extracted_again(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    first = make_zip(mirror / "ml-latest-small.zip", csv_dataset("ml-latest-small"))
    (mirror / "ml-latest-small.zip.md5").write_text(md5(first))
    downloads = tmp_path / "downloads"
    folder = fetch_dataset("ml-latest-small", downloads, mirror=mirror)
    newer_ratings = RATINGS + b"2,1,5.0,964982800\n"
    second = make_zip(
        mirror / "ml-latest-small.zip",
        {"ml-latest-small/ratings.csv": newer_ratings, "ml-latest-small/movies.csv": MOVIES},
    )
    (mirror / "ml-latest-small.zip.md5").write_text(md5(second))

    assert fetch_dataset("ml-latest-small", downloads, mirror=mirror) == folder
    assert (folder / "ratings.csv").read_bytes() == newer_ratings


def test_the_servers_etag_and_last_modified_enter_the_source_fingerprint(
    tmp_path: Path, server: Server
) -> None:
    """ml-latest-small is re-published over time: the fingerprint of a GroupLens source records
    what the server said of the archive it came from, so a re-publication is a new version."""
    archive = make_zip(tmp_path / "src.zip", csv_dataset("ml-latest-small"))
    served = {"ETag": '"v1-abc"', "Last-Modified": "Wed, 01 Oct 2025 10:00:00 GMT"}
    server.serve("/datasets/ml-latest-small.zip", Reply(body=archive, headers=served))
    server.serve("/datasets/ml-latest-small.zip.md5", Reply(body=md5(archive).encode()))
    downloads = tmp_path / "downloads"
    fetch_dataset("ml-latest-small", downloads, base_url=server.url, **FAST)
    params = parse_params({"data": {"dataset": "ml-latest-small"}})
    fingerprint = source_fingerprint(params, None, downloads)  # offline: the extraction's
    assert fingerprint["md5"] == md5(archive)
    assert fingerprint["server"] == {
        "etag": '"v1-abc"',
        "last_modified": "Wed, 01 Oct 2025 10:00:00 GMT",
    }
    assert server.total_hits() == 2  # the archive and its md5, once; the fingerprint is offline
