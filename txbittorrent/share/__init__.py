"""``txbittorrent share DIR``: .torrent files made on demand for what a directory
holds, seeded from one Session and tracked by an embedded tracker.

``tree`` is the blocking file-system side (safe paths, snapshots, hashing,
the on-disk cache), ``catalog`` the per-path jobs and what is seeded,
``resource`` the HTTP side and ``service`` puts them together."""
