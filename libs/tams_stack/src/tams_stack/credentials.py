"""The local stack's credentials: an admin user for the API and the internal service token.

Authentication is on in the local stack too (it is what users run). So that a newcomer is
not locked out, `tams up` creates a user `admin` with every scope and a generated password,
kept in `<data dir>/admin-password` (readable by you only) and reused on the next start; the
gateway gets its scrypt hash in `<data dir>/auth-users.json`. Nothing here applies when you
configure users yourself (`TAMS_AUTH_USERS`, `TAMS_AUTH_USERS_FILE`) or switch
authentication off (`TAMS_AUTH_DISABLED=true`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tams_runtime.passwords import InvalidHash, hash_password, verify_password

ADMIN = "admin"
PASSWORD_FILE = "admin-password"
USERS_FILE = "auth-users.json"
TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class LocalAdmin:
    user: str
    password: str
    password_file: Path


def _write_private(path: Path, text: str) -> None:
    """Create or replace a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def _stored_hash(users_file: Path) -> str | None:
    try:
        entry = json.loads(users_file.read_text()).get(ADMIN) or {}
    except (OSError, ValueError, AttributeError):
        return None
    value = entry.get("password")
    return value if isinstance(value, str) else None


def ensure_local_admin(data_dir: Path) -> LocalAdmin:
    """The admin's password (generated once) and a users file holding its hash."""
    password_file = data_dir / PASSWORD_FILE
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(18)
        _write_private(password_file, password + "\n")
    users_file = data_dir / USERS_FILE
    stored = _stored_hash(users_file)
    try:
        current = stored is not None and verify_password(password, stored)
    except InvalidHash:
        current = False
    if not current:
        users = {ADMIN: {"password": hash_password(password), "scopes": ["admin"], "groups": []}}
        _write_private(users_file, json.dumps(users, indent=2) + "\n")
    return LocalAdmin(ADMIN, password, password_file)


def local_auth_env(env: dict[str, str], data_dir: Path) -> LocalAdmin | None:
    """Fill in the local stack's authentication settings in `env` (the services' environment);
    returns the local admin, or None if the environment configures authentication itself."""
    env.setdefault("TAMS_INTERNAL_TOKEN", secrets.token_urlsafe(32))
    if env.get("TAMS_AUTH_DISABLED", "").strip().lower() in TRUE:
        return None
    if env.get("TAMS_AUTH_USERS") or env.get("TAMS_AUTH_USERS_FILE"):
        return None
    admin = ensure_local_admin(data_dir)
    env["TAMS_AUTH_USERS_FILE"] = str((data_dir / USERS_FILE).resolve())
    return admin


# --- for scripts that talk to a running gateway (the benchmarks' `--url`) -----------------


def add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=ADMIN, help="API user (default %(default)s)")
    parser.add_argument(
        "--password-file",
        type=Path,
        default=Path(".tams-data") / PASSWORD_FILE,
        help="file holding the user's password (default: the one `tams up` wrote)",
    )


def auth_from_arguments(args: argparse.Namespace) -> dict[str, str]:
    """Headers with Basic credentials from `--user`/`--password-file`; none if that file does
    not exist (a gateway with authentication off)."""
    path: Path = args.password_file
    if not path.exists():
        return {}
    return {"Authorization": basic_authorization(args.user, path.read_text().strip())}


def basic_authorization(user: str, password: str) -> str:
    """An `Authorization` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
