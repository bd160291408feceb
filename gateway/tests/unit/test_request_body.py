"""The body bounds measured without parsing: nesting depth and where it is too deep, chunked buffering."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gateway.request_body import MAX_JSON_DEPTH, buffer_chunked, json_depth_problem, nests_deeper_than


def _deep(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        (_deep(64), 64),
        (_deep(65), 65),
        ('{"a": "[[[[[[[[[[", "b": [[1]]}', 3),
        ('{"a": "\\"[[[[[[[[[[\\\\", "b": {"c": "]]]]"}}', 2),
        ('["\\\\\\"{{{{{{{{{{{{{{{{"]', 1),
        (json.dumps({"k": [{"x": [[["]" * 100]]]}] * 50}), 6),
    ],
)
def test_depth_ignores_brackets_inside_strings(text: str, depth: int) -> None:
    raw = text.encode()
    assert nests_deeper_than(raw, depth - 1) is True
    assert nests_deeper_than(raw, depth) is False


def test_where_a_body_is_too_deep() -> None:
    deep = _deep(MAX_JSON_DEPTH)
    assert json_depth_problem(b'{"filter": {"and": []}}') is None
    assert json_depth_problem(('{"sort": "x", "filter": ' + deep + "}").encode()) == "filter"
    assert json_depth_problem(('{"filter": {"and": []}, "sort": ' + deep + "}").encode()) == "sort"
    assert json_depth_problem(('{"a": "{{{{", "data": {"x": ' + deep + "}}").encode()) == "data"
    assert json_depth_problem(("[" + deep + "]").encode()) == ""  # the body itself: not under a key


def test_a_stray_quote_is_not_read_as_depth() -> None:
    # invalid JSON is the parser's to refuse (400), not a depth problem
    assert nests_deeper_than(("[" + "[]," * 70 + '"' + "]").encode(), 10) is False


class _Chunked(io.BytesIO):
    """A server's chunked reader: it ends at the last chunk; counts what was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        part = super().read(size)
        self.taken += len(part)
        return part


def _environ(data: bytes) -> dict[str, Any]:
    return {"wsgi.input": _Chunked(data), "HTTP_TRANSFER_ENCODING": "chunked"}


def test_a_chunked_body_within_the_limit_gets_a_content_length() -> None:
    environ = _environ(b'{"a": 1}')
    assert buffer_chunked(environ, 8) is True
    assert environ["CONTENT_LENGTH"] == "8" and "HTTP_TRANSFER_ENCODING" not in environ
    assert environ["wsgi.input"].read() == b'{"a": 1}'


def test_a_chunked_body_over_the_limit_is_refused_after_limit_plus_one_bytes() -> None:
    environ = _environ(b"x" * 1000)
    stream = environ["wsgi.input"]
    assert buffer_chunked(environ, 100) is False
    assert stream.taken == 101  # no more read than needed to know
    assert environ["wsgi.input"] is stream and "CONTENT_LENGTH" not in environ  # the rest is drained by the 413


def test_a_declared_body_is_left_alone() -> None:
    stream = io.BytesIO(b"abc")
    environ = {"wsgi.input": stream, "CONTENT_LENGTH": "3"}
    assert buffer_chunked(environ, 1) is True and environ["wsgi.input"] is stream
