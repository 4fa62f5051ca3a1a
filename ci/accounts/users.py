"""Users: passwords, API tokens and the sign-in throttle.

Passwords are kept only as slow salted hashes (werkzeug's scrypt), so a stolen
database does not give them away; API tokens only as SHA-256 digests, which is
enough for 32 random bytes and cheap enough to check on every request. Failed
sign-ins are counted in Redis per user name and address: transient state that
expires by itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from functools import lru_cache

from redis import Redis
from werkzeug.security import check_password_hash, generate_password_hash

from ci import store
from ci.pipeline import keys
from ci.store import Session, StoreError
from ci.store.models import ApiToken, User

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
MIN_PASSWORD_LENGTH = 8
#: Tokens start with this, so a leaked one is recognisable (and secret scanners can find it).
TOKEN_PREFIX = "slp_"
#: How many characters of a token ``slipway token list`` shows.
SHOWN_PREFIX_LENGTH = 12
#: After this many failed sign-ins of one user from one address ...
MAX_SIGN_IN_FAILURES = 5
#: ... that user is refused from that address until this many seconds after the first.
SIGN_IN_WINDOW_SECONDS = 15 * 60
#: werkzeug's name of the hash passwords are kept with: scrypt at its default cost.
PASSWORD_HASH_METHOD = "scrypt"


def validate_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise StoreError(f"{name!r} is not a user name; use up to 40 letters, digits, `.`, "
                         "`_` and `-`, starting with a letter or digit")
    return name


def add_user(session: Session, name: str, password: str, admin: bool = False) -> User:
    """Create a user with a hashed password and commit."""
    validate_name(name)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StoreError(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters; "
                         "choose a longer one")
    hashed = generate_password_hash(password, PASSWORD_HASH_METHOD)
    return store.add_user(session, name, hashed, admin)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16), PASSWORD_HASH_METHOD)


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user whose name and password these are, or None.

    An unknown name costs the same hash check as a wrong password, so answer times
    do not tell which user names exist.
    """
    user = store.get_user(session, name) if NAME.fullmatch(name or "") else None
    if user is None:
        check_password_hash(_decoy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def session_key(user: User) -> str:
    """Bound into the session cookie: a user removed and added again (new salt) is signed out."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Make an API token for ``user`` and commit; returns it with its only plain copy."""
    if not name.strip() or len(name) > 100:
        raise StoreError("a token's name must be 1 to 100 characters; e.g. laptop or deploy")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = store.add_token(session, user, name.strip(), plain[:SHOWN_PREFIX_LENGTH],
                            _digest(plain))
    return token, plain


def user_for_token(session: Session, plain: str) -> User | None:
    """The user a presented API token belongs to, or None for an unknown or revoked one."""
    if not plain.startswith(TOKEN_PREFIX):
        return None
    return store.user_of_token(session, _digest(plain))


def sign_in_wait(redis: Redis, name: str, address: str) -> int:
    """Seconds before ``name`` may try to sign in from ``address`` again; 0: now."""
    key = keys.sign_in_failures(name, address)
    failures = int(redis.get(key) or 0)
    if failures < MAX_SIGN_IN_FAILURES:
        return 0
    return max(int(redis.ttl(key)), 1)


def sign_in_failed(redis: Redis, name: str, address: str) -> None:
    """Count a failed sign-in; the count expires a window after the first failure."""
    key = keys.sign_in_failures(name, address)
    with redis.pipeline() as pipe:
        pipe.set(key, 0, ex=SIGN_IN_WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        pipe.execute()


def sign_in_succeeded(redis: Redis, name: str, address: str) -> None:
    redis.delete(keys.sign_in_failures(name, address))
