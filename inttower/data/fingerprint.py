"""The source fingerprint: a small JSON record of what ingest would read, so DVC and Dagster can
tell whether the raw input changed without parsing it.

It holds names, sizes and md5s only (no absolute paths, times or host facts), so the same files
under another mirror location give the same record. md5s of mirror files come through a stat
cache, `<downloads_dir>/.fingerprint-cache.json`, as DVC's state db does: a file is read again
only when its size, mtime or inode changed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from inttower.config import Params
from inttower.data.download import (
    DatasetSpec,
    dataset_spec,
    extracted_archive_md5,
    mirror_source,
    published_md5,
    server_record,
)
from inttower.io import file_md5, write_json

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the record's shape changes, so old and new never compare equal by chance
CACHE_NAME = ".fingerprint-cache.json"
# A file modified within the filesystem's timestamp granularity of our stat could keep its mtime;
# entries this young are not cached (git's "racy" rule), so such an edit is still seen next time.
_RACY_NS = 2_000_000_000
_STAMP = ("size", "mtime_ns", "inode")


def source_fingerprint(
    params: Params, mirror: Path | str | None, downloads_dir: Path | str
) -> dict[str, Any]:
    """What ingest would read for `params`, as a JSON-able dict that is equal (dumped with
    sort_keys) exactly when that input is. Unpinned GroupLens datasets (ml-32m, ml-latest-small)
    not yet extracted in `downloads_dir` need the network for their published md5."""
    name = params.data.dataset
    if name == "synthetic":
        # sources.load_raw calls generate(params.data.synthetic, params.seed): nothing else.
        return {
            "format": FORMAT,
            "dataset": name,
            "source": "synthetic",
            "synthetic": params.data.synthetic.model_dump(),
            "seed": params.seed,
        }
    downloads_dir = Path(downloads_dir)
    if name == "custom":
        from inttower.data.custom import custom_files
        from inttower.errors import DataSourceError

        cache = StatCache(downloads_dir / CACHE_NAME)
        files = {}
        for table, path in custom_files(params.data.custom).items():
            if not path.is_file():
                raise DataSourceError(path, f"file not found (data.custom.{table})")
            files[table] = {"name": path.name, **cache.digest(path)}
        cache.save()
        return {"format": FORMAT, "dataset": name, "source": "custom", "files": files}
    spec = dataset_spec(name)
    if mirror is None:
        md5 = _grouplens_md5(spec, downloads_dir)
        record = {
            "format": FORMAT,
            "dataset": name,
            "source": "grouplens",
            "url": spec.url(),
            "md5": md5,
        }
        served = server_record(downloads_dir, spec, md5)  # ETag / Last-Modified of that archive
        return record | ({"server": served} if served else {})
    found = mirror_source(spec, Path(mirror))  # the very folder or zip that ingest would open
    cache = StatCache(downloads_dir / CACHE_NAME)
    if found.is_dir():
        record: dict[str, Any] = {
            "format": FORMAT,
            "dataset": name,
            "source": "mirror",
            "files": {file: cache.digest(found / file) for file in spec.files},
        }
    else:
        record = {
            "format": FORMAT,
            "dataset": name,
            "source": "mirror-zip",
            "archive": {"name": found.name, **cache.digest(found)},
        }
    cache.save()
    return record


def _grouplens_md5(spec: DatasetSpec, downloads_dir: Path) -> str:
    """The md5 of the archive ingest would use: pinned, else that of a still-valid extraction it
    would reuse offline, else the one GroupLens publishes now (network)."""
    if spec.md5 is not None:
        return spec.md5
    return extracted_archive_md5(downloads_dir, spec) or published_md5(spec.url())


class StatCache:
    """md5s keyed by absolute path and trusted only while (size, mtime_ns, inode) all match."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = self._load()
        self.changed = False

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            payload = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); hashing files afresh", self.path, exc)
            return {}
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            return {}
        files = payload.get("files")
        return files if isinstance(files, dict) else {}

    def digest(self, path: Path) -> dict[str, Any]:
        """`{"size", "md5"}` of `path`, from the cache when its stat is unchanged."""
        key = str(path.resolve())
        stamp = _stamp(path.stat())
        entry = self.entries.get(key)
        if (
            isinstance(entry, dict)
            and all(entry.get(field) == stamp[field] for field in _STAMP)
            and isinstance(entry.get("md5"), str)
        ):
            return {"size": stamp["size"], "md5": entry["md5"]}
        md5 = file_md5(path)
        settled = _stamp(path.stat()) == stamp and time.time_ns() - stamp["mtime_ns"] > _RACY_NS
        if settled:
            self.entries[key] = {**stamp, "md5": md5}
            self.changed = True
        elif self.entries.pop(key, None) is not None:
            self.changed = True
        return {"size": stamp["size"], "md5": md5}

    def save(self) -> None:
        """Write the cache atomically when it changed, dropping files that no longer exist; a
        cache that cannot be written only costs a re-read next time."""
        if not self.changed:
            return
        kept = {key: entry for key, entry in self.entries.items() if os.path.exists(key)}
        try:
            write_json({"format": FORMAT, "files": kept}, self.path)
        except OSError as exc:
            log.warning("%s: not written (%s); files will be hashed again", self.path, exc)


def _stamp(status: os.stat_result) -> dict[str, int]:
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "inode": status.st_ino}
