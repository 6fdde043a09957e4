"""Trackers over Twisted: the HTTP and UDP clients, the announcer, and a small server."""
