"""`schedule.cron`: a standard 5-field cron (or an @daily-style shortcut), never wider than what
Dagster's schedules accept, checked at load so a bad schedule fails there and not in Dagster."""

from __future__ import annotations

CRON_SHORTCUTS = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, highest that `*` stands for (7 is Sunday again), names from 0 or 1
_CRON_FIELDS = (
    ("minute", 0, 59, 59, ()),
    ("hour", 0, 23, 23, ()),
    ("day of month", 1, 31, 31, ()),
    ("month", 1, 12, 12, _MONTH_NAMES),
    ("day of week", 0, 7, 6, _WEEKDAY_NAMES),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def validate_cron(expression: str) -> str:
    """`expression` if it is a standard cron (5 fields or an @daily-style shortcut); else a
    ValueError saying which field is wrong, so a bad schedule fails at load, not in Dagster."""
    if expression in CRON_SHORTCUTS:
        return expression
    fields = expression.split()
    if expression.startswith("@"):
        raise ValueError(
            f"unknown shortcut {expression!r}: expected one of {', '.join(CRON_SHORTCUTS)}"
        )
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields: expected 5 (minute hour day-of-month "
            f"month day-of-week, e.g. '0 3 * * 1') or one of {', '.join(CRON_SHORTCUTS)}"
        )
    chosen = [_cron_field(text, *spec) for text, spec in zip(fields, _CRON_FIELDS, strict=True)]
    days, months = chosen[2], chosen[3]
    if min(days) > max(_DAYS_IN_MONTH[month - 1] for month in months):
        raise ValueError(f"{expression!r}: day of month {fields[2]} never occurs in {fields[3]}")
    return expression


def _cron_field(
    text: str, name: str, low: int, high: int, star_high: int, names: tuple[str, ...]
) -> set[int]:
    """The values one cron field selects: `*`, `n`, `a-b`, `*/n`, `a-b/n`, comma-separated."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if base == "*":
            start, stop = low, star_high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, stop = (
                _cron_value(part, item, name, low, high, names) for part in (first, last)
            )
            if start > stop:
                raise ValueError(f"{name} {item!r}: the range runs backwards")
        elif slash:
            raise ValueError(f"{name} {item!r}: a step needs `*` or a range, e.g. {base}-{high}/n")
        else:
            start = stop = _cron_value(base, item, name, low, high, names)
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()):
                raise ValueError(f"{name} {item!r}: the step {step_text!r} is not a number")
            step = int(step_text)
            if not 1 <= step <= max(stop - start, 1):
                raise ValueError(
                    f"{name} {item!r}: the step must be between 1 and {max(stop - start, 1)}"
                )
        values.update(range(start, stop + 1, step))
    return values


def _cron_value(
    text: str, item: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> int:
    if text.isascii() and text.isdigit():
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"{name} {item!r}: {value} is outside {low}-{high}")
        return value
    if text.lower() in names:
        return names.index(text.lower()) + (1 if name == "month" else 0)
    expected = f"a number {low}-{high}" + (f" or a name such as {names[1]!r}" if names else "")
    raise ValueError(f"{name} {item!r}: {text!r} is not {expected}")
