"""URLs handed to treq: ``treq_url``.

treq turns a URL string into a URI with hyperlink, whose IRI-to-URI step
runs IDNA (UTS 46) over the host.  That step refuses an IPv6 literal
(``http://[::1]:6969/``: "Codepoint U+003A not allowed"), and its first use
in a process loads ``idna.uts46data``, a table that took 50 ms to import
here: on the way to a download's first peers when they come from an HTTP
tracker.  A URL that is already a URI (ASCII, only the characters RFC 3986
allows, as every URL the announce codec makes is) has nothing for that step
to do, so ``treq_url`` gives treq such a URL as a hyperlink ``EncodedURL``
that skips it (IPv6 literals included), and any other URL as it is, for
treq to convert.  hyperlink is imported on the first call only.
"""

from __future__ import annotations

import string
from functools import cache
from typing import Any

__all__ = ["treq_url"]

URI_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
"""RFC 3986's unreserved and reserved characters, and the percent sign."""


@cache
def _ascii_uri_type() -> Any:
    """The ``EncodedURL`` subclass whose IRI-to-URI step is a no-op."""
    from hyperlink import EncodedURL

    class _AsciiURI(EncodedURL):
        """A URL already in URI form: treq's IRI-to-URI step is skipped."""

        def to_uri(self, *args: Any, **kwargs: Any) -> Any:
            return self

    return _AsciiURI


def treq_url(url: str) -> Any:
    """What to give treq for ``url``: an ``EncodedURL`` that treq sends as
    it is for a URL that is a URI already, else ``url`` itself."""
    if url.isascii() and URI_CHARACTERS.issuperset(url):
        return _ascii_uri_type().from_text(url)
    return url
