"""MovieLens archives: the GroupLens registry, verified downloads and safe extraction.

A dataset ends up extracted as `<downloads_dir>/<name>/`, the same shape a MOVIELENS_MIRROR
holds, so a downloads folder can itself serve as a mirror. Beside it, `<name>.extracted.json`
records the md5 of the archive and of each file the parser reads, so an extraction edited or
truncated since is noticed and restored instead of being read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any, IO, Literal

from tqdm import tqdm

from inttower import __version__
from inttower.errors import ConfigError, DataSourceError, DownloadError, UnsafeArchiveError
from inttower.io import atomic_path, file_md5, write_json

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"

Layout = Literal["ml-100k", "ml-1m", "ml-10m", "csv"]

# Files whose presence makes an extracted copy usable; the parsers need exactly these.
LAYOUT_FILES: dict[str, tuple[str, ...]] = {
    "ml-100k": ("u.data", "u.user", "u.item"),
    "ml-1m": ("ratings.dat", "users.dat", "movies.dat"),
    "ml-10m": ("ratings.dat", "movies.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """One GroupLens archive: where it lives, what folder it unpacks to, how to check it."""

    name: str
    folder: str  # top-level folder inside the zip
    layout: Layout
    md5: str | None  # pinned published md5; None: the archive changes, so fetch `<url>.md5`

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"

    @property
    def files(self) -> tuple[str, ...]:
        return LAYOUT_FILES[self.layout]

    def url(self, base_url: str | None = None) -> str:
        return f"{(base_url or GROUPLENS_URL).rstrip('/')}/{self.archive}"


# md5 values as GroupLens publishes them in `<archive>.md5`. ml-32m is not pinned: its published
# value could not be confirmed from an independent source, so it is fetched and checked each time.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("ml-100k", "ml-100k", "ml-100k", "0e33842e24a9c977be4e0107933c0723"),
        DatasetSpec("ml-1m", "ml-1m", "ml-1m", "c4d9eecfca2ab87c1945afe126590906"),
        DatasetSpec("ml-10m", "ml-10M100K", "ml-10m", "ce571fd55effeba0271552578f2648bd"),
        DatasetSpec("ml-20m", "ml-20m", "csv", "cd245b17a1ae2cc31bb14903e1204af3"),
        DatasetSpec("ml-25m", "ml-25m", "csv", "6b51fb2759a8657d3bfcbfc42b592ada"),
        DatasetSpec("ml-32m", "ml-32m", "csv", None),
        DatasetSpec("ml-latest-small", "ml-latest-small", "csv", None),
    )
}

MANIFEST_FORMAT = 1
_NOT_EXTRACTED = "not extracted yet"

_MD5_TOKEN = re.compile(r"\b([0-9a-fA-F]{32})\b")
_CHUNK = 1 << 20


class _Transient(Exception):
    """A failure worth retrying: connection trouble, a 5xx, a body cut short."""


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry for `name`, or a ConfigError listing the known datasets."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise ConfigError("data.dataset", f"unknown MovieLens dataset {name!r} ({known})") from None


def is_complete(directory: Path, spec: DatasetSpec) -> bool:
    """True when every file the parser needs is present and non-empty."""
    return all(
        (directory / name).is_file() and (directory / name).stat().st_size > 0
        for name in spec.files
    )


def manifest_path(downloads_dir: Path, spec: DatasetSpec) -> Path:
    """The record of an extraction: beside its folder, which then holds only the archive's files."""
    return downloads_dir / f"{spec.name}.extracted.json"


def _stale(downloads_dir: Path, spec: DatasetSpec, archive_md5: str | None) -> str | None:
    """Why `<downloads_dir>/<name>/` must not be reused, or None when it may: compared with its
    manifest, the archive (`archive_md5`, when still present) and every needed file must match."""
    target = downloads_dir / spec.name
    if not target.is_dir():
        return _NOT_EXTRACTED
    try:
        manifest = _manifest_json(manifest_path(downloads_dir, spec))
        recorded = manifest["archive_md5"]
        files = manifest["files"]
        if manifest["format"] != MANIFEST_FORMAT:
            return f"extraction manifest has format {manifest['format']!r}, not {MANIFEST_FORMAT}"
    except FileNotFoundError:
        return f"no extraction manifest {manifest_path(downloads_dir, spec).name}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable extraction manifest ({exc.__class__.__name__}: {exc})"
    if spec.md5 is not None and recorded != spec.md5:
        return f"extracted from an archive with md5 {recorded}, not the published {spec.md5}"
    if archive_md5 is not None and archive_md5 != recorded:
        return f"{spec.archive} changed since extraction (md5 {archive_md5}, manifest {recorded})"
    for name in spec.files:
        path = target / name
        entry = files.get(name) if isinstance(files, dict) else None
        if not isinstance(entry, dict):
            return f"{name} is not in the extraction manifest"
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry.get("size"):
            return f"{name} changed since extraction ({size} bytes, manifest {entry.get('size')})"
        actual = file_md5(path)
        if actual != entry.get("md5"):
            return f"{name} changed since extraction (md5 {actual}, manifest {entry.get('md5')})"
    return None


def extracted_archive_md5(downloads_dir: Path | str, spec: DatasetSpec) -> str | None:
    """The md5 of the archive behind a still-valid extraction in `downloads_dir`, which
    `fetch_dataset` would reuse without the network; None when it would fetch afresh."""
    downloads_dir = Path(downloads_dir)
    archive = downloads_dir / spec.archive
    archive_md5 = file_md5(archive) if archive.is_file() else None
    if _stale(downloads_dir, spec, archive_md5) is not None:
        return None
    return _recorded_archive_md5(downloads_dir, spec)


def _manifest_json(path: Path) -> Any:
    # plain json: a missing or torn manifest is an ordinary case here (re-extract), not an error
    return json.loads(path.read_text(encoding="utf-8"))


def _recorded_archive_md5(downloads_dir: Path, spec: DatasetSpec) -> str | None:
    """The archive md5 a manifest holds (checked against the published one when it was written)."""
    try:
        recorded = _manifest_json(manifest_path(downloads_dir, spec))["archive_md5"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if isinstance(recorded, str) else None


def fetch_dataset(
    name: str,
    downloads_dir: Path | str,
    mirror: Path | str | None = None,
    base_url: str | None = None,
    progress: bool = True,
    *,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
) -> Path:
    """Return the extracted dataset folder: from the mirror when given (never the network),
    else downloaded from GroupLens (or `base_url`), checksum-verified and safely extracted.
    An earlier extraction is reused only while it still matches its manifest."""
    spec = dataset_spec(name)
    downloads_dir = Path(downloads_dir)
    if mirror is not None:
        return _from_mirror(spec, Path(mirror), downloads_dir)

    target = downloads_dir / spec.name
    archive = downloads_dir / spec.archive
    archive_md5 = file_md5(archive) if archive.is_file() else None
    problem = _stale(downloads_dir, spec, archive_md5)
    if problem is None:
        return target
    url = spec.url(base_url)
    if problem != _NOT_EXTRACTED:
        log.warning("%s: %s; extracting it again from a verified archive", target, problem)
    downloads_dir.mkdir(parents=True, exist_ok=True)
    recorded = _recorded_archive_md5(downloads_dir, spec)
    served = server_record(downloads_dir, spec, archive_md5) if archive_md5 else None
    try:
        if spec.md5 is None and archive_md5 is not None and archive_md5 == recorded:
            expected = archive_md5  # the archive the files came from, verified back then: offline
        else:
            expected = spec.md5 or published_md5(
                url, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s
            )
        if archive_md5 != expected:
            served = download(
                url,
                archive,
                expected,
                progress,
                retries=retries,
                backoff_s=backoff_s,
                timeout_s=timeout_s,
            )
    except DownloadError as exc:
        if problem == _NOT_EXTRACTED:
            raise
        raise DownloadError(
            f"{target}: {problem}, and no verified archive is left to restore it from: {exc}"
        ) from None
    try:
        return extract_dataset(archive, spec, downloads_dir, archive_md5=expected, served=served)
    except (UnsafeArchiveError, DataSourceError):
        # It matched its checksum yet cannot be used: keep nothing of it.
        archive.unlink(missing_ok=True)
        raise


def mirror_source(spec: DatasetSpec, mirror: Path) -> Path:
    """What a MOVIELENS_MIRROR offers for `spec`: the folder holding the files the parser reads,
    else the zip; DataSourceError when it holds neither or an incomplete folder."""
    extracted = mirror / spec.name
    if extracted.is_dir():
        # Accept both `<mirror>/ml-10m/ratings.dat` and the zip's own `<mirror>/ml-10m/ml-10M100K/`.
        for candidate in (extracted, extracted / spec.folder):
            if is_complete(candidate, spec):
                return candidate
        missing = [name for name in spec.files if not (extracted / name).is_file()]
        raise DataSourceError(
            extracted, f"MOVIELENS_MIRROR copy of {spec.name} is incomplete: missing {missing}"
        )
    zipped = mirror / spec.archive
    if not zipped.is_file():
        raise DataSourceError(
            mirror,
            f"MOVIELENS_MIRROR holds neither {spec.name}/ nor {spec.archive}; "
            "add one, or unset MOVIELENS_MIRROR to download from GroupLens",
        )
    return zipped


def _from_mirror(spec: DatasetSpec, mirror: Path, downloads_dir: Path) -> Path:
    source = mirror_source(spec, mirror)
    if source.is_dir():
        return source
    archive_md5 = file_md5(source)
    expected = spec.md5 or _md5_beside(source)
    if expected is not None and archive_md5 != expected:
        raise DownloadError(f"{source}: md5 mismatch: expected {expected}, got {archive_md5}")
    target = downloads_dir / spec.name
    problem = _stale(downloads_dir, spec, archive_md5)
    if problem is None:
        return target
    if problem != _NOT_EXTRACTED:
        log.warning("%s: %s; extracting it again from %s", target, problem, source)
    if expected is None:
        log.warning(
            "%s: no published md5 known and no %s.md5 beside it; not verified", source, source.name
        )
    downloads_dir.mkdir(parents=True, exist_ok=True)
    return extract_dataset(source, spec, downloads_dir, archive_md5=archive_md5)


def _md5_beside(archive: Path) -> str | None:
    published = archive.with_name(archive.name + ".md5")
    if not published.is_file():
        return None
    return parse_md5(published.read_text(errors="replace"), str(published))


def parse_md5(text: str, origin: str) -> str:
    """The checksum in an md5 file, BSD (`MD5 (x.zip) = …`) or GNU (`…  x.zip`) style."""
    match = _MD5_TOKEN.search(text)
    if match is None:
        raise DownloadError(f"{origin}: no md5 checksum found in {text[:80]!r}")
    return match.group(1).lower()


def _retrying(what: str, attempt_once, retries: int, backoff_s: float):
    """Run `attempt_once`, retrying transient failures with exponential backoff."""
    for attempt in range(retries + 1):
        try:
            return attempt_once()
        except _Transient as exc:
            if attempt == retries:
                raise DownloadError(
                    f"{what}: {exc} (gave up after {retries + 1} attempts)"
                ) from None
            delay = backoff_s * 2**attempt
            log.warning("%s: %s; retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _open(url: str, timeout_s: float):
    request = urllib.request.Request(url, headers={"User-Agent": f"inttower/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise _Transient(f"connection failed: {exc}") from None


def published_md5(
    url: str, *, retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 60.0
) -> str:
    """The md5 GroupLens publishes beside an archive at `<url>.md5`."""
    md5_url = f"{url}.md5"

    def once() -> str:
        with _open(md5_url, timeout_s) as response:
            try:
                text = response.read(4096).decode("ascii", errors="replace")
            except (OSError, HTTPException) as exc:
                raise _Transient(f"connection failed: {exc}") from None
        return parse_md5(text, md5_url)

    return _retrying(md5_url, once, retries, backoff_s)


def server_record(downloads_dir: Path | str, spec: DatasetSpec, md5: str) -> dict[str, Any] | None:
    """The ETag and Last-Modified GroupLens sent with the archive whose md5 is `md5` (from the
    extraction manifest), or None."""
    try:
        manifest = _manifest_json(manifest_path(Path(downloads_dir), spec))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("archive_md5") != md5:
        return None
    served = manifest.get("server")
    return served if isinstance(served, dict) else None


def download(
    url: str,
    archive: Path,
    expected_md5: str,
    progress: bool = True,
    *,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
) -> dict[str, str | None]:
    """Stream `url` into `archive` through a temporary file; only a complete body whose md5 is
    `expected_md5` is renamed into place, anything else is deleted and raises DownloadError.
    Returns the server's ETag and Last-Modified for that archive."""

    def once() -> dict[str, str | None]:
        with _open(url, timeout_s) as response, atomic_path(archive) as part:
            length = response.headers.get("Content-Length")
            expected_size = int(length) if length and length.isdigit() else None
            digest = hashlib.md5()
            received = 0
            bar = tqdm(
                total=expected_size,
                unit="B",
                unit_scale=True,
                desc=archive.name,
                file=sys.stderr,
                disable=not (progress and sys.stderr.isatty()),
            )
            with bar, open(part, "wb") as out:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (OSError, HTTPException) as exc:
                        raise _Transient(
                            f"connection lost after {received} bytes ({exc}); "
                            f"expected {expected_size} bytes"
                        ) from None
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
            if expected_size is not None and received != expected_size:
                raise _Transient(
                    f"truncated body: expected {expected_size} bytes, received {received}"
                )
            actual = digest.hexdigest()
            if actual != expected_md5:
                raise DownloadError(
                    f"{url}: md5 mismatch: expected {expected_md5}, got {actual}; "
                    "the download was discarded"
                )
            # what the server said of this publication: GroupLens re-publishes ml-latest(-small)
            served = {"etag": response.headers.get("ETag"),
                      "last_modified": response.headers.get("Last-Modified")}
        return served

    return _retrying(url, once, retries, backoff_s)


def _refusal(info: zipfile.ZipInfo) -> str | None:
    """Why an archive entry must not be extracted, or None when it is safe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' path component"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 for archives made without Unix modes
    if kind == stat.S_IFLNK:
        return "symbolic link"
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "not a regular file or folder"
    return None


def _copy_hashing(source: IO[bytes], destination: Path) -> dict[str, str | int]:
    """Copy and hash in one pass, so the manifest costs no second read of a big file."""
    digest = hashlib.md5()
    size = 0
    with open(destination, "wb") as out:
        while block := source.read(_CHUNK):
            out.write(block)
            digest.update(block)
            size += len(block)
    return {"md5": digest.hexdigest(), "size": size}


def extract_dataset(
    archive: Path,
    spec: DatasetSpec,
    downloads_dir: Path,
    *,
    archive_md5: str | None = None,
    served: dict[str, str | None] | None = None,
) -> Path:
    """Extract `archive` into `<downloads_dir>/<name>/`, all or nothing: every entry is checked
    first, files go to a staging folder, and the dataset folder appears only on success, its
    manifest last. `archive_md5`: the already verified md5 of `archive`, else it is computed."""
    target = downloads_dir / spec.name
    manifest = manifest_path(downloads_dir, spec)
    needed = {(spec.folder, name): name for name in spec.files}
    hashes: dict[str, dict[str, str | int]] = {}
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            for info in members:
                reason = _refusal(info)
                if reason is not None:
                    raise UnsafeArchiveError(
                        f"{archive}: refusing entry {info.filename!r} ({reason}); "
                        "nothing was extracted"
                    )
            staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=downloads_dir))
            try:
                for info in members:
                    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                    destination = staging.joinpath(*parts) if parts else staging
                    if info.is_dir():
                        destination.mkdir(parents=True, exist_ok=True)
                        continue
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(info) as source:
                        if parts in needed:
                            hashes[needed[parts]] = _copy_hashing(source, destination)
                        else:
                            with open(destination, "wb") as out:
                                shutil.copyfileobj(source, out, _CHUNK)
                root = staging / spec.folder
                if not is_complete(root, spec) or set(hashes) != set(spec.files):
                    raise DataSourceError(
                        archive, f"archive lacks {spec.folder}/ with {', '.join(spec.files)}"
                    )
                # Manifest gone first: a crash before the new one is written leaves a folder
                # that is extracted again next time, never one trusted without a record.
                manifest.unlink(missing_ok=True)
                if target.exists():
                    # A stale or tampered leftover; the archive is the truth.
                    shutil.rmtree(target)
                os.replace(root, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        raise DataSourceError(archive, f"not a valid zip archive ({exc})") from None
    write_json(
        {
            "format": MANIFEST_FORMAT,
            "dataset": spec.name,
            "archive": spec.archive,
            "archive_md5": archive_md5 or file_md5(archive),
            "files": hashes,
            **({"server": served} if served else {}),
        },
        manifest,
    )
    return target
