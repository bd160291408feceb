"""Bounds on a request body, checked before any view reads it.

- Size of a body sent without Content-Length (Transfer-Encoding: chunked): Werkzeug
  caps such a stream at the limit and hands back the first bytes as if they were
  the whole body (a truncated JSON then reads as "malformed"). `buffer_chunked`
  reads up to limit + 1 bytes itself, so an oversized body is refused as 413 like
  a declared one, and a body within the limit continues with a Content-Length.
- Nesting depth of a JSON body: a recursive parser fails on a deep enough body
  (Python's at about 1,000 levels) and nothing deeper than `MAX_JSON_DEPTH` is a
  meaningful input. `json_depth_problem` finds it on the raw bytes without parsing
  and names where it is: a too-deep `filter` is the filter rule every entry point
  applies (crm_schema.limits), anything else is the body's `max_depth`.
"""

from __future__ import annotations

import re
import tempfile
from array import array
from itertools import accumulate
from typing import IO, Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

import crm_schema
from crm_runtime.errors import FieldError, ValidationFailed
from crm_schema.limits import MAX_DEPTH as MAX_FILTER_DEPTH
from gateway.i18n import current_locale, t

MAX_JSON_DEPTH = 64  # objects and arrays; a filter at its limit (8 levels) is 17 deep in its body
_READ = 64 * 1024
_SPOOL = 1024 * 1024  # chunked bodies above this are buffered in a temporary file

_LOCATE_LIMIT = 2 * 1024 * 1024  # a bigger body that is too deep is named as a whole (the key scan is Python)

_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_BRACKETS_IN_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = bytes.maketrans(b'[{]}"', b"\x01\x01\xff\xff\x00")  # as signed bytes: +1 open, -1 close


def check_body(request: Request, limit: int) -> None:
    """Refuse before any view: a chunked body over `limit` bytes (413) and a JSON body nested too deeply (422)."""
    environ = request.environ
    if is_chunked(environ) and not buffer_chunked(environ, limit):
        raise RequestEntityTooLarge()
    length = request.content_length
    if not length or length > limit or not request.is_json:
        return  # nothing to read, or a declared size over the limit: the view's read answers 413
    where = json_depth_problem(request.get_data(cache=True))
    if where is not None:
        raise too_deep(where)


def too_deep(where: str) -> ValidationFailed:
    """The 422 for a body too deep at top-level key `where` ("" = the body): the filter rule for `filter`."""
    if where == "filter":
        text = crm_schema.message("filter_too_deep", current_locale(), max=MAX_FILTER_DEPTH)
        return ValidationFailed([FieldError("filter", "filter_too_deep", text)], text)
    text = t("body_too_deep", max=MAX_JSON_DEPTH)
    return ValidationFailed([FieldError("body", "max_depth", text, {"max": MAX_JSON_DEPTH})], text)


def is_chunked(environ: dict[str, Any]) -> bool:
    """Whether the body arrives without a Content-Length, in chunks."""
    return not environ.get("CONTENT_LENGTH") and "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()


def buffer_chunked(environ: dict[str, Any], limit: int) -> bool:
    """Read a chunked body into a buffer and give it a Content-Length; False (nothing replaced) when over `limit`.

    Over the limit, the rest of the body is still on the socket: the 413 answer drains
    it (gateway.errors) before closing.
    """
    if not is_chunked(environ):
        return True
    stream: IO[bytes] = environ["wsgi.input"]
    buffer = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - handed to the request as its input
    size = 0
    while size <= limit:
        chunk = stream.read(min(_READ, limit + 1 - size))
        if not chunk:
            break
        buffer.write(chunk)
        size += len(chunk)
    if size > limit:
        buffer.close()
        return False
    buffer.seek(0)
    environ["wsgi.input"] = buffer
    environ["CONTENT_LENGTH"] = str(size)
    # Werkzeug ignores a Content-Length next to Transfer-Encoding: chunked; the body is no longer chunked
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return True


def nests_deeper_than(raw: bytes, max_depth: int) -> bool:
    """Whether objects and arrays in a JSON text nest deeper than `max_depth` (brackets in strings do not count)."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False  # not even that many brackets: the common case, decided without a scan
    # All in C: drop escaped backslashes and quotes, keep only brackets and quotes, drop the
    # strings (empty ones first, they are most), then the running sum of +1/-1 is the depth.
    structure = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    structure = _BRACKETS_IN_STRING.sub(b"", structure.replace(b'""', b""))
    return max(accumulate(array("b", structure.translate(_STEPS))), default=0) > max_depth


def _top_level_key(raw: bytes, max_depth: int) -> str | None:
    """The key of the root object under which the nesting first passes `max_depth` (None: not under a key)."""
    in_object = raw.lstrip()[:1] == b"{"
    depth = 0
    last_string = b""
    key: str | None = None
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth == 2 and in_object:
                key = last_string[1:-1].decode("utf-8", "replace")
            if depth > max_depth:
                return key
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 1:
                key = None
        elif depth == 1:
            last_string = token
    return None


def json_depth_problem(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """None when `raw` nests at most `max_depth` deep; else where: the top-level key, or "" for the body itself."""
    if not nests_deeper_than(raw, max_depth):
        return None
    if len(raw) > _LOCATE_LIMIT:
        return ""
    return _top_level_key(raw, max_depth) or ""
