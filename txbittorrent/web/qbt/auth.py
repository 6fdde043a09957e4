"""``auth/login`` and ``auth/logout``.

Login checks the form's ``username`` and ``password`` as the daemon's own
``/login`` does (``Guard.attempt_login``: scrypt in the thread pool,
failures counted against the client's address).  Success answers ``Ok.``
with an ``SID`` cookie (``HttpOnly; Path=/; SameSite=Strict``, the Guard
session's id); wrong credentials answer ``Fails.`` (200, as qBittorrent
5.0 does); a banned address gets 403 with qBittorrent's message, even
with the right password.  Logout ends the session and expires the cookie.
"""
# twisted.web's Request is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txbittorrent.web.auth import LoginBanned, client_address
from txbittorrent.web.qbt.base import Call, QbtError, endpoint

__all__ = ["login", "logout", "BANNED"]

BANNED = "Your IP address has been banned after too many failed authentication attempts."


@endpoint("auth", "login", changes=True)
def login(call: Call) -> Deferred[str]:
    guard = call.ctx.guard
    address = client_address(call.request)
    if guard.is_banned(address):
        raise QbtError(403, BANNED)
    username, password = call.get("username", ""), call.get("password", "")
    assert username is not None and password is not None
    if not username:
        return succeed("Fails.")

    def answer(session_id: str | None) -> str:
        if session_id is None:
            return "Fails."
        call.request.addCookie(b"SID", session_id.encode("ascii"), path=b"/", httpOnly=True,
                               sameSite="strict")
        return "Ok."

    def banned(failure: Failure) -> str:
        failure.trap(LoginBanned)
        raise QbtError(403, BANNED)

    d = guard.attempt_login(address, username, password)
    return d.addCallbacks(answer, banned)


@endpoint("auth", "logout", changes=True)
def logout(call: Call) -> str:
    sid = call.request.getCookie(b"SID")
    if sid is not None:
        call.ctx.guard.end_session(sid.decode("latin-1"))
    call.request.addCookie(b"SID", b"", path=b"/", httpOnly=True, sameSite="strict",
                           max_age=b"0")
    return ""
