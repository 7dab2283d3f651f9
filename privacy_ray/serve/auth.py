"""Bearer tokens for the data endpoints: several at once (rotation), compared in constant time.

Tokens come from ``PRIVACY_RAY_API_TOKENS`` (comma-separated) and, optionally, a file
(``PRIVACY_RAY_API_TOKENS_FILE`` or ``serve.api_tokens_file``; comma- or newline-separated).
The file is re-read whenever it changes, so rotating a mounted Kubernetes Secret needs no
restart: list the new token next to the old one, move clients over, then drop the old one.

Only SHA-256 digests of the tokens are kept in memory; a presented token is hashed and
compared with every digest using :func:`hmac.compare_digest`, without stopping at the first
match, so the time taken does not tell which token (or how much of one) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from privacy_ray.config import API_TOKENS_ENV, API_TOKENS_FILE_ENV

log = logging.getLogger(__name__)
_SPLIT = re.compile(r"[,\s]+")
#: Shorter tokens are refused when loaded: they are guessable.
MIN_TOKEN_CHARS = 16


def parse_tokens(text: str | None) -> list[str]:
    """Tokens in a comma/whitespace-separated string; blanks dropped, order kept, no repeats."""
    out: list[str] = []
    for tok in _SPLIT.split(text or ""):
        if tok and tok not in out:
            out.append(tok)
    return out


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenSet:
    """The accepted tokens, from the environment and a file that may change while we run."""

    def __init__(
        self,
        env_tokens: list[str] | None = None,
        file_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._env = [_digest(t) for t in self._checked(env_tokens or [], API_TOKENS_ENV)]
        self._file = Path(file_path).expanduser() if file_path else None
        self._file_stamp: tuple[int, int] | None = None
        self._file_digests: list[bytes] = []
        self._lock = threading.Lock()
        self._refresh_file()

    @classmethod
    def from_environment(
        cls, file_path: str | None = None, environ: Mapping[str, str] | None = None
    ) -> TokenSet:
        """Tokens from ``PRIVACY_RAY_API_TOKENS`` plus the token file (env var wins over
        ``file_path``)."""
        env = os.environ if environ is None else environ
        return cls(parse_tokens(env.get(API_TOKENS_ENV)),
                   env.get(API_TOKENS_FILE_ENV) or file_path)

    @staticmethod
    def _checked(tokens: list[str], where: str) -> list[str]:
        short = [t for t in tokens if len(t) < MIN_TOKEN_CHARS]
        if short:
            log.warning("ignoring %d API token(s) from %s shorter than %d characters",
                        len(short), where, MIN_TOKEN_CHARS)
        return [t for t in tokens if len(t) >= MIN_TOKEN_CHARS]

    def _refresh_file(self) -> None:
        if self._file is None:
            return
        try:
            st = self._file.stat()
        except OSError:
            if self._file_stamp is not None or self._file_digests:
                log.warning("API token file %s is gone; its tokens are no longer accepted",
                            self._file)
            self._file_stamp, self._file_digests = None, []
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._file_stamp:
            return
        try:
            text = self._file.read_text(encoding="utf-8")
        except OSError as e:
            log.warning("cannot read API token file %s (%s); keeping the previous tokens",
                        self._file, type(e).__name__)
            return
        digests = [_digest(t) for t in self._checked(parse_tokens(text), str(self._file))]
        with self._lock:
            self._file_stamp, self._file_digests = stamp, digests
        log.info("loaded %d API token(s) from %s", len(digests), self._file)

    @property
    def configured(self) -> bool:
        """True when at least one token is accepted."""
        self._refresh_file()
        return bool(self._env or self._file_digests)

    def __len__(self) -> int:
        self._refresh_file()
        return len(self._env) + len(self._file_digests)

    def verify(self, token: str | None) -> bool:
        """True when ``token`` is one of the accepted tokens (constant time per token)."""
        self._refresh_file()
        if not token:
            return False
        presented = _digest(token)
        with self._lock:
            digests = self._env + self._file_digests
        ok = False
        for d in digests:
            ok |= hmac.compare_digest(presented, d)
        return ok
