"""Reading what a client sent to the native API: bodies and their values.

Every reader here raises ``ApiError`` (a status and a message) for bad
input and nothing else, so the API answers 400 with a message, never a
traceback.  Nothing here touches the Session, the store or the network.

Bodies: JSON objects of at most ``MAX_BODY`` bytes; a .torrent of at most
``MAX_TORRENT`` bytes (raw ``application/x-bittorrent``, or the ``torrent``
field of a ``multipart/form-data`` form, which Twisted parses into
``request.args`` together with the query string).
"""
# twisted.web's Request is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from twisted.web.server import Request

__all__ = [
    "client_gone",
    "finish_late",
    "ApiError", "MAX_BODY", "MAX_TORRENT", "content_type", "json_body", "raw_body",
    "form_fields", "form_file", "first", "save_path", "labels", "int_list", "flag", "limit",
    "tracker_url",
]

MAX_BODY = 64 * 1024
"""The largest JSON body accepted (bytes)."""
MAX_TORRENT = 10 * 1024 * 1024
"""The largest .torrent accepted, uploaded or fetched (bytes)."""
MAX_LABELS = 32
MAX_LABEL_LENGTH = 100
MAX_URL_LENGTH = 2048

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ApiError(Exception):
    """An answer other than success: its HTTP status and message."""

    def __init__(self, code: int, message: str, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.allow = allow


def client_gone(request: Request) -> bool:
    """Whether a request was answered already or its client went away."""
    return bool(request.finished or getattr(request, "_disconnected", False))


def finish_late(request: Request, data: bytes) -> None:
    """Write a late answer (after NOT_DONE_YET) and finish, unless the
    request was answered or its client has gone."""
    if not client_gone(request):
        request.write(data)
        request.finish()


def content_type(request: Request) -> str:
    """The request's media type, lowercase, without parameters ("" if none)."""
    value = request.getHeader(b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


def raw_body(request: Request, cap: int, what: str) -> bytes:
    """The body, at most ``cap`` bytes (else 400)."""
    content = request.content
    raw = content.read(cap + 1) if content is not None else b""
    if len(raw) > cap:
        raise ApiError(400, f"the {what} is over {cap} bytes")
    return bytes(raw)


def json_body(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, at most ``MAX_BODY`` bytes."""
    raw = raw_body(request, MAX_BODY, "body")
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def form_fields(request: Request) -> dict[str, list[str]]:
    """The query string (and a parsed form's fields, for a form POST) as
    text; the ``torrent`` file field is left out (see ``form_file``)."""
    out: dict[str, list[str]] = {}
    for key, values in (request.args or {}).items():
        name = key.decode("utf-8", "replace")
        if name == "torrent":
            continue
        try:
            out[name] = [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise ApiError(400, f"field {name!r} is not UTF-8") from None
    return out


def form_file(request: Request, name: str) -> bytes | None:
    """The contents of a form's file field (the first), or None."""
    values = (request.args or {}).get(name.encode("ascii"))
    return values[0] if values else None


def first(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The first value of a form field or query argument, or None."""
    values = fields.get(name)
    return values[0] if values else None


# -- values ------------------------------------------------------------------------


def flag(value: Any, name: str, text: bool = True) -> bool:
    """A boolean: JSON true/false, or (``text``: a form's or query's) one of
    true/false/1/0/yes/no/on/off."""
    if isinstance(value, bool):
        return value
    if text and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ApiError(400, f"'{name}' must be true or false")


def save_path(value: Any, download_dir: str) -> str:
    """An absolute save path: a relative one is under ``download_dir``; an
    absolute one is the owner's choice.  "..", NUL or not a str: 400."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "'save_path' must be a non-empty string")
    if "\0" in value:
        raise ApiError(400, "'save_path' holds a NUL character")
    parts = value.replace("\\", "/").split("/")
    if ".." in parts:
        raise ApiError(400, "'save_path' may not contain '..'")
    return os.path.normpath(os.path.join(download_dir, value))


def labels(value: Any, text: bool = False) -> tuple[str, ...]:
    """Labels: a list of non-empty strings (duplicates dropped, order kept);
    with ``text`` (form fields), a string is a comma-separated list."""
    if text and isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "'labels' must be a list of strings")
    out: list[str] = []
    for label in (v.strip() for v in value):
        if not label:
            continue
        if len(label) > MAX_LABEL_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in label):
            raise ApiError(400, f"bad label {label[:40]!r}: at most {MAX_LABEL_LENGTH}"
                                " printable characters")
        if label not in out:
            out.append(label)
    if len(out) > MAX_LABELS:
        raise ApiError(400, f"at most {MAX_LABELS} labels")
    return tuple(out)


def int_list(value: Any, name: str, text: bool = False) -> list[int]:
    """A list of non-negative ints; with ``text`` (form fields), a string is
    a comma-separated list."""
    if text and isinstance(value, str):
        try:
            value = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ApiError(400, f"'{name}' must be a comma-separated list of integers") from None
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise ApiError(400, f"'{name}' must be a list of non-negative integers")
    return value


def limit(value: Any, name: str) -> int | None:
    """A rate limit in bytes/s: an int >= 0 (0 and null: unlimited, None)."""
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise ApiError(400, f"'{name}' must be a non-negative integer (bytes/s) or null")
    return value or None


def tracker_url(value: Any) -> str:
    """A tracker's announce URL: http, https or udp, with a host."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        raise ApiError(400, "'url' must be a tracker URL string")
    if any(ord(c) <= 32 or ord(c) == 127 for c in value):
        raise ApiError(400, "'url' holds spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ApiError(400, f"not a URL: {value[:80]!r}") from None
    if parts.scheme.lower() not in ("http", "https", "udp") or not parts.hostname:
        raise ApiError(400, "a tracker URL is http://, https:// or udp:// with a host")
    return value
