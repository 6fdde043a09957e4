"""URLs handed to treq: ``treq_url``.

treq turns a URL string into a URI with hyperlink, whose IRI-to-URI step
runs IDNA over the host and refuses an IPv6 literal (``http://[::1]:6969/``:
"Codepoint U+003A not allowed").  ``treq_url`` gives treq such a URL as a
hyperlink ``EncodedURL`` that skips that step (it is ASCII already), and
any other URL as it is, so every fetch (trackers, .torrent URLs) reaches
``[::1]`` and other IPv6 hosts.  hyperlink is imported on the first such
URL only: the command line imports this module to download from peers too.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import urlsplit

__all__ = ["treq_url"]


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
    """What to give treq for ``url``: itself, or for an IPv6-literal host an
    ``EncodedURL`` that treq sends as it is."""
    netloc = urlsplit(url).netloc
    if netloc.rpartition("@")[2].startswith("[") and url.isascii():
        return _ascii_uri_type().from_text(url)
    return url
