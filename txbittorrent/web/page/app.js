// txbittorrent's page: talks to the daemon's native API (/api/...), /login and /logout.
//
// How it stays current: an EventSource on /api/events; each event names a torrent,
// whose row is then fetched again (GET /api/torrents/<info hash>, at most once a
// second per torrent).  While the stream is down (not supported, refused, or
// reconnecting) the whole list is polled every few seconds instead.
//
// Nothing is ever put in the page as HTML: every string goes in through textContent.
// The session cookie is HttpOnly; the page remembers in localStorage only that it
// logged in, so a first visit shows the login form without a refused request.
"use strict";

(() => {
  const POLL_MS = 3000;
  const REFRESH_GAP_MS = 1000;
  const STATS_GAP_MS = 2000;
  const SSE_RETRY_MS = 15000;
  const HINT_KEY = "txbittorrent.logged-in";
  const KINDS = ["torrent_added", "torrent_removed", "state_changed", "progress",
                 "metadata_received", "complete", "peer_connected", "peer_lost",
                 "disk_error", "tracker_error"];
  // Torrent.state: stopped, checking, metadata, downloading, seeding, paused, error.
  const RUNNING = new Set(["metadata", "downloading", "seeding"]);
  const MEDIA = new Set(["mp4", "m4v", "mkv", "webm", "avi", "mov", "wmv", "flv", "mpg",
                         "mpeg", "ts", "m2ts", "mts", "ogv", "3gp", "vob", "divx", "mp3",
                         "flac", "ogg", "oga", "opus", "m4a", "aac", "wav", "wma", "alac",
                         "ape", "mka", "aiff", "aif"]);

  const $ = (id) => document.getElementById(id);

  const state = {
    rows: new Map(),        // info hash -> {el, data}
    refresh: new Map(),     // info hash -> {timer, last, busy, dirty}
    gone: new Set(),        // info hashes removed: never fetched again
    events: null,           // the EventSource
    sseRetry: null,
    pollTimer: null,
    statsTimer: null,
    statsLast: 0,
    running: false,
    filesFor: null,         // info hash whose files the dialog shows
    removing: null,         // info hash the remove dialog asks about
    mediaToken: null,       // a read-only token for copied links, if the API gives one
  };

  // -- the API -------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "the daemon cannot be reached");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (response.status === 401) {
      loggedOut();
      throw new ApiError(401, "please log in");
    }
    if (!response.ok) {
      const message = data && typeof data.error === "string" ? data.error : response.statusText;
      throw new ApiError(response.status, message || `HTTP ${response.status}`);
    }
    return data;
  }

  const torrentPath = (ih) => `/api/torrents/${encodeURIComponent(ih)}`;

  // -- formatting ------------------------------------------------------------------

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
  }

  const rate = (n) => `${bytes(n)}/s`;

  function duration(seconds) {
    if (!isFinite(seconds)) return "∞";
    const s = Math.round(seconds);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function eta(t) {
    if (!t.has_metadata) return "—";
    if (t.left === 0) return "done";
    if (!RUNNING.has(t.state) || !t.download_rate) return "∞";
    return duration(t.left / t.download_rate);
  }

  function ratio(t) {
    if (!t.downloaded) return t.uploaded ? "∞" : "—";
    return (t.uploaded / t.downloaded).toFixed(2);
  }

  function percent(progress) {
    if (progress >= 1) return "100%";
    return `${(Math.floor(progress * 1000) / 10).toFixed(1)}%`;
  }

  function stateText(t) {
    return t.state === "metadata" ? "fetching metadata" : t.state;
  }

  // -- messages --------------------------------------------------------------------

  let errorTimer = null;
  function showError(err) {
    if (err instanceof ApiError && err.status === 401) return;
    const box = $("error");
    box.textContent = err instanceof Error ? err.message : String(err);
    box.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  function setLive(mode) {
    const live = $("live");
    live.dataset.mode = mode;
    live.textContent = { live: "live", polling: "polling", off: "offline" }[mode];
  }

  // -- the torrent list ------------------------------------------------------------

  function makeRow(ih) {
    const el = $("torrent-template").content.firstElementChild.cloneNode(true);
    el.dataset.infoHash = ih;
    el.querySelector(".toggle").addEventListener("click", () => toggle(ih));
    el.querySelector(".files-button").addEventListener("click", () => openFiles(ih));
    el.querySelector(".remove").addEventListener("click", () => askRemove(ih));
    $("torrents").append(el);
    return el;
  }

  function upsert(t) {
    const ih = t.info_hash;
    if (state.gone.has(ih)) return;
    let row = state.rows.get(ih);
    if (!row) {
      row = { el: makeRow(ih), data: t };
      state.rows.set(ih, row);
    }
    row.data = t;
    const el = row.el;
    const name = t.name || ih;
    el.querySelector(".name").textContent = name;
    const st = el.querySelector(".state");
    st.textContent = stateText(t);
    st.dataset.state = t.state;
    el.dataset.state = t.state;
    const bar = el.querySelector("progress");
    bar.value = t.progress;
    bar.setAttribute("aria-label", `Progress of ${name}`);
    const pct = el.querySelector(".percent");
    pct.textContent = percent(t.progress);
    el.dataset.progress = String(t.progress);
    el.querySelector(".down").textContent = rate(t.download_rate);
    el.querySelector(".up").textContent = rate(t.upload_rate);
    el.querySelector(".eta").textContent = eta(t);
    el.querySelector(".peers").textContent = String(t.peers);
    el.querySelector(".size").textContent = t.has_metadata ? bytes(t.size) : "—";
    el.querySelector(".ratio").textContent = ratio(t);
    const button = el.querySelector(".toggle");
    button.textContent = RUNNING.has(t.state) ? "Pause" : "Resume";
    button.setAttribute("aria-label", `${button.textContent} ${name}`);
    button.disabled = t.state === "checking";
    el.querySelector(".files-button").setAttribute("aria-label", `Files of ${name}`);
    el.querySelector(".remove").setAttribute("aria-label", `Remove ${name}`);
    $("empty").hidden = state.rows.size > 0;
  }

  function dropRow(ih) {
    const row = state.rows.get(ih);
    if (row) row.el.remove();
    state.rows.delete(ih);
    const pending = state.refresh.get(ih);
    if (pending && pending.timer !== null) clearTimeout(pending.timer);
    state.refresh.delete(ih);
    $("empty").hidden = state.rows.size > 0;
    if (state.filesFor === ih) $("files-dialog").close();
  }

  // The daemon's whole list: what it holds is shown, even a torrent this page
  // removed and another client added again.
  function replaceAll(torrents) {
    const seen = new Set();
    for (const t of torrents) {
      state.gone.delete(t.info_hash);
      seen.add(t.info_hash);
      upsert(t);
    }
    for (const ih of [...state.rows.keys()]) {
      if (!seen.has(ih)) dropRow(ih);
    }
    $("empty").hidden = state.rows.size > 0;
  }

  async function loadAll() {
    const body = await api("GET", "/api/torrents");
    replaceAll(body.torrents);
    loadStats();
  }

  async function loadStats() {
    state.statsLast = Date.now();
    try {
      const s = await api("GET", "/api/stats");
      if (typeof s.media_token === "string") state.mediaToken = s.media_token;
      $("totals").textContent =
        `${s.torrents} torrent${s.torrents === 1 ? "" : "s"} · ↓ ${rate(s.download_rate)}` +
        ` · ↑ ${rate(s.upload_rate)} · ${s.peers} peer${s.peers === 1 ? "" : "s"}`;
    } catch (err) {
      showError(err);
    }
  }

  function statsSoon() {
    if (state.statsTimer !== null) return;
    const wait = Math.max(0, state.statsLast + STATS_GAP_MS - Date.now());
    state.statsTimer = setTimeout(() => {
      state.statsTimer = null;
      if (state.running) loadStats();
    }, wait);
  }

  // One torrent fetched again, at most once every REFRESH_GAP_MS.
  function refreshSoon(ih) {
    if (state.gone.has(ih)) return;
    let r = state.refresh.get(ih);
    if (!r) {
      r = { timer: null, last: 0, busy: false, dirty: false };
      state.refresh.set(ih, r);
    }
    if (r.timer !== null || r.busy) {
      r.dirty = true;
      return;
    }
    const wait = Math.max(0, r.last + REFRESH_GAP_MS - Date.now());
    r.timer = setTimeout(() => refreshNow(ih, r), wait);
  }

  async function refreshNow(ih, r) {
    r.timer = null;
    if (!state.running || state.gone.has(ih)) return;
    r.busy = true;
    r.dirty = false;
    r.last = Date.now();
    try {
      upsert(await api("GET", torrentPath(ih)));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) dropRow(ih);
      else showError(err);
    } finally {
      r.busy = false;
      if (r.dirty && state.refresh.get(ih) === r) {
        r.dirty = false;
        refreshSoon(ih);
      }
    }
  }

  // -- live updates ----------------------------------------------------------------

  function onEvent(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      return;
    }
    const ih = event.info_hash;
    if (typeof ih !== "string") return;
    if (event.kind === "torrent_removed") {
      state.gone.add(ih);
      dropRow(ih);
    } else {
      if (event.kind === "torrent_added") state.gone.delete(ih);
      refreshSoon(ih);
    }
    statsSoon();
  }

  function connectEvents() {
    if (!state.running || state.events !== null) return;
    if (typeof EventSource !== "function") {
      startPolling();
      return;
    }
    const source = new EventSource(`/api/events?kinds=${KINDS.join(",")}`);
    state.events = source;
    for (const kind of KINDS) source.addEventListener(kind, onEvent);
    source.addEventListener("reset", () => loadAll().catch(showError));
    source.addEventListener("open", () => {
      setLive("live");
      stopPolling();
      loadAll().catch(showError);  // whatever happened while it was down
    });
    source.addEventListener("error", () => {
      if (!state.running) return;
      setLive("polling");
      startPolling();
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not a dropped connection): try again later, poll meanwhile.
        state.events = null;
        clearTimeout(state.sseRetry);
        state.sseRetry = setTimeout(connectEvents, SSE_RETRY_MS);
      }
    });
  }

  function startPolling() {
    if (state.pollTimer !== null || !state.running) return;
    setLive("polling");
    state.pollTimer = setInterval(() => {
      loadAll().catch(showError);
    }, POLL_MS);
  }

  function stopPolling() {
    if (state.pollTimer !== null) clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  // -- log in, log out -------------------------------------------------------------

  function hint(value) {
    try {
      if (value === undefined) return window.localStorage.getItem(HINT_KEY) === "1";
      if (value) window.localStorage.setItem(HINT_KEY, "1");
      else window.localStorage.removeItem(HINT_KEY);
    } catch (err) {
      // storage disabled: every visit starts at the login form
    }
    return false;
  }

  function stop() {
    state.running = false;
    if (state.events !== null) state.events.close();
    state.events = null;
    clearTimeout(state.sseRetry);
    clearTimeout(state.statsTimer);
    state.statsTimer = null;
    stopPolling();
    for (const r of state.refresh.values()) if (r.timer !== null) clearTimeout(r.timer);
    state.refresh.clear();
    for (const row of state.rows.values()) row.el.remove();
    state.rows.clear();
    setLive("off");
  }

  function loggedOut() {
    hint(false);
    if (!$("login-view").hidden) return;
    stop();
    for (const id of ["files-dialog", "remove-dialog"]) if ($(id).open) $(id).close();
    $("app-view").hidden = true;
    $("logout").hidden = true;
    $("live").hidden = true;
    $("totals").textContent = "";
    $("login-view").hidden = false;
    $("login-password").focus();
  }

  function start() {
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("logout").hidden = false;
    $("live").hidden = false;
    state.running = true;
    state.gone.clear();
    loadAll().then(loadLimits).then(connectEvents).catch(showError);
  }

  async function login(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const message = $("login-error");
    message.hidden = true;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch("/login", {
        method: "POST", credentials: "same-origin",
        body: new URLSearchParams(new FormData(form)),
      });
      if (response.ok) {
        hint(true);
        form.reset();
        start();
        return;
      }
      let data = null;
      try { data = await response.json(); } catch (err) { data = null; }
      message.textContent = response.status === 401 ? "Wrong user name or password."
        : (data && data.error) || `Login failed (HTTP ${response.status}).`;
    } catch (err) {
      message.textContent = "The daemon cannot be reached.";
    } finally {
      button.disabled = false;
    }
    message.hidden = false;
  }

  async function logout() {
    try {
      await fetch("/logout", { method: "POST", credentials: "same-origin" });
    } catch (err) {
      // gone anyway: forget the session on this side
    }
    loggedOut();
  }

  // -- changes -----------------------------------------------------------------------

  async function addTorrent(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const status = $("add-status");
    const file = $("add-file").files[0];
    const source = $("add-source").value.trim();
    const paused = $("add-paused").checked;
    let body;
    if (file) {
      body = new FormData();
      body.append("torrent", file, file.name);
      if (paused) body.append("paused", "true");
    } else if (source) {
      body = { source, paused };
    } else {
      status.textContent = "Give a magnet link, a URL, an info hash or a .torrent file.";
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Adding…";
    try {
      const t = await api("POST", "/api/torrents", body);
      state.gone.delete(t.info_hash);
      upsert(t);
      status.textContent = `Added ${t.name || t.info_hash}.`;
      form.reset();
    } catch (err) {
      status.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  async function toggle(ih) {
    const row = state.rows.get(ih);
    if (!row) return;
    const action = RUNNING.has(row.data.state) ? "pause" : "start";
    const button = row.el.querySelector(".toggle");
    button.disabled = true;
    try {
      upsert(await api("POST", `${torrentPath(ih)}/${action}`));
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  function askRemove(ih) {
    const row = state.rows.get(ih);
    if (!row) return;
    state.removing = ih;
    $("remove-name").textContent = row.data.name || ih;
    $("remove-data").checked = false;
    const dialog = $("remove-dialog");
    dialog.returnValue = "";
    dialog.showModal();
  }

  async function removeClosed() {
    const dialog = $("remove-dialog");
    const ih = state.removing;
    state.removing = null;
    if (dialog.returnValue !== "remove" || ih === null) return;
    const query = $("remove-data").checked ? "?delete_data=1" : "";
    state.gone.add(ih);
    const pending = state.refresh.get(ih);
    if (pending && pending.timer !== null) clearTimeout(pending.timer);
    try {
      await api("DELETE", torrentPath(ih) + query);
      dropRow(ih);
      statsSoon();
    } catch (err) {
      state.gone.delete(ih);
      showError(err);
      refreshSoon(ih);
    }
  }

  async function loadLimits() {
    const limits = await api("GET", "/api/limits");
    const kib = (v) => (v ? String(Math.round(v / 1024)) : "");
    $("limit-down").value = kib(limits.download_limit);
    $("limit-up").value = kib(limits.upload_limit);
  }

  async function saveLimits(event) {
    event.preventDefault();
    const status = $("limits-status");
    const read = (id) => {
      const text = $(id).value.trim();
      if (!text) return null;
      const n = Number(text);
      if (!Number.isFinite(n) || n < 0) throw new Error("Limits are numbers of KiB/s, 0 or more.");
      return n === 0 ? null : Math.round(n * 1024);
    };
    try {
      const body = { download_limit: read("limit-down"), upload_limit: read("limit-up") };
      await api("POST", "/api/limits", body);
      await loadLimits();
      status.textContent = "Saved.";
    } catch (err) {
      status.textContent = err.message;
    }
  }

  // -- files -------------------------------------------------------------------------

  function extension(path) {
    const base = path.split("/").pop();
    const dot = base.lastIndexOf(".");
    return dot < 0 ? "" : base.slice(dot + 1).toLowerCase();
  }

  function streamPath(ih, file) {
    const base = file.path.split("/").pop();
    return `/stream/${ih}/${file.index}/${encodeURIComponent(base)}`;
  }

  function shareUrl(ih, file) {
    const url = new URL(streamPath(ih, file), window.location.origin);
    if (state.mediaToken) url.searchParams.set("token", state.mediaToken);
    return url.href;
  }

  async function copyLink(ih, file) {
    const url = shareUrl(ih, file);
    const status = $("files-status");
    try {
      await navigator.clipboard.writeText(url);
      status.textContent = "Link copied.";
    } catch (err) {
      status.textContent = `Copy this link: ${url}`;
    }
  }

  function renderFiles(ih, files) {
    const list = $("files");
    list.replaceChildren();
    for (const file of files) {
      const li = document.createElement("li");
      li.className = "file";
      li.dataset.index = String(file.index);
      const want = document.createElement("label");
      want.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "want";
      box.checked = file.priority > 0;
      box.setAttribute("aria-label", `Download ${file.path}`);
      box.addEventListener("change", () => setWanted(ih, file.index, box));
      want.append(box, document.createTextNode(box.checked ? "Want" : "Skip"));
      const path = document.createElement("span");
      path.className = "path";
      path.textContent = file.path;
      const size = document.createElement("span");
      size.className = "file-size";
      const done = typeof file.progress === "number" ? ` · ${percent(file.progress)}` : "";
      size.textContent = `${bytes(file.length)}${done}`;
      li.append(want, path, size);
      if (MEDIA.has(extension(file.path))) {
        const play = document.createElement("a");
        play.className = "button play";
        play.href = streamPath(ih, file);
        play.target = "_blank";
        play.rel = "noopener";
        play.textContent = "Play";
        const here = document.createElement("button");
        here.type = "button";
        here.className = "play-here";
        here.textContent = "Play here";
        here.addEventListener("click", () => {
          const player = $("player");
          player.src = streamPath(ih, file);
          player.hidden = false;
          player.play().catch(() => {});
        });
        const copy = document.createElement("button");
        copy.type = "button";
        copy.className = "copy";
        copy.textContent = "Copy link";
        copy.addEventListener("click", () => copyLink(ih, file));
        li.append(play, here, copy);
      }
      list.append(li);
    }
  }

  async function openFiles(ih) {
    const row = state.rows.get(ih);
    if (!row) return;
    state.filesFor = ih;
    $("files-title").textContent = `Files of ${row.data.name || ih}`;
    $("files-status").textContent = "Loading…";
    $("files").replaceChildren();
    const dialog = $("files-dialog");
    if (!dialog.open) dialog.showModal();
    try {
      const body = await api("GET", `${torrentPath(ih)}/files`);
      if (state.filesFor !== ih) return;
      $("files-status").textContent = body.files.length ? "" : "The file list comes with the metadata.";
      renderFiles(ih, body.files);
    } catch (err) {
      $("files-status").textContent = err.message;
    }
  }

  async function setWanted(ih, index, box) {
    const wanted = box.checked;
    box.disabled = true;
    try {
      const body = await api("POST", `${torrentPath(ih)}/files`, { files: { [index]: wanted ? 1 : 0 } });
      if (state.filesFor === ih) renderFiles(ih, body.files);
      refreshSoon(ih);
    } catch (err) {
      box.checked = !wanted;
      box.disabled = false;
      $("files-status").textContent = err.message;
    }
  }

  function closeFiles() {
    const player = $("player");
    if (player.hasAttribute("src")) {
      player.pause();
      player.removeAttribute("src");
      player.load();
    }
    player.hidden = true;
    state.filesFor = null;
  }

  // -- wiring ------------------------------------------------------------------------

  function init() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("add-form").addEventListener("submit", addTorrent);
    $("limits-form").addEventListener("submit", saveLimits);
    $("remove-dialog").addEventListener("close", removeClosed);
    $("files-close").addEventListener("click", () => $("files-dialog").close());
    $("files-dialog").addEventListener("close", closeFiles);
    if (hint()) {
      start();
    } else {
      $("login-view").hidden = false;
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
