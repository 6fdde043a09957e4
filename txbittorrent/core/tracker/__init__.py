"""Trackers without I/O: HTTP (BEP 3, 23) and UDP (BEP 15) codecs, BEP 12 tiers,
and the registry of a tracker server."""
