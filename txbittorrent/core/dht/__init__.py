"""The sans-I/O core of a mainline DHT node (BEP 5, with BEP 32, 42 and 43).

Each module is one concept; none reads a clock, touches a socket or draws from
global randomness (the caller passes ``now`` and a ``random.Random``):

* ``krpc``: the KRPC codec (messages as frozen dataclasses, strict decoding);
* ``node_id``: BEP 42 node ids (crc32c of the masked address);
* ``routing``: the routing table of one address family (k-buckets that split);
* ``tokens``: the announce_peer tokens we hand out and check;
* ``storage``: the peers announced to us, bounded and expiring;
* ``ratelimit``: a token bucket per source address for incoming queries;
* ``transactions``: our outstanding queries by transaction id;
* ``lookup``: the iterative find_node / get_peers state machine.

The Twisted adapter (``txbittorrent.dht``) owns the socket and the timers and
wires these together.
"""
