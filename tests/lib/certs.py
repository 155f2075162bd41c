"""Test PKI: a CA, server certificates (right name, wrong name, expired, self-signed, another CA).

Everything is minted locally with python3-cryptography; nothing is fetched.
"""
import datetime
import ipaddress
import os
import shutil
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _ca(cn):
    key = _key()
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key, ca_cert, cn, dns=(), ips=(), days_from=-1, days_to=30, self_signed=False):
    key = _key()
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    issuer = _name(cn) if self_signed else ca_cert.subject
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_NOW + datetime.timedelta(days=days_from))
               .not_valid_after(_NOW + datetime.timedelta(days=days_to))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(key if self_signed else ca_key, hashes.SHA256())
    return key, cert


def make_pki(directory):
    """Write the test PKI into directory and return a dict of paths."""
    os.makedirs(directory, exist_ok=True)
    ca_key, ca_cert = _ca("pam_mailauth test CA")
    other_key, other_cert = _ca("some other CA")
    paths = {"ca": os.path.join(directory, "ca.pem"),
             "other_ca": os.path.join(directory, "other-ca.pem")}
    _write(paths["ca"], ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths["other_ca"], other_cert.public_bytes(serialization.Encoding.PEM))
    leaves = {
        # The name the tests connect to is "localhost"; 127.0.0.1 is deliberately absent so
        # that connecting by IP is a genuine name mismatch.
        "server": _leaf(ca_key, ca_cert, "localhost", dns=["localhost"]),
        "server_ip": _leaf(ca_key, ca_cert, "127.0.0.1", ips=["127.0.0.1", "::1"]),
        "wrongname": _leaf(ca_key, ca_cert, "mail.example.net", dns=["mail.example.net"]),
        "expired": _leaf(ca_key, ca_cert, "localhost", dns=["localhost"], days_from=-10,
                         days_to=-2),
        "selfsigned": _leaf(None, None, "localhost", dns=["localhost"], self_signed=True),
        "untrusted": _leaf(other_key, other_cert, "localhost", dns=["localhost"]),
    }
    # Hashed directories ("1a2b3c4d.0" links, as /etc/ssl/certs has) for ca_dir/SSL_CERT_DIR.
    for name in ("ca", "other_ca"):
        d = os.path.join(directory, name + "_dir")
        os.makedirs(d, exist_ok=True)
        shutil.copy(paths[name], os.path.join(d, name + ".pem"))
        subprocess.run(["openssl", "rehash", d], check=True, stdout=subprocess.DEVNULL)
        paths[name + "_dir"] = d
    for name, (key, cert) in leaves.items():
        paths[name + "_cert"] = os.path.join(directory, name + ".pem")
        paths[name + "_key"] = os.path.join(directory, name + ".key")
        _write(paths[name + "_cert"], cert.public_bytes(serialization.Encoding.PEM))
        _write(paths[name + "_key"], _pem_key(key), 0o600)
    return paths
