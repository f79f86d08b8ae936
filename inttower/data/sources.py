"""Parse every MovieLens layout into the canonical tables; bad input names its file and line.

Big rating files take a typed polars fast path; only when that fails or leaves gaps are they
re-read as text, line by line in vectorised form, to say exactly which line is wrong and why.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from inttower.pipeline.catalog import DOWNLOADS
from inttower.config import Params
from inttower.data.download import dataset_spec, fetch_dataset
from inttower.data.tables import (
    MOVIELENS_GENRES,
    RawTables,
    SourceRef,
    conform,
)
from inttower.errors import DataSourceError
from inttower.pipeline.paths import MIRROR_ENV

# u.genre order: the 19 flag columns of u.item.
ML100K_GENRES = ("unknown", *MOVIELENS_GENRES)
# "No genre known" is an empty list in every layout, whatever placeholder the file uses.
NO_GENRES = ("unknown", "(no genres listed)")

# Occupation codes of ml-1m users.dat, as its README lists them.
ML1M_OCCUPATIONS = {
    0: "other",
    1: "academic/educator",
    2: "artist",
    3: "clerical/admin",
    4: "college/grad student",
    5: "customer service",
    6: "doctor/health care",
    7: "executive/managerial",
    8: "farmer",
    9: "homemaker",
    10: "K-12 student",
    11: "lawyer",
    12: "programmer",
    13: "retired",
    14: "sales/marketing",
    15: "scientist",
    16: "self-employed",
    17: "technician/engineer",
    18: "tradesman/craftsman",
    19: "unemployed",
    20: "writer",
}

# The release year closes the title, optionally followed by tags such as "(V)":
# "Land Before Time III: ... (1995) (V)", "Babylon 5 (1994–1998)".
YEAR_IN_TITLE = r"\((\d{4})(?:[-–]\d{0,4})?\)(?:\s*\([^()]*\))*\s*$"
# Control characters never occur in real MovieLens text; in a latin-1 file they are the only
# sign of bytes from another encoding (or binary garbage), so they count as undecodable.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_RATING_TYPES: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "item_id": pl.Int64(),
    "rating": pl.Float32(),
    "timestamp": pl.Int64(),
}


@dataclass(frozen=True)
class _Format:
    """How one file is laid out: field names, separator, header, quoting, encoding."""

    columns: tuple[str, ...]
    separator: str
    header: tuple[str, ...] | None = None  # the header line's names, for CSV files
    quoted: bool = False
    legacy: bool = False  # older GroupLens text: UTF-8 where valid, else latin-1

    @property
    def first_line(self) -> int:
        return 2 if self.header else 1


_RATING_COLUMNS = tuple(_RATING_TYPES)
_ML100K_FLAGS = tuple(f"genre_{index}" for index in range(len(ML100K_GENRES)))
U_DATA = _Format(_RATING_COLUMNS, "\t")
U_USER = _Format(("user_id", "age", "gender", "occupation", "zip"), "|", legacy=True)
U_ITEM = _Format(
    ("item_id", "title", "release_date", "video_date", "url", *_ML100K_FLAGS), "|", legacy=True
)
DAT_RATINGS = _Format(_RATING_COLUMNS, "::")
DAT_USERS = _Format(("user_id", "gender", "age", "occupation", "zip"), "::", legacy=True)
DAT_MOVIES = _Format(("item_id", "title", "genres"), "::", legacy=True)
CSV_RATINGS = _Format(_RATING_COLUMNS, ",", header=("userId", "movieId", "rating", "timestamp"))
CSV_MOVIES = _Format(
    ("item_id", "title", "genres"), ",", header=("movieId", "title", "genres"), quoted=True
)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataSourceError(path, "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataSourceError(path, "file is empty", line=1)
    return raw


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataSourceError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataSourceError(path, "file is empty", line=1)


def _decode(raw: bytes, path: Path, legacy: bool, first_line: int = 1) -> str:
    """Text of a file (or of one line, numbered `first_line`); undecodable bytes raise with the
    line they sit on. Legacy files are decoded line by line (see `_decode_lines`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not legacy:
            line = first_line + raw.count(b"\n", 0, exc.start)
            raise DataSourceError(
                path, f"undecodable byte 0x{raw[exc.start]:02x}: not valid UTF-8", line=line
            ) from None
        text = _decode_lines(raw)
    text = text.removeprefix("\ufeff")
    control = _CONTROL.search(text)
    if control is not None:
        line = first_line + text.count("\n", 0, control.start())
        raise DataSourceError(
            path,
            f"undecodable byte 0x{ord(control.group()):02x}: a control character, not text",
            line=line,
        )
    return text


def _decode_lines(raw: bytes) -> str:
    """Each line as UTF-8 where it is valid UTF-8, else as latin-1. Older GroupLens files are
    latin-1, but a line edited later may be UTF-8; decoding the whole file as latin-1 would turn
    that line's `é` into `Ã©`. (A latin-1 line that happens to be valid UTF-8, like `Ã©`, reads
    as UTF-8; real titles have none. A line mixing both encodings stays latin-1.)"""
    # Both decoders keep every `\n` (an invalid sequence never swallows one), so the three
    # decodings split into the same lines. A line is valid UTF-8 exactly when dropping and
    # replacing its invalid bytes give the same text.
    replaced = pl.Series(raw.decode("utf-8", errors="replace").split("\n"), dtype=pl.String)
    dropped = pl.Series(raw.decode("utf-8", errors="ignore").split("\n"), dtype=pl.String)
    latin = pl.Series(raw.decode("latin-1").split("\n"), dtype=pl.String)
    utf8 = replaced == dropped
    return pl.select(pl.when(utf8).then(replaced).otherwise(latin).str.join("\n")).item()


def _check_header(first_line: str, fmt: _Format, path: Path) -> None:
    found = tuple(
        name.strip() for name in first_line.removeprefix("\ufeff").rstrip("\r").split(",")
    )
    if found != fmt.header:
        raise DataSourceError(
            path, f"header is {','.join(found)!r}, expected {','.join(fmt.header or ())!r}", line=1
        )


def _last_true(mask: pl.Series) -> int:
    """Index of the last True, or -1."""
    last = mask.arg_true().max()
    return -1 if last is None else int(last)  # type: ignore[arg-type]


def _fail_at(path: Path, first_line: int, bad: pl.Series, describe: Callable[[int], str]) -> None:
    """Raise for the first True in `bad`, with `describe(row)` as the message."""
    if bad.any():
        row = int(bad.arg_max())  # type: ignore[arg-type]
        raise DataSourceError(path, describe(row), line=first_line + row)


def _text_frame(path: Path, fmt: _Format) -> pl.DataFrame:
    """Every field as a string, row i being line `fmt.first_line + i`; field counts checked."""
    text = _decode(_read_bytes(path), path, fmt.legacy)
    if fmt.header is not None:
        header, _, text = text.partition("\n")
        _check_header(header, fmt, path)
    width = len(fmt.columns)
    if fmt.quoted:
        # polars handles the quoting; a sentinel column catches lines with too many fields.
        # (A quoted field spanning lines would shift line numbers; MovieLens has none.)
        frame = pl.read_csv(
            io.BytesIO(text.encode()),
            has_header=False,
            schema={name: pl.String() for name in (*fmt.columns, "__extra__")},
            missing_columns="insert",
            truncate_ragged_lines=True,
            quote_char='"',
            raise_if_empty=False,
        )
        blank = pl.all_horizontal(pl.all().is_null())
        filled = frame.select(blank.not_().alias("filled"))["filled"]
        frame = frame.head(_last_true(filled) + 1)  # drop trailing blank lines
        blank_rows = frame.select(blank.alias("blank"))["blank"]
        _fail_at(path, fmt.first_line, blank_rows, lambda row: "empty line")
        extra = frame["__extra__"]
        _fail_at(
            path,
            fmt.first_line,
            extra.is_not_null(),
            lambda row: f"expected {width} fields separated by {fmt.separator!r}, found more",
        )
        frame = frame.drop("__extra__")
    else:
        lines = pl.Series("line", [text]).str.split("\n").explode().str.strip_suffix("\r")
        filled = lines != ""
        lines = lines.head(_last_true(filled) + 1)  # drop trailing blank lines
        frame = _split_lines(lines, fmt, path, fmt.first_line)
    if frame.height == 0:
        raise DataSourceError(path, "no data rows", line=fmt.first_line)
    return frame


def _split_lines(lines: pl.Series, fmt: _Format, path: Path, first_line: int) -> pl.DataFrame:
    """Unquoted lines split into `fmt.columns`; a line with another field count raises."""
    width = len(fmt.columns)
    parts = lines.str.split(fmt.separator)
    counts = parts.list.len()

    def describe(row: int) -> str:
        if lines[row] == "":
            return "empty line"
        return f"expected {width} fields separated by {fmt.separator!r}, found {counts[row]}"

    _fail_at(path, first_line, counts != width, describe)
    return pl.DataFrame([parts.list.get(j).alias(name) for j, name in enumerate(fmt.columns)])


def _typed(
    frame: pl.DataFrame,
    path: Path,
    first_line: int,
    types: dict[str, pl.DataType],
    required: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Cast text fields to `types`; the first unparsable or missing value raises with its line."""
    for name in required:
        values = frame[name]
        missing = values.is_null() | (values.str.strip_chars() == "")
        _fail_at(path, first_line, missing, lambda row, name=name: f"missing {name}")
    for name, dtype in types.items():
        text = frame[name]
        parsed = text.str.strip_chars().cast(dtype, strict=False)
        kind = "an integer" if dtype.is_integer() else "a number"

        def describe(row: int, name: str = name, text: pl.Series = text, kind: str = kind) -> str:
            value = text[row]
            if value is None or not value.strip():
                return f"missing {name}"
            return f"{name} {value!r} is not {kind}"

        _fail_at(path, first_line, parsed.is_null(), describe)
        frame = frame.with_columns(parsed.alias(name))
    return frame


def _ratings_schema(fmt: _Format, sentinels: int) -> dict[str, pl.DataType]:
    """Positional read schema; `sentinels` extra text columns catch lines with too many fields.
    polars separators are one byte, so "a::b" is read as a, "", b and the empties must stay empty."""
    if fmt.separator == "::":
        dtypes = [kind for dtype in _RATING_TYPES.values() for kind in (dtype, pl.String())][:-1]
    else:
        dtypes = list(_RATING_TYPES.values())
    dtypes += [pl.String()] * sentinels
    return {f"field_{index}": dtype for index, dtype in enumerate(dtypes)}


def _read_ratings_csv(path: Path, fmt: _Format, lenient: bool) -> pl.DataFrame | None:
    """One typed row per line (header skipped), or None where polars refuses the file.
    Lenient: unparsable values become nulls and long lines spill into sentinel columns."""
    try:
        return pl.read_csv(
            path,
            has_header=False,
            skip_lines=1 if fmt.header else 0,
            separator=fmt.separator[0],
            schema=_ratings_schema(fmt, sentinels=2 if lenient else 0),
            quote_char=None,
            missing_columns="insert",
            truncate_ragged_lines=lenient,
            ignore_errors=lenient,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None


def _value_columns(fmt: _Format) -> list[str]:
    step = 2 if fmt.separator == "::" else 1
    return [f"field_{step * index}" for index in range(len(fmt.columns))]


def _fast_ratings(path: Path, fmt: _Format) -> pl.DataFrame | None:
    """Typed read straight from disk, or None when anything looks off (the slow path explains)."""
    frame = _read_ratings_csv(path, fmt, lenient=False)
    if frame is None:
        return None
    values = _value_columns(fmt)
    fillers = [name for name in frame.columns if name not in values]
    filled = frame.select(pl.any_horizontal(pl.all().is_not_null()).alias("filled"))["filled"]
    frame = frame.head(_last_true(filled) + 1)  # trailing blank lines read as empty rows
    if frame.height == 0 or frame.select(values).null_count().sum_horizontal().item():
        return None
    if fillers and frame.select(pl.any_horizontal(pl.col(fillers).is_not_null()).any()).item():
        return None
    return frame.select(
        pl.col(old).alias(new) for old, new in zip(values, fmt.columns, strict=True)
    )


def _line_at(path: Path, line: int, block_size: int = 1 << 24) -> bytes:
    """The raw bytes of 1-based `line`, found block by block without reading the whole file."""
    before = 0  # complete lines before `data`
    pending = b""  # the unfinished last line of the previous block
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            data = pending + block
            count = data.count(b"\n")
            if before + count >= line:
                return data.split(b"\n", line - before)[line - before - 1]
            before += count
            pending = data[data.rfind(b"\n") + 1 :]
    return pending if before + 1 == line else b""


def _explain_bad_line(path: Path, fmt: _Format) -> None:
    """Find the first malformed line with a lenient typed read and raise for it; return quietly
    when that read cannot tell (the full text parse then decides)."""
    frame = _read_ratings_csv(path, fmt, lenient=True)
    if frame is None:
        return
    values = _value_columns(fmt)
    fillers = [name for name in frame.columns if name not in values]
    bad = frame.select(
        (
            pl.any_horizontal(pl.col(values).is_null())
            | pl.any_horizontal(pl.col(fillers).is_not_null())
        ).alias("bad")
    )["bad"]
    filled = frame.select(pl.any_horizontal(pl.all().is_not_null()).alias("filled"))["filled"]
    bad = bad.head(_last_true(filled) + 1)  # trailing blank lines are fine
    if not bad.any():
        return
    line = fmt.first_line + int(bad.arg_max())  # type: ignore[arg-type]
    text = _decode(_line_at(path, line), path, legacy=False, first_line=line).removesuffix("\r")
    fields = _split_lines(pl.Series("line", [text]), fmt, path, line)
    _typed(fields, path, line, _RATING_TYPES)


def read_ratings(path: Path, fmt: _Format) -> pl.DataFrame:
    """A ratings file as canonical interactions (rows in file order). Clean files take one typed
    polars read; otherwise the first bad line is located leniently and explained on its own,
    and only if that fails is the whole file parsed as text."""
    _require_file(path)
    if fmt.header is not None:
        with open(path, "rb") as handle:
            first = handle.readline().decode("utf-8", errors="replace")
        _check_header(first, fmt, path)
    frame = _fast_ratings(path, fmt)
    if frame is None:
        _explain_bad_line(path, fmt)
        frame = _typed(_text_frame(path, fmt), path, fmt.first_line, _RATING_TYPES)
    return conform(frame, "interactions")


def _title_year() -> pl.Expr:
    return pl.col("title").str.extract(YEAR_IN_TITLE, 1).cast(pl.Int32, strict=False)


def _pipe_genres() -> pl.Expr:
    genre = pl.element()
    return (
        pl.col("genres")
        .str.split("|")
        .list.eval(genre.filter(~genre.is_in(NO_GENRES) & (genre != "")))
    )


def _users_from_ratings(interactions: pl.DataFrame) -> pl.DataFrame:
    """Users of a dataset without demographics: its distinct rating user ids, nulls elsewhere."""
    return conform(interactions.select(pl.col("user_id").unique().sort()), "users")


def _movies(directory: Path, filename: str, fmt: _Format) -> pl.DataFrame:
    path = directory / filename
    frame = _typed(
        _text_frame(path, fmt), path, fmt.first_line, {"item_id": pl.Int64()}, ("title", "genres")
    )
    frame = frame.with_columns(pl.col("title").str.strip_chars()).with_columns(
        _title_year().alias("year"), _pipe_genres().alias("genres")
    )
    return conform(frame, "items")


def _ref(path: Path, fmt: _Format, derived: bool = False) -> SourceRef:
    return SourceRef(str(path), fmt.first_line, derived=derived)


def read_ml100k(directory: Path) -> RawTables:
    """ml-100k: u.data (tab), u.user and u.item (`|`, latin-1, 19 genre flags)."""
    interactions = read_ratings(directory / "u.data", U_DATA)

    user_path = directory / "u.user"
    users = _typed(
        _text_frame(user_path, U_USER),
        user_path,
        1,
        {"user_id": pl.Int64(), "age": pl.Int32()},
        ("gender", "occupation", "zip"),
    )

    item_path = directory / "u.item"
    flags = {name: pl.Int8() for name in _ML100K_FLAGS}
    items = _typed(
        _text_frame(item_path, U_ITEM), item_path, 1, {"item_id": pl.Int64(), **flags}, ("title",)
    )
    not_flag = items.select(pl.any_horizontal(~pl.col(_ML100K_FLAGS).is_in([0, 1])).alias("bad"))
    _fail_at(item_path, 1, not_flag["bad"], lambda row: "genre flags must be 0 or 1")
    genres = pl.concat_list(
        pl.when(pl.col(flag) == 1).then(pl.lit(genre))
        for flag, genre in zip(_ML100K_FLAGS, ML100K_GENRES, strict=True)
        if genre not in NO_GENRES
    ).list.drop_nulls()
    items = items.with_columns(pl.col("title").str.strip_chars()).with_columns(
        # The release date ("01-Jan-1995") is the better source of the year; titles back it up.
        pl.coalesce(
            pl.col("release_date").str.extract(r"(\d{4})\s*$", 1).cast(pl.Int32, strict=False),
            _title_year(),
        ).alias("year"),
        genres.alias("genres"),
    )
    return RawTables(
        interactions=interactions,
        users=conform(users, "users"),
        items=conform(items, "items"),
        sources={
            "interactions": _ref(directory / "u.data", U_DATA),
            "users": _ref(user_path, U_USER),
            "items": _ref(item_path, U_ITEM),
        },
    )


def read_ml1m(directory: Path) -> RawTables:
    """ml-1m: `::`-separated ratings.dat, users.dat (coded age and occupation), movies.dat."""
    interactions = read_ratings(directory / "ratings.dat", DAT_RATINGS)

    user_path = directory / "users.dat"
    users = _typed(
        _text_frame(user_path, DAT_USERS),
        user_path,
        1,
        {"user_id": pl.Int64(), "age": pl.Int32(), "occupation": pl.Int64()},
        ("gender", "zip"),
    )
    names = users["occupation"].replace_strict(
        ML1M_OCCUPATIONS, default=None, return_dtype=pl.String()
    )
    _fail_at(
        user_path,
        1,
        names.is_null(),
        lambda row: f"occupation code {users['occupation'][row]} is not one of 0..20",
    )
    users = users.with_columns(names.alias("occupation"))
    return RawTables(
        interactions=interactions,
        users=conform(users, "users"),
        items=_movies(directory, "movies.dat", DAT_MOVIES),
        sources={
            "interactions": _ref(directory / "ratings.dat", DAT_RATINGS),
            "users": _ref(user_path, DAT_USERS),
            "items": _ref(directory / "movies.dat", DAT_MOVIES),
        },
    )


def read_ml10m(directory: Path) -> RawTables:
    """ml-10m: like ml-1m with half stars and no users.dat (users come from the ratings)."""
    return _without_demographics(directory, "ratings.dat", DAT_RATINGS, "movies.dat", DAT_MOVIES)


def read_csv_layout(directory: Path) -> RawTables:
    """ml-20m/25m/32m/latest-small: UTF-8 CSV with a header; no demographics."""
    return _without_demographics(directory, "ratings.csv", CSV_RATINGS, "movies.csv", CSV_MOVIES)


def _without_demographics(
    directory: Path, ratings_name: str, ratings_fmt: _Format, movies_name: str, movies_fmt: _Format
) -> RawTables:
    ratings = directory / ratings_name
    interactions = read_ratings(ratings, ratings_fmt)
    return RawTables(
        interactions=interactions,
        users=_users_from_ratings(interactions),
        items=_movies(directory, movies_name, movies_fmt),
        sources={
            "interactions": _ref(ratings, ratings_fmt),
            "users": _ref(ratings, ratings_fmt, derived=True),
            "items": _ref(directory / movies_name, movies_fmt),
        },
    )


_READERS = {
    "ml-100k": read_ml100k,
    "ml-1m": read_ml1m,
    "ml-10m": read_ml10m,
    "csv": read_csv_layout,
}


def read_dataset(directory: Path | str, name: str) -> RawTables:
    """Parse an extracted MovieLens folder into the canonical tables, with their sources."""
    directory = Path(directory)
    spec = dataset_spec(name)
    if not directory.is_dir():
        raise DataSourceError(directory, f"{name} folder not found")
    return _READERS[spec.layout](directory)


def load_raw(params: Params, downloads_dir: Path | str, mirror: Path | str | None) -> RawTables:
    """The configured dataset in canonical form: generated when `synthetic`, else fetched (mirror
    first, never silently replaced by synthetic data) and parsed."""
    name = params.data.dataset
    if name == "synthetic":
        from inttower.data.synthetic import generate

        return generate(params.data.synthetic, params.seed)
    if name == "custom":
        from inttower.data.custom import read_custom

        return read_custom(params.data.custom)
    directory = fetch_dataset(name, Path(downloads_dir), mirror=mirror)
    tables = read_dataset(directory, name)
    roots = {f"${MIRROR_ENV}": mirror, DOWNLOADS: downloads_dir}
    sources = {
        table: replace(ref, path=portable_path(ref.path, roots))
        for table, ref in tables.sources.items()
    }
    return replace(tables, sources=sources)


def portable_path(path: str, roots: dict[str, Path | str | None]) -> str:
    """`path` relative to the first root that holds it, spelled `<name>/<relative>`: what the
    versioned sources.json and validation.json record, the same on every machine."""
    for name, root in roots.items():
        if root is None:
            continue
        try:
            relative = Path(path).resolve().relative_to(Path(root).resolve())
        except ValueError:
            continue
        return f"{name}/{relative.as_posix()}"
    return path
