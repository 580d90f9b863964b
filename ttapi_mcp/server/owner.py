"""Who is asking: the user a request's rows belong to (see :mod:`ttapi_mcp.store.users`)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from ..store.users import LOCAL_USER


def request_user(settings: Settings) -> Callable[[], str | None]:
    """The store's ``current_user``: the access token's subject in OAuth mode (None
    outside any request: the server's own work sees every row), else the one local user.

    The SDK keeps the verified token in a context variable for the request; tasks a
    request starts inherit it, so a job started by a user stays that user's.
    """
    if not settings.oauth_issuer:
        return lambda: LOCAL_USER
    from mcp.server.auth.middleware.auth_context import get_access_token

    def user() -> str | None:
        token = get_access_token()
        return token.subject if token is not None and token.subject else None

    return user
