"""The sans-I/O core imports no Twisted and nothing that does I/O or reads a clock.

Each ``txbittorrent/core/*.py`` is parsed with ``ast`` (not imported), so the
check also covers imports inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import txbittorrent.core

CORE = Path(txbittorrent.core.__file__).parent

FORBIDDEN = frozenset({"twisted", "treq", "socket", "os", "time", "random", "threading"})
"""Top-level modules the core must not import: the reactor and HTTP client, and
the modules that reach the network, the file system, the clock or global
randomness (time and randomness are passed in; see STYLE.md)."""

ALLOWED_OWN = ("txbittorrent.core", "txbittorrent.errors")
"""Our own modules the core may use; anything else of ours may pull in Twisted."""


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module name of a ``from ... import`` statement."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def violations(source: str, package: str = "txbittorrent.core") -> list[str]:
    """Each forbidden import in ``source``, as ``'line N: module'``, in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            names = [module]
            if module in ("txbittorrent", ""):
                names = [f"{module}.{alias.name}".lstrip(".") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
            in ("__import__", "import_module")
        ):
            found.append((getattr(node, "lineno", 0), "dynamic import"))
        for name in names:
            top = name.split(".")[0]
            own = name == "txbittorrent" or name.startswith("txbittorrent.")
            if top in FORBIDDEN or (
                own and not any(name == a or name.startswith(a + ".") for a in ALLOWED_OWN)
            ):
                found.append((getattr(node, "lineno", 0), name))
    return [f"line {line}: {name}" for line, name in sorted(found)]


def _module_of(path: Path) -> str:
    """The dotted module name of a file under the core (a package for ``__init__``)."""
    parts = ["txbittorrent", "core", *path.relative_to(CORE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    """The package a relative import in ``path`` is resolved against."""
    return ".".join(["txbittorrent", "core", *path.relative_to(CORE).parent.parts])


class CoreImportTests(SynchronousTestCase):
    """No module of txbittorrent.core imports Twisted, treq or an I/O module."""

    def test_core_files_found(self) -> None:
        """The check sees the core's modules (it would pass vacuously otherwise)."""
        names = {str(p.relative_to(CORE)) for p in CORE.rglob("*.py")}
        expected = {"__init__.py", "bencoding.py", "wire/session.py", "transfer/picker.py"}
        self.assertTrue(expected <= names, names)

    def test_no_forbidden_imports(self) -> None:
        """No core module imports a forbidden module, statically."""
        problems = {}
        for path in sorted(CORE.rglob("*.py")):
            found = violations(path.read_text(encoding="utf-8"), _package_of(path))
            if found:
                problems[str(path.relative_to(CORE))] = found
        self.assertEqual(problems, {})

    def test_not_loaded_transitively(self) -> None:
        """Importing every core module in a fresh interpreter loads no Twisted or treq."""
        modules = sorted(_module_of(p) for p in CORE.rglob("*.py"))
        code = (
            "import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'twisted', 'treq'}))\n"
        )
        root = str(CORE.parent.parent)
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=60,
            check=False,
        )
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(result.stdout.strip(), "[]")


class CheckerTests(SynchronousTestCase):
    """The checker itself catches each form of import."""

    def test_catches(self) -> None:
        """Each forbidden form is reported with its line."""
        source = "\n".join(
            [
                "import twisted",
                "import twisted.internet.reactor",
                "from treq import get",
                "import os.path",
                "from time import monotonic",
                "import random as r",
                "def f():\n    import socket",
                "from threading import Lock",
                "from txbittorrent import swarm",
                "from txbittorrent.swarm.swarm import Swarm",
                "from .. import torrent",
                "from ..store import Store",
                "__import__('socket')",
                "importlib.import_module('os')",
            ]
        )
        self.assertEqual(
            violations(source),
            [
                "line 1: twisted",
                "line 2: twisted.internet.reactor",
                "line 3: treq",
                "line 4: os.path",
                "line 5: time",
                "line 6: random",
                "line 8: socket",
                "line 9: threading",
                "line 10: txbittorrent.swarm",
                "line 11: txbittorrent.swarm.swarm",
                "line 12: txbittorrent.torrent",
                "line 13: txbittorrent.store",
                "line 14: dynamic import",
                "line 15: dynamic import",
            ],
        )

    def test_allows(self) -> None:
        """The standard library's pure modules and our core and errors pass."""
        source = "\n".join(
            [
                "from __future__ import annotations",
                "import hashlib, re, unicodedata",
                "from dataclasses import dataclass",
                "import bencode2",
                "from txbittorrent.errors import BencodeError",
                "from txbittorrent.core.bencoding import decode",
                "from . import bencoding",
                "from .metainfo import Metainfo",
                "import timeit_not_time",
                "import osmosis",
            ]
        )
        self.assertEqual(violations(source), [])
