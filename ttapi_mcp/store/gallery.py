"""Gallery queries over the store: newest first, filtered, prompt search, keyset pages.

Why its own module: the gallery asks questions the tools never do (by model, by the tool
that made an image, by date, by words of the prompt), and each page must cost the same
with 10,000 images as with 10, so it pages by (created_at, id) like ``list_images`` and
searches through the FTS5 index the gallery migration adds (``images_fts``).
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .models import IMAGE_URI_PREFIX, StoreError

if TYPE_CHECKING:
    from .core import ImageStore

MAX_PAGE = 200

_TOOL = ("COALESCE(r.tool, CASE WHEN i.job_id IS NOT NULL AND i.job_id NOT LIKE 'local-%' "
         "THEN 'gpt4o_image' END)")
_COLUMNS = ("i.id, i.path, i.mime, i.bytes, i.width, i.height, i.model, i.prompt, "
            f"i.revised_prompt, i.job_id, i.created_at, i.parameters, {_TOOL} AS tool")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class GalleryFilter:
    """What the person narrowed the gallery to; every field optional."""

    query: str | None = None
    model: str | None = None
    tool: str | None = None
    since: str | None = None
    until: str | None = None
    job_id: str | None = None
    user_id: str | None = None  # set by Gallery from the store's current user


def _day_start(text: str, what: str) -> float:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise StoreError(f"{what} must be a date YYYY-MM-DD, got {text!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def fts_query(text: str) -> str | None:
    """Words of ``text`` as FTS5 prefix terms, all required; None when there are none.

    Each word is quoted, so nothing the person types is read as FTS5 syntax.
    """
    words = _WORD.findall(text)
    return " ".join(f'"{w}"*' for w in words[:20]) or None


def _where(f: GalleryFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    match = fts_query(f.query) if f.query else None
    if match:
        clauses.append("i.rowid IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)")
        args.append(match)
    if f.model:
        clauses.append("i.model = ?")
        args.append(f.model)
    if f.tool:
        clauses.append(f"{_TOOL} = ?")
        args.append(f.tool)
    if f.since:
        clauses.append("i.created_at >= ?")
        args.append(_day_start(f.since, "since"))
    if f.until:
        clauses.append("i.created_at < ?")
        args.append(_day_start(f.until, "until") + timedelta(days=1).total_seconds())
    if f.job_id:
        clauses.append("i.job_id = ?")
        args.append(f.job_id)
    if f.user_id is not None:
        clauses.append("i.user_id = ?")
        args.append(f.user_id)
    return clauses, args


def encode_cursor(created_at: float, image_id: str) -> str:
    raw = json.dumps([created_at, image_id]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, image_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        return float(created_at), str(image_id)
    except (ValueError, TypeError, UnicodeError):
        raise StoreError("cursor is not one this gallery gave out; start again "
                         "without a cursor") from None


def _item(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["parameters"] = json.loads(item["parameters"]) if item["parameters"] else {}
    item["uri"] = f"{IMAGE_URI_PREFIX}{item['id']}"
    return item


def gallery_page(
    conn: sqlite3.Connection, f: GalleryFilter, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, and the cursor of the next (None: the last page)."""
    count = max(1, min(int(limit), MAX_PAGE))
    clauses, args = _where(f)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        clauses.append("(i.created_at < ? OR (i.created_at = ? AND i.id < ?))")
        args += [created_at, created_at, last_id]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (f"SELECT {_COLUMNS} FROM images i LEFT JOIN requests r ON r.id = i.request_id "
           f"{where} ORDER BY i.created_at DESC, i.id DESC LIMIT ?")
    rows = conn.execute(sql, [*args, count + 1]).fetchall()
    items = [_item(r) for r in rows[:count]]
    more = len(rows) > count and items
    return items, (encode_cursor(items[-1]["created_at"], items[-1]["id"]) if more else None)


def gallery_total(conn: sqlite3.Connection, f: GalleryFilter) -> int:
    clauses, args = _where(f)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    join = "LEFT JOIN requests r ON r.id = i.request_id" if f.tool else ""
    return int(conn.execute(f"SELECT COUNT(*) FROM images i {join} {where}", args).fetchone()[0])


def gallery_models(conn: sqlite3.Connection, user_id: str | None = None) -> list[str]:
    scope, args = ("", []) if user_id is None else (" AND user_id = ?", [user_id])
    rows = conn.execute(
        f"SELECT DISTINCT model FROM images WHERE model IS NOT NULL{scope} ORDER BY 1", args)
    return [r[0] for r in rows]


class Gallery:
    """The gallery's questions to one open store, answered on its database thread."""

    def __init__(self, store: ImageStore) -> None:
        self._db = store._db  # same package: the store owns its connection and SQL
        self._user = store.current_user  # each user's gallery holds only their images

    async def page(
        self, f: GalleryFilter, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        f = replace(f, user_id=self._user())
        return await self._db.run(lambda c: gallery_page(c, f, cursor, limit))

    async def total(self, f: GalleryFilter) -> int:
        f = replace(f, user_id=self._user())
        return await self._db.run(lambda c: gallery_total(c, f))

    async def models(self) -> list[str]:
        user = self._user()
        return await self._db.run(lambda c: gallery_models(c, user))
