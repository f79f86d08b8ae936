"""Source fingerprints on copies of the real ml-100k: equal exactly when ingest's input is."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inttower.config import Params
from inttower.data import download
from inttower.data.download import DATASETS, fetch_dataset
from inttower.data.fingerprint import CACHE_NAME, source_fingerprint
from inttower.io import file_md5, read_json, write_json

ML100K = Params.model_validate({"data": {"dataset": "ml-100k"}})
SECOND_NS = 1_000_000_000


def dumped(fingerprint: dict[str, Any]) -> str:
    return json.dumps(fingerprint, sort_keys=True)


def mirror_of(ml100k_dir: Path, mirror: Path) -> Path:
    """A mirror holding a copy of the real ml-100k (copy2 keeps the originals' mtimes)."""
    shutil.copytree(ml100k_dir, mirror / "ml-100k", copy_function=shutil.copy2)
    return mirror


def cache_entry(downloads: Path, path: Path) -> dict[str, Any] | None:
    return read_json(downloads / CACHE_NAME)["files"].get(str(path.resolve()))


def set_mtime(path: Path, mtime_ns: int) -> None:
    """Touch to a chosen time: same bytes, new mtime, old enough to be cached."""
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_same_files_in_two_mirrors_give_the_same_fingerprint(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    first = mirror_of(ml100k_dir, tmp_path / "first")
    second = mirror_of(ml100k_dir, tmp_path / "elsewhere" / "second")

    one = source_fingerprint(ML100K, first, tmp_path / "downloads-a")
    other = source_fingerprint(ML100K, second, tmp_path / "downloads-b")

    assert dumped(one) == dumped(other)
    assert str(tmp_path) not in dumped(one)  # no absolute paths
    assert one["format"] == 1 and one["dataset"] == "ml-100k"
    assert set(one["files"]) == {"u.data", "u.item", "u.user"}
    u_data = ml100k_dir / "u.data"
    assert one["files"]["u.data"] == {"md5": file_md5(u_data), "size": u_data.stat().st_size}


def test_appended_ratings_change_the_fingerprint(tmp_path: Path, ml100k_dir: Path) -> None:
    first = mirror_of(ml100k_dir, tmp_path / "first")
    second = mirror_of(ml100k_dir, tmp_path / "second")
    downloads = tmp_path / "downloads"
    before = source_fingerprint(ML100K, second, downloads)
    ratings = second / "ml-100k" / "u.data"
    head = b"".join(ratings.read_bytes().splitlines(keepends=True)[:50])
    with open(ratings, "ab") as handle:
        handle.write(head)

    after = source_fingerprint(ML100K, second, downloads)

    assert dumped(after) != dumped(source_fingerprint(ML100K, first, downloads))
    assert after["files"]["u.data"] != before["files"]["u.data"]
    assert after["files"]["u.item"] == before["files"]["u.item"]
    # Written just now, so its mtime may not yet tell a further edit apart: not cached.
    assert cache_entry(downloads, ratings) is None


def test_files_the_parser_does_not_read_do_not_count(tmp_path: Path, ml100k_dir: Path) -> None:
    mirror = mirror_of(ml100k_dir, tmp_path / "mirror")
    before = source_fingerprint(ML100K, mirror, tmp_path / "downloads")
    with open(mirror / "ml-100k" / "README", "a") as handle:
        handle.write("local notes\n")

    assert source_fingerprint(ML100K, mirror, tmp_path / "downloads") == before


def test_touched_file_keeps_its_fingerprint_and_refreshes_the_cache(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    mirror = mirror_of(ml100k_dir, tmp_path / "mirror")
    downloads = tmp_path / "downloads"
    ratings = mirror / "ml-100k" / "u.data"
    before = source_fingerprint(ML100K, mirror, downloads)
    old_entry = cache_entry(downloads, ratings)
    touched = time.time_ns() - 60 * SECOND_NS
    set_mtime(ratings, touched)

    after = source_fingerprint(ML100K, mirror, downloads)

    assert dumped(after) == dumped(before)
    assert old_entry is not None and old_entry["mtime_ns"] != touched
    assert cache_entry(downloads, ratings) == {**old_entry, "mtime_ns": touched}


def test_stat_cache_is_trusted_only_while_size_mtime_and_inode_match(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    mirror = mirror_of(ml100k_dir, tmp_path / "mirror")
    downloads = tmp_path / "downloads"
    ratings = mirror / "ml-100k" / "u.data"
    source_fingerprint(ML100K, mirror, downloads)
    cache = read_json(downloads / CACHE_NAME)
    cache["files"][str(ratings.resolve())]["md5"] = "0" * 32  # what a stale cache would say
    write_json(cache, downloads / CACHE_NAME)

    assert source_fingerprint(ML100K, mirror, downloads)["files"]["u.data"]["md5"] == "0" * 32

    set_mtime(ratings, ratings.stat().st_mtime_ns + SECOND_NS)
    fresh = source_fingerprint(ML100K, mirror, downloads)
    assert fresh["files"]["u.data"]["md5"] == file_md5(ratings)


def test_unreadable_cache_is_ignored(tmp_path: Path, ml100k_dir: Path) -> None:
    mirror = mirror_of(ml100k_dir, tmp_path / "mirror")
    downloads = tmp_path / "downloads"
    expected = source_fingerprint(ML100K, mirror, tmp_path / "clean")
    downloads.mkdir()
    (downloads / CACHE_NAME).write_text("{not json")

    assert source_fingerprint(ML100K, mirror, downloads) == expected
    assert read_json(downloads / CACHE_NAME)["format"] == 1  # rewritten


def ml100k_zip(ml100k_dir: Path, mirror: Path) -> Path:
    mirror.mkdir(parents=True)
    archive = mirror / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in sorted(ml100k_dir.iterdir()):
            bundle.writestr(zipfile.ZipInfo(f"ml-100k/{file.name}"), file.read_bytes())
    return archive


def test_zip_mirror_is_fingerprinted_by_its_archive(tmp_path: Path, ml100k_dir: Path) -> None:
    archive = ml100k_zip(ml100k_dir, tmp_path / "first")
    copy = tmp_path / "second" / "ml-100k.zip"
    copy.parent.mkdir()
    shutil.copy2(archive, copy)
    set_mtime(archive, time.time_ns() - 60 * SECOND_NS)  # settled, so it may be cached
    downloads = tmp_path / "downloads"

    one = source_fingerprint(ML100K, tmp_path / "first", downloads)

    assert one["archive"] == {
        "name": "ml-100k.zip",
        "size": archive.stat().st_size,
        "md5": file_md5(archive),
    }
    assert dumped(source_fingerprint(ML100K, tmp_path / "second", downloads)) == dumped(one)
    assert cache_entry(downloads, archive)["md5"] == file_md5(archive)


def test_nested_ml10m_mirror_reads_the_same_files_as_a_flat_one(tmp_path: Path) -> None:
    ml10m = Params.model_validate({"data": {"dataset": "ml-10m"}})
    flat = tmp_path / "flat" / "ml-10m"
    nested = tmp_path / "nested" / "ml-10m" / "ml-10M100K"
    for folder in (flat, nested):
        folder.mkdir(parents=True)
        (folder / "ratings.dat").write_bytes(b"1::1::4.5::1000000000\n")
        (folder / "movies.dat").write_bytes(b"1::Toy Story (1995)::Comedy\n")

    one = source_fingerprint(ml10m, tmp_path / "flat", tmp_path / "downloads")
    other = source_fingerprint(ml10m, tmp_path / "nested", tmp_path / "downloads")

    assert dumped(one) == dumped(other)
    assert set(one["files"]) == {"ratings.dat", "movies.dat"}


def test_synthetic_fingerprint_follows_the_generator_params_and_seed(tmp_path: Path) -> None:
    def synthetic(seed: int = 42, n_users: int = 100) -> dict[str, Any]:
        params = Params.model_validate(
            {"seed": seed, "data": {"dataset": "synthetic", "synthetic": {"n_users": n_users}}}
        )
        return source_fingerprint(params, None, tmp_path / "downloads")

    assert dumped(synthetic()) == dumped(synthetic())
    assert synthetic()["synthetic"]["n_users"] == 100
    assert dumped(synthetic(n_users=200)) != dumped(synthetic())
    assert dumped(synthetic(seed=7)) != dumped(synthetic())
    assert not (tmp_path / "downloads").exists()  # nothing read, nothing written


def test_pinned_grouplens_dataset_needs_no_network(tmp_path: Path) -> None:
    fingerprint = source_fingerprint(ML100K, None, tmp_path / "downloads")

    assert fingerprint == {
        "format": 1,
        "dataset": "ml-100k",
        "source": "grouplens",
        "url": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "md5": DATASETS["ml-100k"].md5,
    }


@pytest.fixture
def grouplens_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local stand-in for files.grouplens.org: files put in the yielded folder are served."""
    site = tmp_path / "site"
    site.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    monkeypatch.setattr(download, "GROUPLENS_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_unpinned_grouplens_dataset_asks_for_the_published_md5(
    tmp_path: Path, grouplens_site: Path
) -> None:
    latest = Params.model_validate({"data": {"dataset": "ml-latest-small"}})
    (grouplens_site / "ml-latest-small.zip.md5").write_text(f"{'a' * 32}  ml-latest-small.zip\n")

    fingerprint = source_fingerprint(latest, None, tmp_path / "downloads")

    assert fingerprint["md5"] == "a" * 32
    assert fingerprint["url"].endswith("/ml-latest-small.zip")


def test_unpinned_grouplens_dataset_already_extracted_is_fingerprinted_offline(
    tmp_path: Path, grouplens_site: Path
) -> None:
    latest = Params.model_validate({"data": {"dataset": "ml-latest-small"}})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "ml-latest-small.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,9\n")
        bundle.writestr(
            "ml-latest-small/movies.csv", "movieId,title,genres\n1,Heat (1995),Action\n"
        )
    (mirror / "ml-latest-small.zip.md5").write_text(file_md5(archive))
    downloads = tmp_path / "downloads"
    fetch_dataset("ml-latest-small", downloads, mirror=mirror)  # extracts into downloads
    # GroupLens has since published another archive; ingest would still reuse the extraction.
    (grouplens_site / "ml-latest-small.zip.md5").write_text("b" * 32)

    assert source_fingerprint(latest, None, downloads)["md5"] == file_md5(archive)

    (downloads / "ml-latest-small" / "ratings.csv").write_text("edited\n")
    # Now ingest would fetch the published archive, and so the fingerprint names it.
    assert source_fingerprint(latest, None, downloads)["md5"] == "b" * 32
