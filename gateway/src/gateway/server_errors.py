"""Problem documents for the requests gunicorn refuses before the app sees them.

gunicorn answers a request line over `limit_request_line` (414), too many or too
large headers (431), a malformed request line or header (400), an unsupported
transfer coding (501) or a crash outside the app (500) itself, through
`gunicorn.util.write_error`, which writes an HTML page. Every other answer of this
API is application/problem+json, so `install()` (called in each worker, see
gateway.server) replaces that writer with `write_problem`.

    gunicorn status -> code
    400 malformed_request, 403 forbidden, 414 uri_too_long, 417 expectation_failed,
    431 headers_too_large, 500 internal_error, 501 unsupported_transfer_coding

No header of the request has been read at that point (not even Accept-Language),
so the messages are in the default language, zh-CN. gunicorn's own text (which
repeats the offending request line) is logged by gunicorn and not echoed.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util

from gateway.i18n import t, title_for

_CODES = {
    400: "malformed_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "unsupported_transfer_coding",
}

LOCALE = "zh-CN"


def problem_bytes(status: int, reason: str, *, limit_request_line: int = 0) -> bytes:
    """The whole HTTP/1.1 response (status line, headers, problem+json body) for a refused request."""
    code = _CODES.get(status, "malformed_request" if 400 <= status < 500 else "internal_error")
    detail = t(code, LOCALE, limit=limit_request_line or "-") if code == "uri_too_long" else t(code, LOCALE)
    body = json.dumps(
        {
            "type": f"urn:crm:problem:{code}",
            "title": title_for(status, LOCALE),
            "status": status,
            "detail": detail,
            "code": code,
            "errors": [],
        },
        ensure_ascii=False,
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json; charset=utf-8\r\n"
        f"Content-Language: {LOCALE}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def install(cfg: Any) -> None:
    """Make gunicorn's workers write problem documents instead of HTML error pages (with `cfg`'s limits)."""
    limit = int(getattr(cfg, "limit_request_line", 0) or 0)

    def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
        # `mesg` is gunicorn's text naming the offending input: logged by gunicorn, not sent back
        util.write_nonblock(sock, problem_bytes(int(status_int), reason, limit_request_line=limit))

    util.write_error = write_problem  # type: ignore[assignment] # the workers call util.write_error
