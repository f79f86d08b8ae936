"""Every MovieLens layout parsed into the canonical tables; bad input named by file and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from inttower.config import Params
from inttower.data.sources import (
    CSV_RATINGS,
    DAT_RATINGS,
    U_DATA,
    _explain_bad_line,
    _fast_ratings,
    _line_at,
    load_raw,
    read_dataset,
)
from inttower.data.tables import TABLE_SCHEMAS
from inttower.errors import DataSourceError

FLAGS_COMEDY = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)  # u.genre index 5 = Comedy
FLAGS_UNKNOWN = "|".join(["1"] + ["0"] * 18)


def write(directory: Path, files: dict[str, bytes | str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (directory / name).write_bytes(data)
    return directory


def ml100k_files() -> dict[str, bytes | str]:
    return {
        "u.data": "1\t10\t5\t881250949\n2\t20\t1\t891717742\n1\t20\t3\t878887116\n",
        "u.user": "1|24|M|technician|85711\n2|53|F|other|T8H1N\n",
        "u.item": (
            f"10|Misérables, Les (1995)|01-Jan-1995||http://x|{FLAGS_COMEDY}\n"
            f"20|unknown||||{FLAGS_UNKNOWN}\n"
        ).encode("latin-1"),
    }


def assert_canonical(tables) -> None:
    for name, schema in TABLE_SCHEMAS.items():
        assert tables.table(name).schema == pl.Schema(schema), name


def test_ml100k_layout(tmp_path: Path) -> None:
    tables = read_dataset(write(tmp_path / "ml-100k", ml100k_files()), "ml-100k")

    assert_canonical(tables)
    assert tables.interactions.rows() == [
        (1, 10, 5.0, 881250949),
        (2, 20, 1.0, 891717742),
        (1, 20, 3.0, 878887116),
    ]
    assert tables.users.rows() == [
        (1, "M", 24, "technician", "85711"),
        (2, "F", 53, "other", "T8H1N"),
    ]
    # latin-1 decoded; year from the release date; the "unknown" genre flag is no genre.
    assert tables.items.rows() == [
        (10, "Misérables, Les (1995)", 1995, ["Comedy"]),
        (20, "unknown", None, []),
    ]
    assert tables.sources["interactions"].path.endswith("u.data")
    assert tables.sources["items"].locate(1).endswith("u.item:2")


def test_real_ml100k(ml100k_dir: Path) -> None:
    assert hashlib.md5((ml100k_dir / "u.data").read_bytes()).hexdigest() == (
        "6e47046882bad158b0efbb84cd5cb987"
    )
    tables = read_dataset(ml100k_dir, "ml-100k")

    assert_canonical(tables)
    assert (tables.interactions.height, tables.users.height, tables.items.height) == (
        100_000,
        943,
        1_682,
    )
    toy_story = tables.items.row(0, named=True)
    assert toy_story == {
        "item_id": 1,
        "title": "Toy Story (1995)",
        "year": 1995,
        "genres": ["Animation", "Children's", "Comedy"],
    }
    assert "Misérables, Les (1995)" in tables.items["title"].to_list()
    assert tables.users["gender"].unique().sort().to_list() == ["F", "M"]


def test_a_utf8_line_in_real_latin1_u_item_is_not_mojibake(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    for name in ("u.data", "u.user"):  # linked, never copied into the repo
        (directory / name).symlink_to(ml100k_dir / name)
    original = (ml100k_dir / "u.item").read_bytes()
    latin1_line = b"1322|Metisse (Caf\xe9 au Lait) (1993)|"
    assert latin1_line in original
    # One line re-saved as UTF-8 (its accents fixed too); every other line stays latin-1.
    utf8_line = "1322|Métisse (Café au Lait) (1993)|".encode()
    (directory / "u.item").write_bytes(original.replace(latin1_line, utf8_line))

    titles = dict(read_dataset(directory, "ml-100k").items.select("item_id", "title").iter_rows())

    assert titles[1322] == "Métisse (Café au Lait) (1993)"  # not "MÃ©tisse (CafÃ© au Lait)"
    assert titles[543] == "Misérables, Les (1995)"  # byte 0xE9, latin-1
    assert titles[1633] == "Á köldum klaka (Cold Fever) (1994)"
    assert not any("Ã" in title for title in titles.values())


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("1::Café au Lait (1993)::Comedy\n".encode(), "Café au Lait (1993)"),
        ("1::Café au Lait (1993)::Comedy\n".encode("latin-1"), "Café au Lait (1993)"),
        (b"1::Caf\xc3\xa9 (1993)::Comedy\n2::Na\xefve (1993)::Drama\n", "Café (1993)"),
    ],
    ids=["utf8-file", "latin1-file", "utf8-line-in-latin1-file"],
)
def test_legacy_files_decode_each_line_in_its_own_encoding(
    tmp_path: Path, content: bytes, title: str
) -> None:
    directory = write(
        tmp_path / "ml-10m",
        {"ratings.dat": "1::1::4.5::838985046\n", "movies.dat": content},
    )
    items = read_dataset(directory, "ml-10m").items
    assert items["title"][0] == title
    if items.height == 2:
        assert items["title"][1] == "Naïve (1993)"


def test_ml1m_layout_with_real_users_and_movies(tmp_path: Path, ml1m_meta_dir: Path) -> None:
    directory = tmp_path / "ml-1m"
    directory.mkdir()
    for name in ("users.dat", "movies.dat"):  # linked, never copied
        (directory / name).symlink_to(ml1m_meta_dir / name)
    write(directory, {"ratings.dat": "1::1193::5::978300760\n6040::1320::3::956703932\n"})

    tables = read_dataset(directory, "ml-1m")

    assert_canonical(tables)
    assert (tables.users.height, tables.items.height) == (6040, 3883)
    assert tables.interactions.rows() == [(1, 1193, 5.0, 978300760), (6040, 1320, 3.0, 956703932)]
    # Age bucket codes kept; occupation codes mapped to the README's names.
    assert tables.users.row(0) == (1, "F", 1, "K-12 student", "48067")
    alien = tables.items.filter(pl.col("item_id") == 1320).row(0)
    assert alien == (1320, "Alien³ (1992)", 1992, ["Action", "Horror", "Sci-Fi", "Thriller"])
    assert tables.items["year"].null_count() == 0


def test_ml1m_layout(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "ml-1m",
        {
            "ratings.dat": "1::1::5::978300760\n",
            "users.dat": "1::M::25::12::55117\n",
            "movies.dat": "1::Café au Lait (1993)::Comedy|Romance\n".encode("latin-1"),
        },
    )
    tables = read_dataset(directory, "ml-1m")
    assert tables.users.row(0) == (1, "M", 25, "programmer", "55117")
    assert tables.items.row(0) == (1, "Café au Lait (1993)", 1993, ["Comedy", "Romance"])


def test_ml10m_layout_has_half_stars_and_users_from_ratings(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "ml-10m",
        {
            "ratings.dat": "5::1::4.5::838985046\n2::2::0.5::838983525\n5::2::3::838983392\n",
            "movies.dat": "1::Toy Story (1995)::Adventure|Comedy\n2::Pull My Daisy (1958)::(no genres listed)\n",
        },
    )
    tables = read_dataset(directory, "ml-10m")

    assert_canonical(tables)
    assert tables.interactions["rating"].to_list() == [4.5, 0.5, 3.0]
    assert tables.users.rows() == [(2, None, None, None, None), (5, None, None, None, None)]
    assert tables.items["genres"].to_list() == [["Adventure", "Comedy"], []]
    assert tables.sources["users"].derived


def test_csv_layout(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "ml-latest-small",
        {
            "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n3,2,2.5,1306463578\n",
            "movies.csv": (
                "movieId,title,genres\n"
                "1,Toy Story (1995),Adventure|Animation\n"
                '2,"American President, The (1995)",Comedy|Drama|Romance\n'
                '3,"Amélie (Fabuleux destin d\'Amélie Poulain, Le) (2001)",Comedy\n'
                '4,"The ""Great"" Escape (1963) (V)",(no genres listed)\n'
                "5,Babylon 5,Sci-Fi\n"
            ),
        },
    )
    tables = read_dataset(directory, "ml-latest-small")

    assert_canonical(tables)
    assert tables.interactions.rows() == [(1, 1, 4.0, 964982703), (3, 2, 2.5, 1306463578)]
    assert tables.users["user_id"].to_list() == [1, 3]
    assert tables.items.rows() == [
        (1, "Toy Story (1995)", 1995, ["Adventure", "Animation"]),
        (2, "American President, The (1995)", 1995, ["Comedy", "Drama", "Romance"]),
        (3, "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", 2001, ["Comedy"]),
        (4, 'The "Great" Escape (1963) (V)', 1963, []),
        (5, "Babylon 5", None, ["Sci-Fi"]),
    ]
    # CSV rows start on line 2, after the header.
    assert tables.sources["interactions"].locate(0).endswith("ratings.csv:2")


def test_csv_ratings_with_a_blank_last_line_still_parse(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "ml-25m",
        {
            "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n\n",
            "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Comedy\n\n",
        },
    )
    tables = read_dataset(directory, "ml-25m")
    assert (tables.interactions.height, tables.items.height) == (1, 1)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        (U_DATA, "1\t2\t3.5\t4\n"),
        (DAT_RATINGS, "1::2::3.5::4\r\n"),
        (CSV_RATINGS, "userId,movieId,rating,timestamp\n1,2,3.5,4\n\n"),
    ],
    ids=["tab", "double-colon", "csv"],
)
def test_clean_ratings_take_the_typed_fast_path(tmp_path: Path, fmt, text: str) -> None:
    # The fast path is what keeps 25M-row files at seconds; a format change must not lose it.
    path = tmp_path / "ratings"
    path.write_text(text)
    frame = _fast_ratings(path, fmt)
    assert frame is not None and frame.rows() == [(1, 2, 3.5, 4)]


def test_a_bad_line_deep_in_a_file_is_located_without_parsing_the_text(tmp_path: Path) -> None:
    good = "".join(f"{user},{user % 7 + 1},4.0,964982703\n" for user in range(1, 30_001))
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n" + good + "9,9,4.0,nine\n" + good)

    with pytest.raises(DataSourceError) as raised:
        _explain_bad_line(path, CSV_RATINGS)
    assert raised.value.line == 30_002
    assert "timestamp 'nine' is not an integer" in str(raised.value)


def test_line_at_reads_lines_across_block_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"first\nsecond line\n\nfourth")
    assert [_line_at(path, line, block_size=3) for line in (1, 2, 3, 4, 5)] == [
        b"first",
        b"second line",
        b"",
        b"fourth",
        b"",
    ]


# --- bad input: each error names the file and the 1-based line ---------------------------------


def csv_files(**overrides: bytes | str) -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {
        "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,1,3.0,964982704\n",
        "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Heat (1995),Action\n",
    }
    return {**files, **overrides}


@pytest.mark.parametrize(
    ("dataset", "files", "filename", "line", "message"),
    [
        (
            "ml-20m",
            csv_files(
                **{
                    "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\nx7,1,3.0,964982704\n"
                }
            ),
            "ratings.csv",
            3,
            "user_id 'x7' is not an integer",
        ),
        (
            "ml-20m",
            csv_files(**{"ratings.csv": "userId,movieId,rating,timestamp\n1,1,good,964982703\n"}),
            "ratings.csv",
            2,
            "rating 'good' is not a number",
        ),
        (
            "ml-20m",
            csv_files(**{"ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0\n"}),
            "ratings.csv",
            2,
            "expected 4 fields separated by ',', found 3",
        ),
        (
            "ml-20m",
            csv_files(**{"ratings.csv": "userId,movieId,rating,timestamp\n1,1,4,1\n\n2,1,4,1\n"}),
            "ratings.csv",
            3,
            "empty line",
        ),
        (
            "ml-20m",
            csv_files(**{"ratings.csv": "user,movie,rating,timestamp\n1,1,4,1\n"}),
            "ratings.csv",
            1,
            "header is 'user,movie,rating,timestamp'",
        ),
        (
            "ml-20m",
            csv_files(
                **{
                    "movies.csv": b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Ca\xe9 (1995),Drama\n"
                }
            ),
            "movies.csv",
            3,
            "undecodable byte 0xe9: not valid UTF-8",
        ),
        (
            "ml-20m",
            csv_files(**{"movies.csv": "movieId,title,genres\n1,Toy Story (1995),Comedy,Extra\n"}),
            "movies.csv",
            2,
            "expected 3 fields separated by ',', found more",
        ),
        (
            "ml-20m",
            csv_files(**{"ratings.csv": ""}),
            "ratings.csv",
            1,
            "file is empty",
        ),
        (
            "ml-1m",
            {
                "ratings.dat": "1::1::5::978300760\n1::2::4::978300761::9\n",
                "users.dat": "1::F::1::10::48067\n",
                "movies.dat": "1::Toy Story (1995)::Comedy\n",
            },
            "ratings.dat",
            2,
            "expected 4 fields separated by '::', found 5",
        ),
        (
            "ml-1m",
            {
                "ratings.dat": "1::1::5::978300760\n",
                "users.dat": "1::F::1::10::48067\n2::M::25::99::55117\n",
                "movies.dat": "1::Toy Story (1995)::Comedy\n",
            },
            "users.dat",
            2,
            "occupation code 99 is not one of 0..20",
        ),
        (
            "ml-1m",
            {
                "ratings.dat": "1::1::5::978300760\n",
                "users.dat": "1::F::1::10::48067\n",
                "movies.dat": b"1::Toy Story (1995)::Comedy\n2::Bad\x01Title (1995)::Drama\n",
            },
            "movies.dat",
            2,
            "undecodable byte 0x01: a control character",
        ),
        (
            "ml-1m",
            {
                "ratings.dat": "1::1::5::978300760\n",
                "users.dat": "1::F::1::10::48067\n",
                "movies.dat": "1::Café (1995)::Comedy\n".encode()
                + b"2::Caf\xe9 (1995)::Drama\n3::Bad\x01Title (1995)::Drama\n",
            },
            "movies.dat",
            3,
            "undecodable byte 0x01: a control character",
        ),
        (
            "ml-100k",
            {**ml100k_files(), "u.data": "1\t10\t5\t881250949\n1\t10.5\t5\t881250949\n"},
            "u.data",
            2,
            "item_id '10.5' is not an integer",
        ),
        (
            "ml-100k",
            {
                **ml100k_files(),
                "u.item": f"10|Heat (1995)|01-Jan-1995||x|{FLAGS_COMEDY.replace('1', '2')}\n",
            },
            "u.item",
            1,
            "genre flags must be 0 or 1",
        ),
    ],
    ids=[
        "non-integer-id",
        "non-numeric-rating",
        "too-few-fields",
        "blank-line",
        "wrong-header",
        "invalid-utf8-title",
        "too-many-csv-fields",
        "empty-file",
        "too-many-dat-fields",
        "unknown-occupation",
        "control-byte-in-latin1-title",
        "control-byte-after-mixed-encoding-lines",
        "fractional-id",
        "bad-genre-flag",
    ],
)
def test_bad_input_names_file_and_line(
    tmp_path: Path, dataset: str, files: dict, filename: str, line: int, message: str
) -> None:
    directory = write(tmp_path / dataset, files)
    with pytest.raises(DataSourceError) as raised:
        read_dataset(directory, dataset)
    error = raised.value
    assert (error.path.name, error.line) == (filename, line)
    assert message in str(error)
    assert f"{filename}, line {line}:" in str(error)


def test_missing_file_is_named(tmp_path: Path) -> None:
    files = ml100k_files()
    del files["u.user"]
    with pytest.raises(DataSourceError, match=r"u\.user: file not found"):
        read_dataset(write(tmp_path / "ml-100k", files), "ml-100k")


def test_missing_dataset_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="ml-100k folder not found"):
        read_dataset(tmp_path / "nowhere", "ml-100k")


def test_load_raw_reads_the_mirror(tmp_path: Path, movielens_mirror: Path) -> None:
    tables = load_raw(Params(), downloads_dir=tmp_path / "downloads", mirror=movielens_mirror)
    assert tables.interactions.height == 100_000
    assert not (tmp_path / "downloads").exists()  # nothing fetched or extracted


def test_recorded_source_paths_are_the_same_on_every_machine(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    tables = load_raw(Params(), downloads_dir=tmp_path / "downloads", mirror=movielens_mirror)
    assert {name: ref.path for name, ref in tables.sources.items()} == {
        "interactions": "$MOVIELENS_MIRROR/ml-100k/u.data",
        "users": "$MOVIELENS_MIRROR/ml-100k/u.user",
        "items": "$MOVIELENS_MIRROR/ml-100k/u.item",
    }
    # an error names the file where it is on this machine
    assert tables.sources["items"].locate(1) == f"{movielens_mirror}/ml-100k/u.item:2"


def test_load_raw_generates_synthetic_only_when_asked(tmp_path: Path) -> None:
    params = Params.model_validate(
        {
            "data": {
                "dataset": "synthetic",
                "synthetic": {"n_users": 50, "n_items": 40, "n_events": 500},
            }
        }
    )
    tables = load_raw(params, downloads_dir=tmp_path, mirror=None)
    assert tables.interactions.height == 500
    assert tables.sources["interactions"].path == "synthetic://seed=42"


def test_load_raw_never_falls_back_to_synthetic(tmp_path: Path) -> None:
    params = Params.model_validate({"data": {"dataset": "ml-1m"}})
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataSourceError, match="MOVIELENS_MIRROR"):
        load_raw(params, downloads_dir=tmp_path / "downloads", mirror=tmp_path / "mirror")
