"""The daemon: ``txbittorrent serve``, a long-lived Session behind an HTTP API.

``store`` holds the daemon's persistent state (torrents, settings,
credentials) in one SQLite file.
"""
