"""params.yaml: one typed schema; a wrong key or value fails at start-up with its path."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from inttower.config import load_params, parse_value, validate_cron
from inttower.errors import ConfigError, ParamsFileError

ROOT = Path(__file__).resolve().parent.parent


def test_committed_params_load_with_the_contract_keys() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.dataset == "ml-100k"
    assert params.model.name == "inttower"
    assert params.train.device in {"auto", "cpu", "cuda"}
    assert params.split.train + params.split.valid + params.split.test == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  lr: -1\n", "train.lr"),
        ("train:\n  epoch: 3\n", "train.epoch"),
        ("split:\n  train: 0.9\n  valid: 0.1\n  test: 0.1\n", "split"),
        ("model:\n  name: transformer\n", "model.name"),
        ("data:\n  dataset: ml-5k\n", "data.dataset"),
        ("features:\n  recent_windows: [5, 5]\n", "features.recent_windows"),
        ("features:\n  recent_windows: [0]\n", "features.recent_windows"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert error.value.key == key
    assert key in str(error.value)


def test_overrides_use_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n")
    params = load_params(path, {"train.lr": 0.01, "model.hidden_units": [8, 4]})
    assert params.train.lr == 0.01
    assert params.model.hidden_units == [8, 4]


def test_fingerprint_changes_only_with_the_named_keys() -> None:
    params = load_params(ROOT / "params.yaml")
    changed = params.model_copy(update={"train": params.train.model_copy(update={"lr": 0.5})})
    assert params.fingerprint(["split"]) == changed.fingerprint(["split"])
    assert params.fingerprint(["train"]) != changed.fingerprint(["train"])


# --- the file itself: bytes, syntax, emptiness ------------------------------------------------


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        (b"train:\n  lr: 0.1\n   epochs: 3\n", ":3:10:", "invalid YAML: mapping values are not"),
        (b"train: [1, 2\n", ":2:1:", "invalid YAML: expected ',' or ']'"),
        (b"train:\n\tlr: 0.1\n", ":2:1:", "invalid YAML: found character '\\t'"),
        (b"seed: 42\n# caf\xe9\n", ":2:6:", "undecodable byte 0xe9: expected UTF-8 text"),
        (b"train:\n  lr: 0.1\n  lr: 0.2\n", ":3:3:", "key 'lr' given twice (first on line 2)"),
    ],
    ids=["bad-indent", "unclosed-list", "tab-indent", "latin-1-byte", "repeated-key"],
)
def test_unreadable_params_file_names_file_line_and_column(
    tmp_path: Path, content: bytes, where: str, message: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    with pytest.raises(ParamsFileError) as error:
        load_params(path)
    text = str(error.value)
    assert text.startswith(f"params: {path}{where} ")
    assert message in text
    assert "\n" not in text
    assert isinstance(error.value, ConfigError)  # callers catching ConfigError still do


@pytest.mark.parametrize("content", ["", "# every line a comment\n\n   \n", "---\n"])
def test_empty_params_file_is_an_error_not_all_defaults(tmp_path: Path, content: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(content)
    with pytest.raises(ParamsFileError, match=r"params\.yaml: file is empty: expected a mapping"):
        load_params(path)


# --- values: no silent coercion, nothing non-finite -------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("train:\n  lr: .inf\n", "train.lr", "finite number, got inf"),
        ("train:\n  lr: .nan\n", "train.lr", "finite number, got nan"),
        ("label:\n  drop_ratings: [-.inf]\n", "label.drop_ratings.0", "finite number"),
        ("seed: true\n", "seed", "valid integer, got True (bool)"),
        ("train:\n  lr: true\n", "train.lr", "valid number, got True (bool)"),
        ('train:\n  lr: "0.01"\n', "train.lr", "got the text '0.01': write the number without"),
        ("train:\n  lr: '1e-3'\n", "train.lr", "write it unquoted, as 1.0e-3"),
        ("seed: '42'\n", "seed", "valid integer, got the text '42'"),
        ("train:\n  epochs: 2.5\n", "train.epochs", "valid integer, got 2.5 (float)"),
        ("train:\n  epochs: 2.0\n", "train.epochs", "valid integer, got 2.0 (float)"),
        ("features:\n  recent_windows: [5.5]\n", "features.recent_windows.0", "valid integer"),
        ("features:\n  residuals: 1\n", "features.residuals", "valid boolean, got 1 (int)"),
        ("features:\n  residuals: 'true'\n", "features.residuals", "valid boolean"),
        ("model:\n  name: 1\n", "model.name", "got 1 (int)"),
        ("train:\n", "train", "valid dictionary"),
    ],
)
def test_wrong_types_are_never_coerced(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert error.value.key == key
    assert str(error.value).startswith(f"params: {key}: ")
    assert message in str(error.value)


def test_ints_still_count_as_floats_and_exponents_read_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "label:\n  drop_ratings: [3]\n  positive_threshold: 4\n"
        "train:\n  lr: 1e-3\n  weight_decay: 0\n"
        "features:\n  recent_windows: []\n"
    )
    params = load_params(path)
    assert params.label.drop_ratings == [3.0]
    assert params.label.positive_threshold == 4.0
    assert params.train.lr == pytest.approx(1e-3)
    assert params.features.recent_windows == []


def test_cli_style_overrides_still_work_for_numbers(tmp_path: Path) -> None:
    # `--set` values are parsed with yaml.safe_load (inttower/cli.py) or with parse_value.
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n")
    raw = {"train.lr": "0.01", "train.epochs": "3", "label.positive_threshold": "4"}
    for values in (
        {key: yaml.safe_load(text) for key, text in raw.items()},
        {key: parse_value(key, text) for key, text in raw.items()},
    ):
        params = load_params(path, {**values, "features.residuals": False})
        assert (params.train.lr, params.train.epochs) == (0.01, 3)
        assert params.label.positive_threshold == 4.0
    assert parse_value("train.lr", "1e-4") == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match=r"params: train\.lr: --set value '\[1' is not valid"):
        parse_value("train.lr", "[1")


def test_quoted_override_is_rejected_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"^params: train\.lr: .*write it unquoted, as 1\.0e-4"):
        load_params(path, {"train.lr": yaml.safe_load("1e-4")})  # YAML 1.1 reads it as text


# --- schedule: a cron Dagster accepts, a real time zone ---------------------------------------

VALID_CRONS = [
    "0 3 * * 1",
    "*/15 * * * *",
    "0,30 8-18 * * mon-fri",
    "0 3 1-31/2 * *",
    "0 0 * jan-dec/3 *",
    "5 4 * JAN,Jul sun",
    "0 0 29 2 *",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "00 03 * * 01",
    " 0 3 * * 1 ",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "@midnight",
]
INVALID_CRONS = [
    "",
    "* * * *",
    "* * * * * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 32 * *",
    "0 0 * 0 *",
    "0 0 * 13 *",
    "0 0 * * 8",
    "0 0 30 2 *",
    "0 0 31 2 *",
    "*/0 * * * *",
    "0 3 * * 1-",
    "0 3 * * ,1",
    "0 0 1W * *",
    "0 0 * * 5L",
    "0 0 -1 * *",
    "H * * * *",
    "0 0 * * monday",
    "0 0 * mon *",
    "0 0 * * jan",
    "0 0 * * ²",
    "@reboot",
    "@every 5m",
    # Dagster accepts these, but they do not mean what they seem to: stricter is fine.
    "5-1 * * * *",
    "*/90 * * * *",
    "0 0 31 4 *",
    "0 0 L * *",
]


@pytest.mark.parametrize("cron", VALID_CRONS)
def test_standard_crons_load(tmp_path: Path, cron: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"schedule:\n  cron: {cron!r}\n")
    assert load_params(path).schedule.cron == cron


@pytest.mark.parametrize("cron", INVALID_CRONS)
def test_bad_crons_fail_with_the_key(tmp_path: Path, cron: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"schedule:\n  cron: {cron!r}\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert error.value.key == "schedule.cron"
    assert str(error.value).startswith("params: schedule.cron: ")


def _dagster_accepts(cron: str) -> bool:
    """Whether Dagster's public API takes `cron` as a schedule's cron (it refuses at definition)."""
    import dagster as dg

    @dg.op
    def nothing() -> None:
        pass

    @dg.job
    def job() -> None:
        nothing()

    try:
        dg.ScheduleDefinition(name="probe", cron_schedule=cron, job=job)
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def test_our_cron_check_never_accepts_what_dagster_rejects() -> None:
    for cron in VALID_CRONS:
        assert _dagster_accepts(cron), cron
    for cron in INVALID_CRONS:
        with pytest.raises(ValueError):
            validate_cron(cron)
    # Whatever mix of these atoms we accept, Dagster accepts too (a fixed sample, for speed).
    tricky = ["", "5-1", "L", "?", "1#2", "3/4", "*/0", "60", "0-7", "sun", "jan", "*/90"]
    pools = [
        ["*", "*/15", "0", "59", "0,30", "10-50/20"],
        ["*", "*/6", "0", "23", "8-18", "1,13"],
        ["*", "*/10", "1", "29", "30", "31", "1-7", "15,31"],
        ["*", "*/3", "1", "2", "12", "feb", "Apr,Jun", "jan-dec/2"],
        ["*", "*/2", "0", "7", "1-5", "mon-fri", "Sun,Sat", "sat"],
    ]
    draw = random.Random(0)
    accepted = 0
    for _ in range(2_000):
        fields = [draw.choice(tricky if draw.random() < 0.15 else pool) for pool in pools]
        cron = " ".join(fields[: draw.choice([4, 5, 5, 5, 5, 5])])
        try:
            validate_cron(cron)
        except ValueError:
            continue
        accepted += 1
        assert _dagster_accepts(cron), cron
    assert accepted > 500  # the sample does reach valid crons


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 25 * * *", "hour '25': 25 is outside 0-23"),
        ("0 3 * * fri-mon", "day of week 'fri-mon': the range runs backwards"),
        ("0 0 30 2 *", "day of month 30 never occurs in 2"),
        ("0 3 * * 1 2", "has 6 fields: expected 5"),
        ("@reboot", "unknown shortcut '@reboot'"),
    ],
)
def test_cron_errors_say_which_field(cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_cron(cron)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "utc", "", "../etc/passwd", "Europe"])
def test_unknown_time_zone_names_key_and_value(tmp_path: Path, zone: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"schedule:\n  timezone: {zone!r}\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert error.value.key == "schedule.timezone"
    assert f"unknown time zone {zone!r}" in str(error.value)


def test_known_time_zone_loads(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("schedule:\n  cron: '30 6 * * mon-fri'\n  timezone: Europe/Berlin\n")
    assert load_params(path).schedule.timezone == "Europe/Berlin"
