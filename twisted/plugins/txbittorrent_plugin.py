"""The ``twist txbittorrent`` plugin: a dropin naming the code in the
package (``txbittorrent.daemon.tap``).  This directory must not have an
``__init__.py`` (Twisted finds ``twisted/plugins`` on every sys.path entry)."""

from twisted.application.service import ServiceMaker

txbittorrent = ServiceMaker(
    "txbittorrent",
    "txbittorrent.daemon.tap",
    "A BitTorrent client daemon: a Session behind an HTTP API",
    "txbittorrent",
)
