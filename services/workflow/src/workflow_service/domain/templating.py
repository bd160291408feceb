"""Text templates of actions and durations of triggers.

A template is text with placeholders in braces, filled from the record that
triggered the automation:

* `{客户名称}` or `{customer_name}`: a field by its label (either language) or key;
* `{id}`, `{owner_id}`, `{department_id}`, `{created_by}`, `{form_id}`: the record's system values;
* `{now}`, `{now+3d}`, `{now-1h}`: the run's time, moved by a duration (ISO UTC text);
* `{<field>+1d}`: a date/datetime field moved by a duration;
* `{<name>:date}`: the value as a date in the tenant's time zone (a datetime field into a date field);
* `{<name>:time}`: a date-time as the tenant reads it ("2026-12-08 10:30", in the tenant's time zone);
* `{steps.<n>.id}`: the id of the record an earlier action of the same run created;
* `{{` and `}}` stand for literal braces.

A value that is exactly one placeholder keeps the value's own JSON type (a
relation id list, a number, an empty value as null); otherwise the pieces are
joined as text. Templates are checked at save (`placeholders`), so a run never
meets an unknown name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

_DURATION = re.compile(r"^\s*([+-]?)\s*(\d{1,6})\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_SHIFT = re.compile(r"^(.*?)([+-]\s*\d{1,6}\s*(?:m|min|h|d|w))$", re.IGNORECASE)
SYSTEM_NAMES = frozenset({"id", "owner_id", "department_id", "created_by", "form_id", "created_at", "updated_at"})
MAX_TEMPLATE = 2000


def parse_duration(text: Any) -> int | None:
    """Seconds of "30m", "1h", "3d", "2w" (negative with "-"); None when it does not parse."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text)
    if match is None:
        return None
    sign, amount, unit = match.groups()
    seconds = int(amount) * _UNIT_SECONDS[unit.lower()]
    return -seconds if sign == "-" else seconds


def format_datetime(moment: datetime) -> str:
    """ISO UTC text with a Z, as the record service outputs datetimes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_moment(value: Any, tz: tzinfo) -> datetime | None:
    """A datetime or date value (API text) as an aware datetime; a date is its midnight in `tz`."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=tz)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


class TemplateError(ValueError):
    """A template that does not parse (an unbalanced brace)."""


@dataclass(frozen=True)
class Placeholder:
    """One `{...}` of a template: the name it reads, a shift in seconds, an output format."""

    name: str
    shift: int = 0
    as_date: bool = False
    as_time: bool = False


def _placeholder(body: str) -> Placeholder:
    text = body.strip()
    as_date = as_time = False
    if text.endswith(":date"):
        as_date, text = True, text[: -len(":date")].strip()
    elif text.endswith(":time"):
        as_time, text = True, text[: -len(":time")].strip()
    shift = 0
    match = _SHIFT.match(text)
    if match is not None and match.group(1).strip():
        seconds = parse_duration(match.group(2).replace(" ", ""))
        if seconds is not None:
            text, shift = match.group(1).strip(), seconds
    if not text:
        raise TemplateError("{}")
    return Placeholder(text, shift, as_date, as_time)


def parts(template: str) -> list[str | Placeholder]:
    """The literal pieces and placeholders of a template; TemplateError when a brace is unbalanced."""
    out: list[str | Placeholder] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(template[pos : match.start()])
        token = match.group(0)
        if token == "{{":
            out.append("{")
        elif token == "}}":
            out.append("}")
        elif match.group(1) is None:
            raise TemplateError(f"unbalanced “{token}” at {match.start() + 1}")
        else:
            out.append(_placeholder(match.group(1)))
        pos = match.end()
    out.append(template[pos:])
    return [p for p in out if p != ""]


def placeholders(template: str) -> list[Placeholder]:
    """The placeholders of a template (for checks at save)."""
    return [p for p in parts(template) if isinstance(p, Placeholder)]


def field_key_of(name: str, fields: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The key of the field a placeholder names (by key, or by its label in any language)."""
    if name in fields:
        return name
    for key, definition in fields.items():
        label = definition.get("label")
        labels = label.values() if isinstance(label, Mapping) else [label]
        if name in [str(x) for x in labels if x]:
            return key
    return None


def known_name(name: str, fields: Mapping[str, Mapping[str, Any]], steps: int) -> bool:
    """True when a placeholder name can be filled: a field, a system value, now, or an earlier step's id."""
    if name in SYSTEM_NAMES or name == "now":
        return True
    if name.startswith("steps."):
        pieces = name.split(".")
        return len(pieces) == 3 and pieces[1].isdigit() and int(pieces[1]) < steps and pieces[2] == "id"
    return field_key_of(name, fields) is not None


@dataclass(frozen=True)
class Scope:
    """What a template is filled from: the record (API shape), its form's fields, earlier steps, the time."""

    record: Mapping[str, Any]
    fields: Mapping[str, Mapping[str, Any]]
    now: datetime
    tz: tzinfo
    steps: tuple[Mapping[str, Any], ...] = ()

    def value(self, name: str) -> Any:
        """The raw value a placeholder name stands for (None when empty)."""
        if name == "now":
            return format_datetime(self.now)
        if name in SYSTEM_NAMES:
            return self.record.get(name)
        if name.startswith("steps."):
            index = int(name.split(".")[1])
            return self.steps[index].get("id") if index < len(self.steps) else None
        key = field_key_of(name, self.fields)
        if key is None:
            return None
        return (self.record.get("data") or {}).get(key)


def _shifted(value: Any, seconds: int, tz: tzinfo) -> Any:
    moment = parse_moment(value, tz)
    if moment is None:
        return None
    return format_datetime(moment + timedelta(seconds=seconds))


def _as_date(value: Any, tz: tzinfo) -> Any:
    moment = parse_moment(value, tz)
    return moment.astimezone(tz).date().isoformat() if moment is not None else None


def _as_time(value: Any, tz: tzinfo) -> Any:
    moment = parse_moment(value, tz)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment is not None else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Mapping):
        # a displayed relation/user ({id, display}) or a region ({province, city})
        if "display" in value:
            return str(value.get("display") or "")
        return "".join(str(v) for v in value.values() if isinstance(v, str))
    if isinstance(value, list):
        return "、".join(_text(v) for v in value)
    return str(value)


def _plain(value: Any) -> Any:
    """A relation shown as {id, display} goes into another record as its id."""
    if isinstance(value, Mapping) and "id" in value:
        return value["id"]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render_value(template: Any, scope: Scope) -> Any:
    """A template filled in; non-text values (numbers, booleans, lists) pass through unchanged."""
    if not isinstance(template, str):
        return template
    pieces = parts(template)
    values: list[Any] = []
    for piece in pieces:
        if isinstance(piece, str):
            values.append(piece)
            continue
        value = scope.value(piece.name)
        if piece.shift:
            value = _shifted(value, piece.shift, scope.tz)
        if piece.as_date:
            value = _as_date(value, scope.tz)
        if piece.as_time:
            value = _as_time(value, scope.tz)
        values.append(_plain(value) if len(pieces) == 1 else value)
    if len(pieces) == 1 and isinstance(pieces[0], Placeholder):
        value = values[0]
        return None if value in ("", []) else value
    return "".join(v if isinstance(v, str) else _text(v) for v in values)
