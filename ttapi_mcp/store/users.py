"""Whose rows these are: per-user isolation of images, jobs and requests.

Every row records its user (``user_id``): the access token's subject in OAuth mode, the
one fixed :data:`LOCAL_USER` in stdio and static-token modes (and for every row written
before users existed). The store asks ``current_user()`` (set by the server) on each
read: a user sees only their own rows, and anything else is simply not there, so
another user's job id or image URI answers "not found", never "forbidden".
``None`` means no user scope: the server's own work outside any request (recovery,
collectors, doctor), which must see every row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LOCAL_USER = "local"
"""The owner of everything in stdio and static-token modes."""


def no_user() -> str | None:
    return None


class UsersMixin:
    """The user scope of the store's reads; mixed into :class:`ImageStore`."""

    current_user: Callable[[], str | None] = staticmethod(no_user)

    def _owner_for_write(self) -> str:
        return self.current_user() or LOCAL_USER

    def _scope(self, column: str = "user_id") -> tuple[str, list[Any]]:
        """``(" AND <column> = ?", [user])`` inside a request, nothing outside one."""
        user = self.current_user()
        return ("", []) if user is None else (f" AND {column} = ?", [user])
