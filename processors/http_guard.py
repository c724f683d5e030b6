"""Who may read the processor's /metrics, and the TLS it is served with (`metrics.*` config keys).

Token, users and certificate files are re-read when they change (their mtime, size or inode), so a
secret or a certificate is rotated by replacing the file, without a restart. Credentials are
compared in constant time, and no secret is ever logged. /healthz and / stay open: they answer only
whether the processor is up, which a liveness probe must learn without holding a secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import ssl
from pathlib import Path

from .config import MetricsConfig

logger = logging.getLogger(__name__)

_Stamp = tuple[int, int, int]


def _stamp(*paths: Path) -> tuple[_Stamp, ...] | None:
    try:
        stats = [os.stat(path) for path in paths]
    except OSError:
        return None
    return tuple((st.st_mtime_ns, st.st_size, st.st_ino) for st in stats)


class _SecretLines:
    """The non-empty lines of a secret file, re-read when the file changes. A file that cannot be
    read keeps the last lines read (a rotation replacing it is not a window without auth); an
    empty file accepts nobody."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[_Stamp, ...] | None = None
        self._lines: tuple[bytes, ...] = ()
        self.current()

    def current(self) -> tuple[bytes, ...]:
        stamp = _stamp(self.path)
        if stamp is not None and stamp != self._stamp:
            try:
                data = self.path.read_bytes()
            except OSError as error:
                logger.warning("cannot read %s (%s); keeping the previous credentials", self.path, error)
            else:
                self._stamp = stamp
                self._lines = tuple(line.strip() for line in data.splitlines() if line.strip())
                if not self._lines:
                    logger.warning("%s holds no credentials: every /metrics request is refused", self.path)
        return self._lines


def _matches(candidate: bytes, accepted: tuple[bytes, ...]) -> bool:
    # every entry is compared, so the time taken does not tell which one (or how much) matched
    found = False
    for entry in accepted:
        found |= hmac.compare_digest(candidate, entry)
    return found


class MetricsGuard:
    """Authorization and TLS of the /metrics listener, from `metrics.auth` and `metrics.tls`."""

    def __init__(self, config: MetricsConfig) -> None:
        auth = config.auth
        self._tokens = _SecretLines(auth.bearer_token_file) if auth.bearer_token_file else None
        self._users = _SecretLines(auth.basic_users_file) if auth.basic_users_file else None
        self.challenge = 'Bearer realm="metrics"' if self._tokens else 'Basic realm="metrics"'
        self._tls_files = (config.tls.cert_file, config.tls.key_file)
        self._tls_stamp: tuple[_Stamp, ...] | None = None
        self._tls_context: ssl.SSLContext | None = None

    @property
    def protected(self) -> bool:
        return self._tokens is not None or self._users is not None

    def authorized(self, authorization: str | None) -> bool:
        """Whether the Authorization header's credentials are accepted (always, without auth)."""
        if not self.protected:
            return True
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        presented = credentials.strip().encode("latin-1", "replace")
        if self._tokens is not None:
            accepted = self._tokens.current()
            return scheme.lower() == "bearer" and bool(presented) and _matches(presented, accepted)
        assert self._users is not None
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(presented, validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in decoded and _matches(decoded, self._users.current())

    # -- TLS ---------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext | None:
        """The listener's context (None: plaintext). Each handshake checks the certificate files
        and moves the connection to a context with the new pair once they change."""
        cert, key = self._tls_files
        if cert is None or key is None:
            return None
        base = self._load(cert, key)
        if base is None:
            raise ssl.SSLError(f"cannot load the /metrics certificate {cert} and key {key}")
        base.sni_callback = self._on_handshake
        return base

    def _load(self, cert: Path, key: Path) -> ssl.SSLContext | None:
        stamp = _stamp(cert, key)
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:
            logger.warning("cannot load %s / %s (%s); keeping the previous certificate", cert, key, error)
            return None
        self._tls_stamp, self._tls_context = stamp, context
        return context

    def _on_handshake(self, connection: ssl.SSLObject, _server_name: str | None, _: ssl.SSLContext) -> None:
        cert, key = self._tls_files
        assert cert is not None and key is not None
        if _stamp(cert, key) != self._tls_stamp:
            self._load(cert, key)
        if self._tls_context is not None and connection.context is not self._tls_context:
            connection.context = self._tls_context
