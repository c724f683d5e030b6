"""Certificates for the security tests, generated per test with the `cryptography` package."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM bytes and as objects."""

    cert: bytes
    key: bytes
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def issue(
    name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    serial: int | None = None,
    usage: str = "",
) -> Issued:
    """A certificate named `name`, signed by `issuer` (self-signed without one). A leaf is valid
    for 127.0.0.1 and localhost; `usage` ("server" or "client") adds that extended key usage."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        builder = builder.add_extension(_CA_USAGE, critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    if usage:
        oid = ExtendedKeyUsageOID.CLIENT_AUTH if usage == "client" else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([oid]), critical=False)
    certificate = builder.sign(issuer.private_key if issuer else key, hashes.SHA256())
    return Issued(
        cert=certificate.public_bytes(serialization.Encoding.PEM),
        key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        certificate=certificate,
        private_key=key,
    )


@dataclass(frozen=True)
class Pair:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Authority:
    """A CA whose certificate is written to `cert_file`; it issues leaves written as files."""

    cert_file: Path
    issued: Issued

    def issue(self, folder: Path, name: str, *, client: bool = False) -> Pair:
        """A leaf for 127.0.0.1 and localhost (server), or a client certificate named `name`."""
        return _write(folder, name, issue(name, self.issued, usage="client" if client else "server"))


def _write(folder: Path, name: str, issued: Issued) -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(issued.cert)
    key_file.write_bytes(issued.key)
    key_file.chmod(0o600)
    return Pair(cert_file, key_file)


def authority(folder: Path, name: str = "test-ca") -> Authority:
    issued = issue(name, ca=True)
    return Authority(_write(folder, name, issued).cert_file, issued)
