"""Sockets over Twisted shared by a whole session: one UDP socket per address family and its demultiplexer."""
