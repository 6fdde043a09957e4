"""Categories and tags: ``torrents/categories``, ``createCategory``,
``editCategory``, ``removeCategories``, ``setCategory``, ``torrents/tags``,
``createTags``, ``deleteTags``, ``addTags``, ``removeTags``.

Both live in the ``StateStore``: a category (name and save path) in its
categories table and on the torrent's record (``category``); a tag in its
tags table and in the torrent's labels (``TorrentManager.set_labels``:
qBittorrent's tags are the native API's labels).  The tag list is the
created tags and every torrent's labels.  Replies follow qBittorrent:
400 for an empty category name, 409 for a bad one ("Incorrect category
name") or one that exists already (create) or does not exist (edit, set);
a tag with control characters or over 100 characters is 400 (the native
API's label rule).
"""

from __future__ import annotations

from typing import Any

from txbittorrent.web.apibody import labels as checked_labels
from txbittorrent.web.apibody import save_path as checked_save_path
from txbittorrent.web.qbt.base import Call, Context, QbtError, endpoint
from txbittorrent.web.qbt.fields import split_list

__all__ = ["categories_view", "all_tags", "valid_category"]


def valid_category(name: str) -> bool:
    """qBittorrent's rule: no empty path parts, no leading or trailing '/',
    no backslash; and printable."""
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        return False
    return "\\" not in name and all(ord(c) >= 32 and ord(c) != 127 for c in name) \
        and len(name) <= 255


def categories_view(ctx: Context) -> dict[str, dict[str, Any]]:
    return {name: {"name": name, "savePath": path, "download_path": None}
            for name, path in ctx.store.categories().items()}


def all_tags(ctx: Context) -> list[str]:
    tags = set(ctx.store.tags())
    for torrent in ctx.session.torrents():
        tags.update(ctx.manager.labels(torrent.info_hash.hex()))
    return sorted(tags)


def _category_path(call: Call) -> str:
    path = (call.get("savePath") or "").strip()
    return checked_save_path(path, call.ctx.download_dir) if path else ""


@endpoint("torrents", "categories")
def categories(call: Call) -> dict[str, Any]:
    return categories_view(call.ctx)


@endpoint("torrents", "createCategory", changes=True)
def create_category(call: Call) -> str:
    name = call.need("category").strip()
    if not name:
        raise QbtError(400, "Category cannot be empty")
    if not valid_category(name):
        raise QbtError(409, "Incorrect category name")
    if name in call.ctx.store.categories():
        raise QbtError(409, "Unable to create category")
    call.ctx.store.set_category(name, _category_path(call))
    return ""


@endpoint("torrents", "editCategory", changes=True)
def edit_category(call: Call) -> str:
    name = call.need("category").strip()
    call.need("savePath")
    if not name:
        raise QbtError(400, "Category cannot be empty")
    if name not in call.ctx.store.categories():
        raise QbtError(409, "Unable to edit category")
    call.ctx.store.set_category(name, _category_path(call))
    return ""


@endpoint("torrents", "removeCategories", changes=True)
def remove_categories(call: Call) -> str:
    call.ctx.store.remove_categories(split_list(call.need("categories"), "\n"))
    return ""


@endpoint("torrents", "setCategory", changes=True)
def set_category(call: Call) -> str:
    name = call.need("category").strip()
    ctx = call.ctx
    if name and name not in ctx.store.categories():
        raise QbtError(409, "Incorrect category name")
    for torrent in call.torrents():
        ctx.manager.store_update(torrent.info_hash.hex(), category=name or None)
    return ""


def _tags(call: Call) -> list[str]:
    return list(checked_labels(split_list(call.need("tags"), ",")))


@endpoint("torrents", "tags")
def tags(call: Call) -> list[str]:
    return all_tags(call.ctx)


@endpoint("torrents", "createTags", changes=True)
def create_tags(call: Call) -> str:
    call.ctx.store.add_tags(_tags(call))
    return ""


@endpoint("torrents", "deleteTags", changes=True)
def delete_tags(call: Call) -> str:
    gone = set(_tags(call))
    ctx = call.ctx
    ctx.store.remove_tags(sorted(gone))
    for torrent in ctx.session.torrents():  # those the store does not hold
        ih = torrent.info_hash.hex()
        current = ctx.manager.labels(ih)
        if gone & set(current):
            ctx.manager.set_labels(torrent, [t for t in current if t not in gone])
    return ""


@endpoint("torrents", "addTags", changes=True)
def add_tags(call: Call) -> str:
    new = _tags(call)
    ctx = call.ctx
    ctx.store.add_tags(new)
    for torrent in call.torrents():
        current = list(ctx.manager.labels(torrent.info_hash.hex()))
        merged = current + [t for t in new if t not in current]
        ctx.manager.set_labels(torrent, checked_labels(merged))
    return ""


@endpoint("torrents", "setTags", changes=True)
def set_tags(call: Call) -> str:
    new = _tags(call)
    ctx = call.ctx
    ctx.store.add_tags(new)
    for torrent in call.torrents():
        ctx.manager.set_labels(torrent, new)
    return ""


@endpoint("torrents", "removeTags", changes=True)
def remove_tags(call: Call) -> str:
    text = call.get("tags")
    gone = set(checked_labels(split_list(text, ","))) if text else None
    ctx = call.ctx
    for torrent in call.torrents():
        current = ctx.manager.labels(torrent.info_hash.hex())
        kept = [] if gone is None else [t for t in current if t not in gone]
        ctx.manager.set_labels(torrent, kept)
    return ""
