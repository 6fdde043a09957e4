"""The peer wire protocol (BEP 3, 6, 10): messages, their codec, the events a
peer's messages turn into, and ``PeerSession``, the rules of one connection."""
