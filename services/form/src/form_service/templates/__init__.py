"""Built-in app templates, kept as JSON data beside this module (e.g. `crm.json`)."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def load_template(name: str) -> dict[str, Any] | None:
    """The template `name` ({"app": {...}, "forms": [...]}), or None when there is none."""
    if not _NAME.fullmatch(name):
        return None
    path = resources.files(__name__) / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
