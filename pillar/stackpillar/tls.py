"""Private TLS for the stack's own services (pgBackRest's server): a CA and
one certificate per host, derived from one site secret.

Every key is an Ed25519 key whose 32 bytes are HMAC-SHA256(seed, label),
and Ed25519 signatures are deterministic, so each render gives the very same
PEM: the pillar needs no state of its own and a re-apply changes nothing.
The seed never leaves the pillar renderer; a host receives the CA
certificate and its own key and certificate only. A new seed rotates them all.
"""
import datetime
import hashlib
import hmac
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOT_BEFORE = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
# RFC 5280's "no well-defined expiration date": rotation is a new seed.
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


def _key(seed, label):
    return Ed25519PrivateKey.from_private_bytes(hmac.new(seed.encode(), label.encode(), hashlib.sha256).digest())


def _serial(label):
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:16], "big") >> 1


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _ca(seed, purpose):
    key = _key(seed, f"{purpose}:ca")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"django-stack {purpose} CA")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_serial(f"{purpose}:ca"))
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, None))
    return key, cert


def host_credentials(seed, purpose, host_id, address):
    """{'ca', 'cert', 'key'} as PEM for ``host_id``: its certificate names
    it (CN, which pgBackRest's tls-server-auth matches) and its address
    (SAN, which clients check), for both server and client use."""
    ca_key, ca_cert = _ca(seed, purpose)
    key = _key(seed, f"{purpose}:host:{host_id}")
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_id)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(_serial(f"{purpose}:host:{host_id}"))
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(host_id), x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, None))
    return {
        "ca": _pem(ca_cert),
        "cert": _pem(cert),
        "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode(),
    }
