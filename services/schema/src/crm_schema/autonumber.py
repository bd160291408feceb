"""Auto numbers: render a pattern such as "HT-{YYYY}{MM}-{0000}" for one sequence value."""

from __future__ import annotations

import re
from datetime import datetime

_TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|0+)\}")


def pattern_problem(pattern: object) -> str | None:
    """Why `pattern` is not a usable auto-number pattern, or None when it is."""
    if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 100:
        return "empty or too long"
    if len(re.findall(r"\{0+\}", pattern)) != 1:
        return "needs exactly one sequence placeholder such as {0000}"
    leftover = _TOKEN.sub("", pattern)
    if "{" in leftover or "}" in leftover:
        return "unknown placeholder"
    return None


def render_auto_number(pattern: str, seq: int, now_local: datetime) -> str:
    """The number for sequence `seq` at local time `now_local`; {0000} pads to its width (never truncates)."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "YYYY":
            return f"{now_local.year:04d}"
        if token == "YY":
            return f"{now_local.year % 100:02d}"
        if token == "MM":
            return f"{now_local.month:02d}"
        if token == "DD":
            return f"{now_local.day:02d}"
        return str(seq).zfill(len(token))

    return _TOKEN.sub(fill, pattern)


def sequence_scope(pattern: str, now_local: datetime) -> str:
    """The counter's scope key: the pattern with its date parts filled, so "{YYYY}{MM}" restarts monthly."""
    return _TOKEN.sub(
        lambda m: m.group(0) if m.group(1).startswith("0") else render_auto_number(m.group(0), 0, now_local), pattern
    )
