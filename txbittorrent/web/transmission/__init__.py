"""Transmission's RPC over the daemon's Session: mount
``TransmissionResource`` at ``/transmission`` behind a Guard that delegates
``/transmission`` (see ``resource``).  Modules: ``resource`` (the
handshake and authentication), ``rpc`` (context, dispatch, argument
helpers), ``ids`` (torrent ids), ``facts`` and ``fields`` (torrent-get,
pure), ``torrentmethods`` and ``sessionmethods``."""

from txbittorrent.web.transmission.resource import SESSION_ID_HEADER, TransmissionResource

__all__ = ["SESSION_ID_HEADER", "TransmissionResource"]
