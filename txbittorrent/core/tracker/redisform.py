"""How the tracker's swarms are laid out in Redis: keys, members, scripts, replies.

Theory of operation
-------------------
``tracker.redisswarms.RedisSwarms`` keeps the swarms of several tracker
processes in one Redis; this module is its sans-I/O half: the key names,
the encoding of a peer as a sorted-set member, the two Lua scripts (an
announce and a scrape, each one atomic round trip) and the reading of their
replies into ``AnnounceResult`` and ``ScrapeStats``.  It reads no clock and
opens no socket; the caller passes ``now`` and the rng that picks peers.

Layout (``<p>`` the prefix, ``<ih>`` the info hash in hex, ``<f>`` ``4`` or ``6``):

* ``<p>:<ih>:<f>:seeders`` and ``<p>:<ih>:<f>:leechers``: sorted sets, member
  the compact address (BEP 23/7: 4 or 16 bytes of IP, 2 of port) followed
  by the 20-byte ``peer_id``, score the time of the peer's last announce;
* ``<p>:<ih>:ids``: hash ``peer_id`` -> family, role (``s``/``l``), ``key``
  (8 hex digits or ``--------``) and member: one record per ``peer_id``, and
  the ``key`` rule across processes; ``<p>:<ih>:addrs``: hash compact
  address -> ``peer_id``: one record per (ip, port);
* ``<p>:completed`` (hash info hash -> completed downloads), ``<p>:swarms``
  (sorted set of info hashes by last announce: the index of tracked swarms,
  for the cap, full scrape, the sweep and the stats API) and
  ``<p>:counters`` (hash: ``announces``, ``evicted``);
* the recorder's journal (``tracker.redisupkeep``): ``<p>:journal:seen``
  (info hash -> first announce), ``<p>:journal:completed`` (info hash ->
  completions not yet in a database) and ``<p>:recording`` (a flag with a
  TTL: announces journal only while a recorder drains); ``<p>:totals``,
  ``<p>:sweep-lock`` and ``<p>:peers-full`` of the sweep.

Decisions
---------
* Expiry is by score: each announce first removes its swarm's members last
  seen at or before ``now - peer_timeout`` (``ZREMRANGEBYSCORE``, with their
  ``ids``/``addrs`` entries); a scrape counts only members newer than that
  (``ZCOUNT``, read-only); the swarm's keys get a TTL of ``peer_timeout`` at
  each announce, so a swarm nobody announces to vanishes by itself; the
  sweep trims ``<p>:swarms``.  No process owns a swarm: every process's
  announces clean what they touch.
* chihaya's Redis storage keeps hashes (peer -> last announce) per info hash,
  family and role, and a periodic collector that reads every swarm; sorted
  sets make expiry a range delete, and one script per announce makes it
  atomic and one round trip instead of several commands.
* The scripts return candidates (``ZRANDMEMBER`` of each allowed set, at
  most ``numwant + 1`` each); the final choice uses the caller's rng, so
  randomness stays injected.  Seeders get no seeders; the requester is
  never among its own peers.
* The same completed-download rule as ``TrackerState`` (a ``completed`` from
  a peer not known as a seeder, or ``left == 0`` from a known leecher);
  counted once, inside the script, whichever process took the announce.
* Bounded: ``<p>:swarms`` holds at most ``max_swarms`` info hashes.  A new
  one past the cap evicts the least recently announced (its six keys and
  its ``<p>:completed`` entry deleted in the same script), or is refused
  with ``evict_swarms=False``; so ``<p>:completed`` and the journal never
  hold more than ``max_swarms`` info hashes either.  One announce evicts
  at most 64 swarms (a cap lowered at a restart is reached over the next
  new swarms, never in one long script); processes sharing a Redis should
  share ``max_swarms`` (each announce applies its process's).  A swarm leaves the
  index when its last peer stops with no completed download (as
  ``TrackerState`` forgets it), and at the sweep when no peer is live and
  none completed.  ``max_total_peers`` is enforced from the sweep's count:
  while the last sweep found that many live peers or more
  (``<p>:peers-full`` exists), announces record no new peer (known ones
  go on), as ``TrackerState`` does; new peers between two sweeps can
  overshoot it.  The eviction builds the victim's key names in the
  script from the prefix: fine on one Redis server, not on a cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from txbittorrent.core.tracker.announce import ScrapeStats
from txbittorrent.core.tracker.swarmpeers import cached_compact_address
from txbittorrent.core.tracker.swarms import (
    Announce,
    AnnounceResult,
    PeerRecord,
    RequestRefused,
    Sampler,
    TrackerState,
)

__all__ = [
    "RedisAddress", "parse_redis_url", "encode_member", "decode_member", "swarm_keys",
    "journal_keys",
    "announce_call", "announce_result", "split_candidates", "wanted_peers", "scrape_call",
    "scrape_result",
    "ANNOUNCE_SCRIPT", "SCRAPE_SCRIPT", "DEFAULT_PREFIX",
]

DEFAULT_PREFIX = "txbt"
"""What every key of the tracker starts with."""
_NO_KEY = b"--------"
_ID_LEN = 20


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where the Redis server is: a ``redis://[:password@]host[:port][/db]`` URL."""

    host: str
    port: int = 6379
    db: int = 0
    password: str | None = None


def parse_redis_url(url: str) -> RedisAddress:
    """The address in a ``redis://`` URL; ``ValueError`` if it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"not a redis:// URL: {url!r}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"bad database number in {url!r}")
    password = unquote(parts.password) if parts.password else None
    return RedisAddress(parts.hostname, port, int(path or 0), password)


def encode_member(ip: str, port: int, peer_id: bytes) -> bytes:
    """A peer as a sorted-set member: compact address then ``peer_id``."""
    return cached_compact_address(ip, port) + peer_id


def decode_member(member: bytes) -> tuple[str, int, bytes]:
    """(ip, port, peer_id) of a member; ``ValueError`` if malformed."""
    if len(member) not in (26, 38):
        raise ValueError("not a peer member")
    address = member[:-_ID_LEN]
    return _ip_text(address[:-2]), int.from_bytes(address[-2:], "big"), member[-_ID_LEN:]


@lru_cache(maxsize=16384)
def _ip_text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def swarm_keys(prefix: str, info_hash: bytes) -> list[str]:
    """seeders4, leechers4, seeders6, leechers6, ids, addrs of one swarm."""
    base = f"{prefix}:{info_hash.hex()}"
    return [f"{base}:4:seeders", f"{base}:4:leechers", f"{base}:6:seeders",
            f"{base}:6:leechers", f"{base}:ids", f"{base}:addrs"]


def journal_keys(prefix: str) -> list[str]:
    """The recorder's journal (new swarms, completions) and its ``recording`` flag."""
    return [f"{prefix}:journal:seen", f"{prefix}:journal:completed", f"{prefix}:recording"]


def _time(value: float) -> str:
    return "%.6f" % value


def announce_call(
    state: TrackerState, prefix: str, request: Announce, now: float, ipv6: bool | None
) -> tuple[list[str], list[bytes | str]]:
    """(KEYS, ARGV) of ``ANNOUNCE_SCRIPT`` for ``request``, after the local rules.

    Raises ``RequestRefused`` for an info hash outside ``state.allowed``."""
    if state.allowed is not None and request.info_hash not in state.allowed:
        raise RequestRefused("unregistered torrent")
    wanted = wanted_peers(state, request)
    keys = swarm_keys(prefix, request.info_hash) + [
        f"{prefix}:completed", f"{prefix}:swarms", f"{prefix}:counters",
        *journal_keys(prefix), f"{prefix}:peers-full"]
    family = "6" if ":" in request.ip else "4"
    key = _NO_KEY if request.key is None else b"%08x" % request.key
    args: list[bytes | str] = [
        _time(now),
        _time(now - state.peer_timeout),
        str(max(1, int(state.peer_timeout) + 1)),
        encode_member(request.ip, request.port, request.peer_id),
        family,
        "s" if request.left == 0 else "l",
        key,
        request.event.value if request.event is not None else "",
        str(wanted),
        "" if ipv6 is None else ("6" if ipv6 else "4"),
        request.info_hash,
        str(state.max_peers),
        str(state.max_swarms),
        "1" if state.evict_swarms else "0",
        prefix,
    ]
    return keys, args


def split_candidates(blob: bytes) -> list[bytes]:
    """The members in the announce script's candidates string (each after a
    byte of its length); a truncated last one is dropped."""
    members = []
    i, end = 0, len(blob)
    while i < end:
        length = blob[i]
        member = blob[i + 1 : i + 1 + length]
        if len(member) < length:
            break
        members.append(member)
        i += 1 + length
    return members


def announce_result(
    state: TrackerState, reply: Sequence[object], rng: Sampler, numwant: int, now: float
) -> AnnounceResult:
    """The ``AnnounceResult`` for the script's reply, with at most ``numwant`` peers."""
    if not reply or reply[0] != 0:
        if reply and reply[0] == 2:
            raise RequestRefused("tracker is full")
        raise RequestRefused("peer_id in use by another peer")
    counts = [int(n) for n in reply[1:5]]  # type: ignore[call-overload]
    blob = reply[6] if len(reply) > 6 else b""
    members = list(dict.fromkeys(split_candidates(blob if isinstance(blob, bytes) else b"")))
    chosen = []
    # Choose first, then decode only the chosen (a malformed member is skipped).
    for member in rng.sample(members, min(numwant, len(members))):
        try:
            ip, port, peer_id = decode_member(member)
        except ValueError:
            continue
        chosen.append(PeerRecord(ip, port, peer_id, 0, now, compact=member[:-_ID_LEN]))
    return AnnounceResult(
        interval=state.interval,
        min_interval=state.min_interval,
        complete=counts[0] + counts[2],
        incomplete=counts[1] + counts[3],
        peers=tuple(chosen),
        tracker_id=state.tracker_id,
    )


def wanted_peers(state: TrackerState, request: Announce) -> int:
    """How many peers ``request`` gets at most (``numwant`` capped)."""
    wanted = state.default_numwant if request.numwant is None else request.numwant
    return min(wanted, state.max_numwant)


def scrape_call(
    prefix: str, info_hashes: Sequence[bytes], cutoff: float
) -> tuple[list[str], list[bytes | str]]:
    """(KEYS, ARGV) of ``SCRAPE_SCRIPT`` for ``info_hashes``."""
    keys: list[str] = []
    for info_hash in info_hashes:
        keys.extend(swarm_keys(prefix, info_hash)[:4])
    keys += [f"{prefix}:completed", f"{prefix}:swarms"]
    return keys, [_time(cutoff), *info_hashes]


def scrape_result(
    state: TrackerState, info_hashes: Sequence[bytes], reply: Sequence[object]
) -> dict[bytes, ScrapeStats]:
    """Counts for the info hashes the tracker knows (or allows), as ``TrackerState.scrape``."""
    stats: dict[bytes, ScrapeStats] = {}
    for info_hash, row in zip(info_hashes, reply):
        complete, downloaded, incomplete, known = (int(n) for n in row)  # type: ignore[attr-defined]
        if known or complete or downloaded or incomplete or (
            state.allowed is not None and info_hash in state.allowed
        ):
            stats[info_hash] = ScrapeStats(complete, downloaded, incomplete)
    return stats


ANNOUNCE_SCRIPT = """
-- KEYS: 1 seeders4 2 leechers4 3 seeders6 4 leechers6 5 ids 6 addrs 7 completed 8 swarms
--       9 counters 10 journal-seen 11 journal-completed 12 recording 13 peers-full
-- ARGV: 1 now 2 cutoff 3 ttl 4 member 5 family 6 role 7 key 8 event 9 numwant 10 want-family
--       11 info hash 12 max peers 13 max swarms 14 evict (1/0) 15 prefix
local now, cutoff, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local member, fam, role, key, event = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local numwant, want, ih, maxpeers = tonumber(ARGV[9]), ARGV[10], ARGV[11], tonumber(ARGV[12])
local maxswarms, evicting, prefix = tonumber(ARGV[13]), ARGV[14] == '1', ARGV[15]
local ids, addrs = KEYS[5], KEYS[6]
local pid = string.sub(member, -20)
local addr = string.sub(member, 1, -21)
local indexed = redis.call('ZSCORE', KEYS[8], ih)
local room = indexed or evicting or redis.call('ZCARD', KEYS[8]) < maxswarms
if not room and event ~= 'stopped' then return {2} end
local function zkey(f, r)
  local i = 1
  if f == '6' then i = 3 end
  if r == 'l' then i = i + 1 end
  return KEYS[i]
end
local function forget(m)
  local p, a = string.sub(m, -20), string.sub(m, 1, -21)
  local cur = redis.call('HGET', ids, p)
  if cur and string.sub(cur, 11) == m then redis.call('HDEL', ids, p) end
  if redis.call('HGET', addrs, a) == p then redis.call('HDEL', addrs, a) end
end
local function drop(p)
  local cur = redis.call('HGET', ids, p)
  if not cur then return nil end
  local m = string.sub(cur, 11)
  redis.call('ZREM', zkey(string.sub(cur, 1, 1), string.sub(cur, 2, 2)), m)
  forget(m)
  return string.sub(cur, 2, 2)
end
for i = 1, 4 do
  local stale = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  if #stale > 0 then
    for _, m in ipairs(stale) do forget(m) end
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  end
end
local old = redis.call('HGET', ids, pid)
if old then
  local oldkey, oldm = string.sub(old, 3, 10), string.sub(old, 11)
  if oldkey ~= '--------' and oldkey ~= key and oldm ~= member then return {1} end
end
local oldrole = drop(pid)
local completes
if event == 'completed' then completes = oldrole ~= 's' else completes = role == 's' and oldrole == 'l' end
completes = completes and room
local recording = redis.call('EXISTS', KEYS[12]) == 1
local function journal(k)
  return recording and (redis.call('HEXISTS', k, ih) == 1 or redis.call('HLEN', k) < maxswarms)
end
if completes then
  redis.call('HINCRBY', KEYS[7], ih, 1)
  if journal(KEYS[11]) then redis.call('HINCRBY', KEYS[11], ih, 1) end
end
redis.call('HINCRBY', KEYS[9], 'announces', 1)
if event ~= 'stopped' or completes then
  if redis.call('ZADD', KEYS[8], now, ih) == 1 then
    if journal(KEYS[10]) then redis.call('HSETNX', KEYS[10], ih, now) end
    local over = math.min(redis.call('ZCARD', KEYS[8]) - maxswarms, 64)
    if over > 0 then
      for _, victim in ipairs(redis.call('ZRANGE', KEYS[8], 0, over - 1)) do
        local base = prefix .. ':' .. string.gsub(victim, '.', function(c)
          return string.format('%02x', string.byte(c)) end) .. ':'
        redis.call('DEL', base .. '4:seeders', base .. '4:leechers', base .. '6:seeders',
                   base .. '6:leechers', base .. 'ids', base .. 'addrs')
        redis.call('HDEL', KEYS[7], victim)
        redis.call('ZREM', KEYS[8], victim)
      end
      redis.call('HINCRBY', KEYS[9], 'evicted', over)
    end
  end
elseif indexed then
  redis.call('ZADD', KEYS[8], 'XX', now, ih)
end
local peers = {}
if event ~= 'stopped' then
  local other = redis.call('HGET', addrs, addr)
  if other and other ~= pid then drop(other) end
  local total = 0
  for i = 1, 4 do total = total + redis.call('ZCARD', KEYS[i]) end
  if total < maxpeers and (oldrole or redis.call('EXISTS', KEYS[13]) == 0) then
    redis.call('ZADD', zkey(fam, role), now, member)
    redis.call('HSET', ids, pid, fam .. role .. key .. member)
    redis.call('HSET', addrs, addr, pid)
  end
  if numwant > 0 then
    for i = 1, 4 do
      local f, r = '4', 'l'
      if i > 2 then f = '6' end
      if i % 2 == 1 then r = 's' end
      if (want == '' or want == f) and not (role == 's' and r == 's') then
        for _, m in ipairs(redis.call('ZRANDMEMBER', KEYS[i], numwant + 1)) do
          if m ~= member then peers[#peers + 1] = m end
        end
      end
    end
  end
end
local out = {0}
local total = 0
for i = 1, 4 do
  local n = redis.call('ZCARD', KEYS[i])
  out[#out + 1] = n
  total = total + n
end
local done = redis.call('HGET', KEYS[7], ih)
if total == 0 and not done then
  redis.call('ZREM', KEYS[8], ih)
end
for i = 1, 6 do redis.call('EXPIRE', KEYS[i], ttl) end
out[#out + 1] = tonumber(done or 0)
local blob = {}
for _, m in ipairs(peers) do blob[#blob + 1] = string.char(#m) .. m end
out[#out + 1] = table.concat(blob)
return out
"""
"""One announce: make room (evict the least recently announced swarm past
``max swarms``, or refuse), expire the swarm, apply the ``key`` rule,
record, count (and journal for the recorder), pick candidates.

Replies ``{1}`` when the ``peer_id`` belongs to another peer, ``{2}`` when
the tracker is full and does not evict, else ``{0, seeders4, leechers4,
seeders6, leechers6, completed, candidates}``: the candidates are one
string, each member after a byte of its length (``split_candidates``).  One
string, not one reply element each: txredisapi's parser takes a reactor turn
for every bulk string of a reply (a ``callLater(0)`` and a pause of the
transport), which held announces over Redis to ~2,000/s."""

SCRAPE_SCRIPT = """
-- KEYS: 4 sets per info hash (seeders4 leechers4 seeders6 leechers6), then completed, swarms
-- ARGV: 1 cutoff, then the info hashes
local n = #ARGV - 1
local cutoff = '(' .. ARGV[1]
local out = {}
for j = 1, n do
  local b = (j - 1) * 4
  local ih = ARGV[j + 1]
  local c = {}
  for i = 1, 4 do c[i] = redis.call('ZCOUNT', KEYS[b + i], cutoff, '+inf') end
  local done = tonumber(redis.call('HGET', KEYS[n * 4 + 1], ih) or 0)
  local known = 0
  if redis.call('ZSCORE', KEYS[n * 4 + 2], ih) then known = 1 end
  out[#out + 1] = {c[1] + c[3], done, c[2] + c[4], known}
end
return out
"""
"""Counts of each info hash, read-only: ``{complete, downloaded, incomplete, known}`` each."""
