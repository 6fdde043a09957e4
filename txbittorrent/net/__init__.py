"""Sockets over Twisted shared by a whole session: one UDP socket per family and its demux."""
