"""The child processes of ``bench.dht``: the DHT's libtorrent nodes and the two measured nodes.

Theory of operation
-------------------
Each role is a function of a JSON ``spec`` run in a process of its own, as
``python -m bench.dht --child ROLE --spec JSON``.  A role writes JSON lines
to its stdout (``emit``) and reads nothing from its stdin (the benchmark's
children get /dev/null there), so the parent steers the long-lived ones with
files.

``lt-nodes`` hosts ``spec["count"]`` libtorrent sessions, each a DHT node on
an explicit 127.0.0.1 port of its own (``LT_DHT_SETTINGS``: no bootstrap
router, IP restrictions off, rate limits out of the way, since every node is
127.0.0.1), and reports {"event": "listening", "ports"}.  Then it runs the
command files the parent writes into ``spec["control"]`` (``cmd-0001.json``,
``cmd-0002.json``, ..., each renamed into place whole) in order, and answers
each with {"event": "done", "cmd": n, ...}:

* ``introduce`` (the ports of every node): each session adds every other
  node (``add_dht_node``: a ping; again every second until known); the
  answer comes once every session knows ``need`` nodes, or after
  ``timeout`` seconds (``settled`` false), with the node counts;
* ``announce`` ([node port, info hash, peer port], ...): the sessions on
  those ports ``dht_announce``; the answer comes at once, and every
  announce_peer a session of the host stores, from then on, is reported as
  {"event": "stored", "info_hash", "port"};
* ``report``: the node counts now.

``tx-lookups`` and ``lt-lookups`` are the measured nodes: a fresh DHT node
(ours: a ``DHTNode`` on a loopback ``DatagramMux``; libtorrent: a session
with ``dht_bootstrap_nodes`` set to the one node), read only (BEP 43) unless
the spec says otherwise, so that it leaves no entry in the DHT's tables when
its process ends.  Each joins through ``spec["bootstrap"]``, lets its table
settle (``Settle``), then runs ``spec["lookups"]`` one after the other and
reports one {"event": "result", ...} line (``_result``).  Per lookup: the
seconds from the call to the end of the lookup, its queries, replies and
timeouts, and the peers found.  Ours come from the ``LookupResult``;
libtorrent's from its alerts (``TraversalLog`` reads its dht_log).

Twisted, libtorrent and txbittorrent are imported inside the roles only, so
the parent stays light.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from typing import Any

from bench._common import LOOPBACK, LT_LOCAL_SETTINGS, own_usage
from bench._download_children import _run_twisted, emit

__all__ = ["CHILDREN", "LT_DHT_SETTINGS", "Settle", "TraversalLog", "command_path"]

LT_DHT_SETTINGS: dict[str, Any] = dict(
    LT_LOCAL_SETTINGS,
    enable_dht=True,
    dht_bootstrap_nodes="",  # never a public router
    dht_restrict_routing_ips=False,
    dht_restrict_search_ips=False,
    dht_block_ratelimit=1_000_000,  # it bans an IP after 5 queries/s by default
    dht_upload_rate_limit=10_000_000,  # 8000 bytes/s by default, for all of 127.0.0.1
)
"""A libtorrent DHT node on loopback (tests/integration/test_dht.py found these)."""
POLL = 0.05
"""Seconds between two looks at a host's alerts and command files."""
LISTEN_TIMEOUT = 10.0
JOIN_TIMEOUT = 20.0
SETTLE_QUIET = 1.0
"""A measured node's table has settled once its size has not changed for this long..."""
SETTLE_MAX = 10.0
"""...or after this many seconds of waiting."""
REINTRODUCE = 1.0
"""Seconds between two rounds of add_dht_node while a host settles."""
LT_ALERT_QUEUE = 100_000
"""The measured libtorrent session's alert queue (its dht_log is verbose)."""


def command_path(control: str, number: int) -> str:
    """Where the parent puts its ``number``-th command for the hosts."""
    return os.path.join(control, f"cmd-{number:04d}.json")


def dht_port() -> int:
    """A port number free now on 127.0.0.1, for both TCP and UDP."""
    while True:
        with socket.socket() as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((LOOPBACK, port))
            except OSError:
                continue
        return port


def _lt_dht_session(lt: Any, **extra: Any) -> tuple[Any, int]:
    """A libtorrent session whose DHT node listens on 127.0.0.1:PORT; and PORT."""
    port = dht_port()
    settings = dict(LT_DHT_SETTINGS, listen_interfaces=f"{LOOPBACK}:{port}")
    settings.update(extra)
    session = lt.session(settings)
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while session.listen_port() != port:
        if time.monotonic() > deadline:
            raise RuntimeError(f"libtorrent did not listen on {LOOPBACK}:{port}")
        time.sleep(0.01)
    return session, port


def _lt_nodes(session: Any) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return int(session.status().dht_nodes)


class Settle:
    """Has a table stopped growing?  ``update(count, now)`` is true once the
    count has stayed the same for ``quiet`` seconds, or ``limit`` seconds
    after the first update (``settled`` then says which)."""

    def __init__(self, quiet: float = SETTLE_QUIET, limit: float = SETTLE_MAX) -> None:
        self.quiet = quiet
        self.limit = limit
        self.count = -1
        self._since = 0.0
        self._first: float | None = None
        self.settled = False

    def update(self, count: int, now: float) -> bool:
        if self._first is None:
            self._first = now
        if count != self.count:
            self.count, self._since = count, now
        self.settled = count > 0 and now - self._since >= self.quiet
        return self.settled or now - self._first >= self.limit


_TRAVERSAL = re.compile(r"\[(\d+)\] (\S+)(.*)")


class TraversalLog:
    """One lookup of libtorrent's, read from its traversal log lines
    (``dht_log_alert``, module ``traversal``): the first ``NEW`` naming
    ``target`` gives the traversal's number, then its ``INVOKE`` (a query
    sent), ``RESPONSE``, ``1ST_TIMEOUT`` (slow: its slot is freed),
    ``TIMEOUT`` (failed) and ``COMPLETED`` lines are counted, each with the
    alert's time."""

    def __init__(self, target_hex: str) -> None:
        self.target = target_hex.lower()
        self.number: str | None = None
        self.started: float | None = None
        self.completed: float | None = None
        self.queries = self.responses = self.slow = self.timeouts = 0

    def line(self, text: str, at: float) -> None:
        match = _TRAVERSAL.match(text)
        if match is None:
            return
        number, word, rest = match.groups()
        if self.number is None:
            if word == "NEW" and f"target: {self.target}" in rest:
                self.number, self.started = number, at
            return
        if number != self.number or self.completed is not None:
            return
        if word == "INVOKE":
            self.queries += 1
        elif word == "RESPONSE":
            self.responses += 1
        elif word == "1ST_TIMEOUT":
            self.slow += 1
        elif word == "TIMEOUT":
            self.timeouts += 1
        elif word == "COMPLETED":
            self.completed = at


# -- the DHT's nodes ----------------------------------------------------------------


class NodeHost:
    """Several libtorrent DHT nodes in one process, steered by command files."""

    def __init__(self, lt: Any, spec: dict[str, Any]) -> None:
        self.lt = lt
        self.control = spec["control"]
        self.sessions = [
            _lt_dht_session(lt, alert_mask=lt.alert_category.dht | lt.alert_category.error)
            for _ in range(spec["count"])]
        self.ports = [port for _, port in self.sessions]
        self.next = 1
        self.settling: dict[str, Any] | None = None

    def counts(self) -> list[int]:
        return [_lt_nodes(session) for session, _ in self.sessions]

    def step(self) -> None:
        """Report what was stored, run the next command, check the settling."""
        for session, port in self.sessions:
            for alert in session.pop_alerts():
                if isinstance(alert, self.lt.dht_announce_alert):
                    emit(event="stored", info_hash=alert.info_hash.to_bytes().hex(),
                         port=alert.port, node=port)
        path = command_path(self.control, self.next)
        if self.settling is None and os.path.exists(path):
            with open(path) as f:
                command = json.load(f)
            self.run(self.next, command)
            self.next += 1
        if self.settling is not None:
            self.check_settled()

    def run(self, number: int, command: dict[str, Any]) -> None:
        do = command["do"]
        if do == "introduce":
            self.settling = dict(command, cmd=number, last=0.0,
                                 deadline=time.monotonic() + command["timeout"])
        elif do == "announce":
            mine = [a for a in command["announces"] if a[0] in self.ports]
            for node_port, info_hash, peer_port in mine:
                session = self.sessions[self.ports.index(node_port)][0]
                session.dht_announce(self.lt.sha1_hash(bytes.fromhex(info_hash)), peer_port, 0)
            emit(event="done", cmd=number, announced=len(mine))
        else:  # report
            emit(event="done", cmd=number, counts=self.counts())

    def check_settled(self) -> None:
        settling = self.settling
        assert settling is not None
        now = time.monotonic()
        counts = self.counts()
        settled = all(count >= settling["need"] for count in counts)
        if settled or now > settling["deadline"]:
            emit(event="done", cmd=settling["cmd"], counts=counts, settled=settled)
            self.settling = None
        elif now - settling["last"] >= REINTRODUCE:
            settling["last"] = now
            for (session, own), count in zip(self.sessions, counts):
                if count < settling["need"]:
                    for port in settling["ports"]:
                        if port != own:
                            session.add_dht_node((LOOPBACK, port))


def child_lt_nodes(spec: dict[str, Any]) -> None:
    """``spec["count"]`` libtorrent DHT nodes; commands from ``spec["control"]``."""
    import libtorrent as lt

    host = NodeHost(lt, spec)
    emit(event="listening", ports=host.ports)
    while True:  # until the parent ends the process
        time.sleep(POLL)
        host.step()


# -- the measured nodes -------------------------------------------------------------


def _lookup(lookup: dict[str, Any], seconds: float | None, walk: float | None, queries: int,
            responses: int, timeouts: int, peers: set[tuple[str, int]], **more: Any
            ) -> dict[str, Any]:
    expected = {(host, port) for host, port in lookup["expected"]}
    return dict(
        info_hash=lookup["info_hash"], seconds=seconds, walk_seconds=walk, queries=queries,
        responses=responses, timeouts=timeouts, peers=len(peers), expected=len(expected),
        found_all=expected <= peers, **more)


def _result(ok: bool, joined: float | None, settle: Settle, lookups: list[dict[str, Any]],
            cpu: float, note: str) -> None:
    emit(event="result", ok=ok and all(r["seconds"] is not None for r in lookups),
         join_seconds=joined, nodes_at_start=settle.count, settled=settle.settled,
         lookups=lookups, cpu_seconds=cpu, note=note)


def child_tx_lookups(spec: dict[str, Any]) -> None:
    """A fresh txbittorrent DHT node: join, settle, the lookups one by one."""

    async def main(reactor: Any) -> None:
        from twisted.internet import defer, task

        from txbittorrent.dht import DHTConfig, DHTNode
        from txbittorrent.net.udp import DatagramMux

        mux = DatagramMux(reactor, port=0, interface4=LOOPBACK, interface6=None)
        config = DHTConfig(
            enabled=True, bootstrap_nodes=((LOOPBACK, spec["bootstrap"]),),
            read_only=spec["read_only"], query_rate=1000.0, query_burst=1000.0)
        node = DHTNode(mux, config, reactor=reactor)
        mux.start()
        settle, lookups, note, joined = Settle(), [], "", None
        start = time.perf_counter()
        node.start()
        try:
            await node.when_ready().addTimeout(JOIN_TIMEOUT, reactor)
            joined = time.perf_counter() - start
            while not settle.update(node.node_count(), time.monotonic()):
                await task.deferLater(reactor, POLL, lambda: None)
            cpu0 = own_usage()["cpu"]
            for lookup in spec["lookups"]:
                called = time.perf_counter()
                d = node.get_peers(bytes.fromhex(lookup["info_hash"]))
                try:
                    result = await d.addTimeout(spec["timeout"], reactor)
                except defer.TimeoutError:
                    lookups.append(_lookup(lookup, None, None, 0, 0, 0, set()))
                    note = f"a lookup took over {spec['timeout']:g} s"
                    continue
                seconds = time.perf_counter() - called
                lookups.append(_lookup(
                    lookup, seconds, result.elapsed, result.queries, result.responses,
                    result.failures, set(result.peers)))
            cpu = own_usage()["cpu"] - cpu0
        except defer.TimeoutError:
            note, cpu = f"did not join in {JOIN_TIMEOUT:g} s", 0.0
        await node.stop()
        await mux.stop()
        _result(joined is not None, joined, settle, lookups, cpu, note)

    _run_twisted(main)


def child_lt_lookups(spec: dict[str, Any]) -> None:
    """A fresh libtorrent DHT node: join, settle, the lookups one by one."""
    import libtorrent as lt

    category = lt.alert_category
    made, began = time.time(), None
    session, _ = _lt_dht_session(
        lt, dht_bootstrap_nodes=f"{LOOPBACK}:{spec['bootstrap']}",
        dht_read_only=spec["read_only"], alert_queue_size=LT_ALERT_QUEUE,
        alert_mask=category.dht | category.dht_operation | category.dht_log | category.error)
    settle, lookups, note, joined = Settle(), [], "", None
    deadline = time.monotonic() + JOIN_TIMEOUT
    while joined is None and time.monotonic() < deadline:
        session.wait_for_alert(int(POLL * 1000))
        for alert in session.pop_alerts():
            if isinstance(alert, lt.dht_log_alert) and began is None and \
                    alert.module == lt.dht_module_t.traversal and " NEW " in alert.log_message():
                began = alert.timestamp().timestamp()  # the join's own lookup begins
            if isinstance(alert, lt.dht_bootstrap_alert):
                joined = alert.timestamp().timestamp() - (began or made)
    if joined is None:
        _result(False, None, settle, [], 0.0, f"did not join in {JOIN_TIMEOUT:g} s")
        return
    while not settle.update(_lt_nodes(session), time.monotonic()):
        time.sleep(POLL)
        session.pop_alerts()
    session.pop_alerts()
    cpu0 = own_usage()["cpu"]
    for lookup in spec["lookups"]:
        target = bytes.fromhex(lookup["info_hash"])
        log, outgoing = TraversalLog(lookup["info_hash"]), 0
        peers: set[tuple[str, int]] = set()
        called = time.time()
        session.dht_get_peers(lt.sha1_hash(target))
        while log.completed is None and time.time() < called + spec["timeout"]:
            session.wait_for_alert(100)
            for alert in session.pop_alerts():
                if isinstance(alert, lt.dht_log_alert):
                    if alert.module == lt.dht_module_t.traversal:
                        log.line(alert.log_message(), alert.timestamp().timestamp())
                elif isinstance(alert, lt.dht_get_peers_reply_alert):
                    if alert.info_hash.to_bytes() == target:
                        peers.update((str(h), int(p)) for h, p in alert.peers())
                elif isinstance(alert, lt.dht_outgoing_get_peers_alert):
                    outgoing += alert.info_hash.to_bytes() == target
                elif isinstance(alert, lt.alerts_dropped_alert):
                    note = "libtorrent dropped alerts: its counts may be short"
        done = log.completed
        if done is None:
            note = f"a lookup took over {spec['timeout']:g} s"
        lookups.append(_lookup(
            lookup, None if done is None else done - called,
            None if done is None or log.started is None else done - log.started,
            log.queries, log.responses, log.timeouts, peers, slow=log.slow,
            outgoing_get_peers=outgoing))
    cpu = own_usage()["cpu"] - cpu0
    _result(True, joined, settle, lookups, cpu, note)
    del session


CHILDREN: dict[str, Callable[[dict[str, Any]], None]] = {
    "lt-nodes": child_lt_nodes,
    "tx-lookups": child_tx_lookups,
    "lt-lookups": child_lt_lookups,
}
