"""The sans-I/O core of a mainline DHT node (BEP 5, with BEP 32, 42 and 43).

Each module is one concept; none reads a clock, touches a socket or draws from
global randomness (the caller passes ``now`` and a ``random.Random``):

* ``krpc``: the KRPC codec (messages as frozen dataclasses, strict decoding);
* ``node_id``: BEP 42 node ids (crc32c of the masked address), external
  address votes;
* ``routing``: the routing table of one address family (k-buckets that split);
* ``tokens``: the announce_peer tokens we hand out and check;
* ``storage``: the peers announced to us, bounded and expiring;
* ``ratelimit``: a token bucket per source address for incoming datagrams;
* ``transactions``: our outstanding queries by transaction id, with deadlines;
* ``lookup``: the iterative find_node / get_peers state machine;
* ``responder``: the answer to each incoming query.

How an adapter wires them (one socket per family; two of each per-family
object when IPv6 runs too; one ``Tokens`` and one ``Transactions`` shared):

* datagram ``(data, (host, port))`` in: drop it unless
  ``ratelimit.allow(host, now)``; ``krpc.decode_message(data)``; on
  ``KRPCError`` send ``encode_message(e.reply())`` if ``e.reply()`` is not
  ``None``, else drop;
* a query: ``responder.answer(query, source, now)``, send the result unless
  ``None`` (a read-only node answers nothing);
* a response or error: ``transactions.match(t, source)``; ``None`` means
  unsolicited (drop).  For a response, ``table.node_responded(r.node_id,
  source, now)`` (optionally only if ``node_id.is_valid_node_id``), vote
  ``r.ip`` into ``ExternalAddressVotes``, and hand it to whatever asked
  (``lookup.responded``); for an error, ``lookup.error_received``;
* timers: at ``transactions.next_deadline`` call ``expire(now)`` and for each
  expired query ``table.node_failed(node_id, now)`` and
  ``lookup.timed_out(address, now)``; at each lookup's ``next_deadline``
  call ``lookup.tick(now)``; every few seconds send ``table.pings_due(now)``
  as pings, start a find_node ``Lookup`` for each ``table.refresh_due(now,
  rng)``, and call ``store.expire(now)``;
* queries out: everything a lookup returns (``LookupQuery``) goes through
  ``transactions.add(q.address, context, now, deadline=q.deadline)`` and
  ``lookup.make_query(pending.transaction_id, own_id, read_only=...)``;
* bootstrap: when the table is empty, a find_node ``Lookup`` for our own id
  with ``bootstrap=`` the router addresses; persistence: ``table.to_state()``
  and ``RoutingTable.from_state``;
* announcing: a get_peers ``Lookup`` seeded with ``table.closest(info_hash,
  now)``; its ``peers`` go to the swarm, and once ``done``, an
  ``AnnouncePeerQuery`` with each of ``announce_targets()``'s tokens.
"""
