"""Reading params.yaml and `--set` values: YAML's quirks handled (a repeated key is an error,
`1e-3` is a number), every fault told with its file, line and column."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from inttower.config.schema import Params, parse_params
from inttower.errors import ConfigError, ParamsFileError


class _ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a repeated key is an error, not a silent override, and `1e-3`
    is a number as in YAML 1.2 (YAML 1.1 wants `1.0e-3` and would read it as text)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    first = seen[key_node.value].line + 1
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key_node.value!r} given twice (first on line {first})",
                        key_node.start_mark,
                    )
                seen[key_node.value] = key_node.start_mark
        return super().construct_mapping(node, deep)


_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_value(key: str, text: str) -> Any:
    """One `--set key=value` value, read as params.yaml reads values (so `1e-4` is a number)."""
    try:
        return yaml.load(text, Loader=_ParamsLoader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(key, f"--set value {text!r} is not valid YAML: {problem}") from None


def read_params_file(path: Path | str) -> dict[str, Any]:
    """The raw mapping in a params file; bad bytes, bad YAML and an empty file each fail with the
    file and, where there is one, the line and column."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("<file>", f"{path} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        raise ParamsFileError(
            path,
            f"undecodable byte 0x{raw[exc.start]:02x}: expected UTF-8 text",
            line=raw.count(b"\n", 0, exc.start) + 1,
            column=exc.start - line_start + 1,
        ) from None
    try:
        loaded = yaml.load(text, Loader=_ParamsLoader)  # a SafeLoader: builds no objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ParamsFileError(path, f"invalid YAML: {problem}", line, column) from None
    except yaml.reader.ReaderError as exc:  # a control character: `position` counts characters
        before = text[: exc.position]
        raise ParamsFileError(
            path,
            f"invalid YAML: {exc.reason} #x{exc.character:04x}",
            line=before.count("\n") + 1,
            column=exc.position - (before.rfind("\n") + 1) + 1,
        ) from None
    if loaded is None:
        raise ParamsFileError(
            path,
            "file is empty: expected a mapping of parameter sections such as `train:` "
            "(an empty file would silently mean every default)",
        )
    if not isinstance(loaded, dict):
        raise ConfigError("<root>", f"{path} must hold a mapping, not {type(loaded).__name__}")
    return loaded


def load_params(
    path: Path | str = "params.yaml", overrides: dict[str, Any] | None = None
) -> Params:
    """Load params.yaml, apply dotted-key overrides (`{"train.lr": 0.01}`), then validate."""
    raw = read_params_file(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return parse_params(raw)


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, creating intermediate sections."""
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"{part} is not a section")
    node[leaf] = value
