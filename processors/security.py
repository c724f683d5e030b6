"""TLS credentials and bearer tokens for the processor's two hops (OTLP in, forward out).

- `server_credentials`: the listener's TLS, through grpc's dynamic credentials: the certificate,
  key and client CA files are checked at each new TLS handshake and re-read when one changed, so a
  rotated certificate is served to connections made after it without a restart.
- `TokenFile` / `TokenSource`: tokens read from a file and re-read when its modification time,
  size or inode changed (checked at most once per `CHECK_INTERVAL_SECONDS`), or a fixed token.
- `BearerCheck`: the per-request check, one metadata scan and a constant-time compare.
- `channel_credentials`, `ForwardToken`: the forward client's side.

Token values are never logged and never part of an exception message; only file paths are.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

import grpc

from .config import (
    ForwardAuthConfig,
    ForwardTlsConfig,
    ListenAuthConfig,
    ListenTlsConfig,
    bearer_token_problem,
)

logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS: Final = 1.0
AUTHORIZATION: Final = "authorization"
SCHEME: Final = "bearer"


class CredentialError(ValueError):
    """A certificate, key or token file cannot be used; the message names the file, never a secret."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CredentialError(f"{path}: cannot read: {exc.strerror}") from exc


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced (atomic rename, Kubernetes' symlink swap)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------
def _parse_tokens(path: Path, data: bytes) -> tuple[bytes, ...]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CredentialError(f"{path}: a bearer token file must be ASCII") from None
    tokens = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not tokens:
        raise CredentialError(f"{path}: no bearer token in the file")
    for number, token in enumerate(tokens, 1):
        if problem := bearer_token_problem(token):
            raise CredentialError(f"{path}: the token on non-blank line {number} {problem}")
    return tuple(token.encode() for token in tokens)


class TokenSource:
    """The accepted (or sent) tokens; a fixed one here, see TokenFile for a file."""

    def __init__(self, tokens: Sequence[bytes]) -> None:
        self._tokens = tuple(tokens)

    def tokens(self) -> tuple[bytes, ...]:
        return self._tokens


class TokenFile(TokenSource):
    """Tokens from a file, one per line, re-read when the file changes.

    Reading fails loudly at start; a later unreadable or invalid version is logged (once per
    version) and the tokens read before stay in force, so a half-written file cannot lock every
    sender out. Write the new file beside the old and rename it over, as Kubernetes does.
    """

    def __init__(
        self,
        path: Path,
        interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self._stamp = _stamp(path)
        super().__init__(_parse_tokens(path, _read(path)))
        self._next_check = clock() + interval

    def tokens(self) -> tuple[bytes, ...]:
        now = self.clock()
        if now >= self._next_check:
            self._next_check = now + self.interval
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self._tokens

    def _reload(self) -> None:
        try:
            self._tokens = _parse_tokens(self.path, _read(self.path))
        except CredentialError as exc:
            logger.warning("bearer token file changed but cannot be used, keeping the previous: %s", exc)
            return
        logger.info("bearer token file %s re-read: %d token(s)", self.path, len(self._tokens))


def token_source(file: Path | None, inline: str | None) -> TokenSource | None:
    if file is not None:
        return TokenFile(file)
    if inline is not None:
        return TokenSource((inline.encode(),))
    return None


class BearerCheck:
    """Whether a request's metadata carries `authorization: Bearer <an accepted token>`."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def allows(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
        presented = None
        for key, value in metadata or ():
            if key == AUTHORIZATION:
                presented = value
                break
        if not isinstance(presented, str):
            return False
        scheme, _, token = presented.partition(" ")
        if scheme.lower() != SCHEME:
            return False
        given = token.strip().encode("ascii", "replace")
        # Every accepted token is compared, whatever matched: the time taken tells nothing.
        allowed = False
        for accepted in self.source.tokens():
            allowed |= hmac.compare_digest(given, accepted)
        return allowed


def listener_check(config: ListenAuthConfig) -> BearerCheck | None:
    inline = config.bearer_token.get_secret_value() if config.bearer_token is not None else None
    source = token_source(config.bearer_token_file, inline)
    return None if source is None else BearerCheck(source)


class ForwardToken:
    """The `authorization` call metadata for each export to the next hop (the file's first token)."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source
        self._token = b""
        self._metadata: tuple[tuple[str, str], ...] = ()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.source.tokens()[0]
        if token is not self._token:
            self._token = token
            self._metadata = ((AUTHORIZATION, "Bearer " + token.decode()),)
        return self._metadata


def forward_token(config: ForwardAuthConfig) -> ForwardToken | None:
    inline = config.bearer_token.get_secret_value() if config.bearer_token is not None else None
    source = token_source(config.bearer_token_file, inline)
    return None if source is None else ForwardToken(source)


# --------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------
def _check_files(cert_file: Path, key_file: Path, ca_file: Path | None) -> None:
    """Refuse a certificate and key that do not belong together (e.g. half-way through a rotation)
    or a CA file holding no certificate, with the standard library's TLS, before grpc would fail
    every handshake with them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise CredentialError(
            f"{cert_file} and {key_file} are not a usable certificate and key ({exc.reason})"
        ) from None
    except OSError as exc:
        raise CredentialError(f"{cert_file} or {key_file}: cannot read: {exc.strerror}") from exc
    if ca_file is None:
        return
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise CredentialError(f"{ca_file}: not a PEM CA bundle ({exc.reason})") from None
    except OSError as exc:
        raise CredentialError(f"{ca_file}: cannot read: {exc.strerror}") from exc


class ServerCertificates:
    """The listener's certificate, key and client CA, re-read when a file changes."""

    def __init__(self, config: ListenTlsConfig) -> None:
        assert config.cert_file is not None and config.key_file is not None
        self.files = [config.cert_file, config.key_file]
        if config.client_ca_file is not None:
            self.files.append(config.client_ca_file)
        self.require_client_certificate = config.client_ca_file is not None
        self._stamps = [_stamp(path) for path in self.files]
        self._unusable: list[tuple[int, int, int] | None] | None = None
        self.initial = self._load(self._stamps)

    def _load(self, stamps: list[tuple[int, int, int] | None]) -> grpc.ServerCertificateConfiguration:
        _check_files(self.files[0], self.files[1], self.files[2] if self.require_client_certificate else None)
        cert, key = _read(self.files[0]), _read(self.files[1])
        client_ca = _read(self.files[2]) if self.require_client_certificate else None
        if [_stamp(path) for path in self.files] != stamps:
            raise CredentialError(f"{self.files[0]}: the TLS files changed while being read")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's fetcher, called at each new handshake: a new configuration, or None for "unchanged"."""
        stamps = [_stamp(path) for path in self.files]
        if stamps in (self._stamps, self._unusable):
            return None
        try:
            loaded = self._load(stamps)
        except CredentialError as exc:
            # Keep serving the previous certificate until the files change again (a rotation
            # half-way through); logged once per version of the files, not once per handshake.
            self._unusable = stamps
            logger.warning("TLS files changed but cannot be used, keeping the previous: %s", exc)
            return None
        self._stamps = stamps
        logger.info("TLS certificate re-read from %s", self.files[0])
        return loaded


def server_credentials(config: ListenTlsConfig) -> grpc.ServerCredentials | None:
    if not config.enabled:
        return None
    certificates = ServerCertificates(config)
    return grpc.dynamic_ssl_server_credentials(
        certificates.initial,
        certificates.fetch,
        require_client_authentication=certificates.require_client_certificate,
    )


def channel_credentials(config: ForwardTlsConfig) -> grpc.ChannelCredentials | None:
    if not config.active:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(config.ca_file) if config.ca_file else None,
        private_key=_read(config.key_file) if config.key_file else None,
        certificate_chain=_read(config.cert_file) if config.cert_file else None,
    )


def channel_options(config: ForwardTlsConfig) -> list[tuple[str, str]]:
    if config.active and config.server_name_override:
        return [("grpc.ssl_target_name_override", config.server_name_override)]
    return []


def is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def warn_plaintext_token(what: str, address: str) -> None:
    """A token over plaintext beyond this machine can be read by anyone on the network path."""
    if not is_loopback(address):
        logger.warning("%s: a bearer token travels in plaintext on %s; turn TLS on", what, address)


__all__ = [
    "BearerCheck",
    "CredentialError",
    "ForwardToken",
    "TokenFile",
    "TokenSource",
    "channel_credentials",
    "channel_options",
    "forward_token",
    "listener_check",
    "server_credentials",
    "warn_plaintext_token",
]
