"""Extensions created unbound and attached in create_app; client identity for rate limits."""

from __future__ import annotations

import hmac

from flask import abort, request
from flask_limiter import Limiter

from web.common import settings


def api_key_entry() -> dict | None:
    """The DFD_API_KEYS entry of the request's bearer key, None when anonymous; 401 if unknown."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, description="Authorization must be 'Bearer <api key>'")
    given = token.strip().encode()
    found = None
    # Compare against every key in constant time, so timing does not reveal a prefix match.
    for key, entry in settings().API_KEYS.items():
        if hmac.compare_digest(key.encode(), given):
            found = entry
    if found is None:
        abort(401, description="unknown API key")
    return found


def client_id() -> str:
    """Who is asking: 'key:<name>' for an API key, else 'ip:<address>' (ProxyFix-aware)."""
    entry = api_key_entry()
    if entry is not None:
        return "key:" + entry["name"]
    return "ip:" + (request.remote_addr or "unknown")


limiter = Limiter(key_func=client_id, key_prefix="dfd")
