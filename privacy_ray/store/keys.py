"""Keyed hashes of user ids: the store never holds a raw user id.

A user id is stored as HMAC-SHA256(secret, user_id). The secret comes, in order, from:

1. the environment variable ``PRIVACY_RAY_HMAC_KEY`` (a Kubernetes Secret exposed with
   ``env.valueFrom.secretKeyRef``);
2. the file named by ``PRIVACY_RAY_HMAC_KEY_FILE`` (a Kubernetes Secret mounted as a volume);
3. outside ``ENVIRONMENT=production`` only: a local secret file (default
   ``~/.config/privacy-ray/hmac.key``), created with a random key and a warning when missing.

In production a missing secret is an error: a made-up key would make later erasures miss.
The store records a fingerprint of the key (an HMAC of a fixed label, not the key) and refuses
writes and erasures with a different key for the same reason.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from privacy_ray.errors import ConfigError, StoreError
from privacy_ray.store.options import HMAC_ENV_VAR

log = logging.getLogger(__name__)

MIN_KEY_CHARS = 16
_FINGERPRINT_LABEL = b"privacy-ray/user-key-fingerprint/v1"


def default_secret_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "privacy-ray" / "hmac.key"


class UserKeyer:
    """Turns raw user ids into keyed hashes (hex HMAC-SHA256). Holds the secret in memory only."""

    __slots__ = ("_key", "source")

    def __init__(self, key: bytes, source: str = "explicit") -> None:
        if len(key) < MIN_KEY_CHARS:
            msg = (f"the HMAC key from {source} is {len(key)} bytes; use at least "
                   f"{MIN_KEY_CHARS} random characters (e.g. `openssl rand -hex 32`)")
            raise ConfigError(msg)
        self._key = key
        self.source = source

    def __repr__(self) -> str:  # never print the key
        return f"UserKeyer(source={self.source!r}, fingerprint={self.fingerprint!r})"

    @property
    def fingerprint(self) -> str:
        """Identifies the key without revealing it; recorded in the store's manifest."""
        return hmac.new(self._key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]

    def hash(self, user_id: str) -> str:
        return hmac.digest(self._key, str(user_id).encode("utf-8"), "sha256").hex()

    def hash_many(self, user_ids: Iterable[object]) -> np.ndarray:
        """Keyed hashes of many ids (object array); repeated ids are hashed once."""
        cache: dict[object, str] = {}
        out = []
        for u in user_ids:
            h = cache.get(u)
            if h is None:
                h = cache[u] = self.hash(str(u))
            out.append(h)
        return np.asarray(out, dtype=object)

    @classmethod
    def from_environment(
        cls,
        *,
        env_var: str = HMAC_ENV_VAR,
        secret_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        environment: str | None = None,
    ) -> UserKeyer:
        """Resolve the secret as described in the module docstring."""
        environ = os.environ if environ is None else environ
        environment = environment or environ.get("ENVIRONMENT", "development")
        value = environ.get(env_var)
        if value:
            return cls(value.strip().encode("utf-8"), source=f"environment variable {env_var}")
        file_var = f"{env_var}_FILE"
        mounted = environ.get(file_var)
        if mounted:
            path = Path(mounted)
            if not path.is_file():
                msg = (f"{file_var} names {mounted}, which does not exist; mount the Kubernetes "
                       f"Secret there or unset {file_var}")
                raise ConfigError(msg)
            return cls(path.read_bytes().strip(), source=f"file {mounted}")
        if environment == "production":
            msg = (f"ENVIRONMENT=production and no HMAC secret: set {env_var} (e.g. from a "
                   f"Kubernetes Secret) or {file_var} to a mounted secret file")
            raise ConfigError(msg)
        path = Path(secret_file) if secret_file else default_secret_file()
        if path.is_file():
            return cls(path.read_bytes().strip(), source=f"file {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
        log.warning(
            "no %s set: created a local HMAC secret at %s (development only; keep it to be "
            "able to erase users later, and set %s in production)", env_var, path, env_var,
        )
        return cls(key.encode("utf-8"), source=f"file {path}")


def check_fingerprint(keyer: UserKeyer, expected: str | None, store: str) -> None:
    """Refuse a key that differs from the one the store was written with."""
    if expected and keyer.fingerprint != expected:
        msg = (f"the HMAC key from {keyer.source} (fingerprint {keyer.fingerprint}) is not the "
               f"key store {store} was built with (fingerprint {expected}); set "
               f"{HMAC_ENV_VAR} to that key, or erasures would silently miss users")
        raise StoreError(msg)
