"""The m3u playlist builder (web.playlist), pure."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.web.playlist import base_url_for, data_url, is_media, m3u_playlist

IH = "0123456789abcdef0123456789abcdef01234567"
BASE = "http://127.0.0.1:8080"


class MediaTests(SynchronousTestCase):
    """Which names are media."""

    def test_by_extension(self) -> None:
        """Video and audio extensions (any case) are media; others are not."""
        for name in ["a.mkv", "b/c.MP4", "x.ts", "s.flac", "s.opus", "v.webm", "m.m4a"]:
            self.assertTrue(is_media(name), name)
        for name in ["a.srt", "b.nfo", "c.txt", "cover.jpg", "noext", "x.m3u8", "d.iso"]:
            self.assertFalse(is_media(name), name)


class PlaylistTests(SynchronousTestCase):
    """The playlist's lines and URLs."""

    def test_lines(self) -> None:
        """#EXTM3U, then #EXTINF and the URL per media file in order; other
        files and skipped ones are left out."""
        text = m3u_playlist(BASE, IH, [
            ("Show/e01.mkv", 1), ("Show/e01.srt", 1), ("Show/e02.mkv", 0),
            ("Show/e03.mp4", 7), ("Show/theme.mp3", 1),
        ])
        self.assertEqual(text, "\n".join([
            "#EXTM3U",
            "#EXTINF:-1,e01.mkv",
            f"{BASE}/data?ih={IH}&path=Show%2Fe01.mkv",
            "#EXTINF:-1,e03.mp4",
            f"{BASE}/data?ih={IH}&path=Show%2Fe03.mp4",
            "#EXTINF:-1,theme.mp3",
            f"{BASE}/data?ih={IH}&path=Show%2Ftheme.mp3",
        ]) + "\n")

    def test_media_token(self) -> None:
        """With the daemon's media token, each URL carries it (quoted)."""
        text = m3u_playlist(BASE, IH, [("a.mkv", 1)], token="t/k+n")
        url = text.splitlines()[2]
        query = parse_qs(urlsplit(url).query, strict_parsing=True)
        self.assertEqual(query, {"ih": [IH], "path": ["a.mkv"], "token": ["t/k+n"]})

    def test_empty(self) -> None:
        """No media: just the header."""
        self.assertEqual(m3u_playlist(BASE, IH, [("a.txt", 1)]), "#EXTM3U\n")

    def test_awkward_names(self) -> None:
        """Spaces, &, #, ?, %, + and non-ASCII names round-trip through the
        query; a newline in a name cannot start a line of its own."""
        path = "Dir & Co/é #1 ?50% + more.mkv"
        url = data_url(BASE, IH, path)
        self.assertNotIn(" ", url)
        query = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
        self.assertEqual(query, {"ih": [IH], "path": [path]})
        text = m3u_playlist(BASE, IH, [("d/a\n#EXTINF:0,evil\r\n\u2028.mkv", 1)])
        lines = text.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertEqual(lines[1], "#EXTINF:-1,a #EXTINF:0,evil .mkv")

    def test_base_url(self) -> None:
        """A plain host[:port] (or bracketed IPv6) makes the base; anything
        else is refused."""
        self.assertEqual(base_url_for("http", "localhost:8080"), "http://localhost:8080")
        self.assertEqual(base_url_for("https", "[::1]:9", "/x"), "https://[::1]:9/x")
        for bad in [None, "", "a b", "evil.com/x", "h:1\r\nX: y", "u@h", "h:123456"]:
            self.assertIsNone(base_url_for("http", bad), bad)
        self.assertIsNone(base_url_for("javascript", "h"))
