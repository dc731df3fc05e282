"""A CA and one certificate per node for a qcore cluster, with the `cryptography` package.

    python examples/make_certs.py node1=10.0.0.1 node2=10.0.0.2 node3=db3.example.net

writes ca.pem/ca.key and nodeN.pem/nodeN.key in the working directory. Each
node certificate names the host of its node's --ws-addr (peers check it) and
serves both as server and as client certificate (--peer-cert-auth). Keep
ca.key offline; give each node only ca.pem and its own pair (docs/security.md).
Where ca.pem and ca.key exist already, they sign the new certificates (a node
added later must be trusted by the others): the CA is made only once.
"""
import datetime
import ipaddress
import os
import sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

def write(path, key, cert):
    if key is not None:
        with open(os.open(path + ".key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with open(path + ".pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))

def build(subject, issuer, public_key, signing_key, days, extensions):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
         .serial_number(x509.random_serial_number()).not_valid_before(now)
         .not_valid_after(now + datetime.timedelta(days=days)))
    for ext, critical in extensions:
        b = b.add_extension(ext, critical)
    return b.sign(signing_key, hashes.SHA256())

if os.path.exists("ca.pem") and os.path.exists("ca.key"):  # the cluster's CA: sign with it
    with open("ca.key", "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    with open("ca.pem", "rb") as f:
        ca_name = x509.load_pem_x509_certificate(f.read()).subject
    print("signing with the CA in ca.pem and ca.key")
elif os.path.exists("ca.pem") or os.path.exists("ca.key"):
    sys.exit("make_certs: found only one of ca.pem and ca.key; give both (to sign with that CA) or neither")
else:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qcore cluster CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, 3650, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),  # keyCertSign, cRLSign
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
    ])
    write("ca", ca_key, ca)
    print("wrote a new CA: ca.pem (give it to every node and client), ca.key (keep it offline)")
for spec in sys.argv[1:]:  # NAME=HOST, e.g. node1=10.0.0.1 or node2=db2.example.net
    name, host = spec.split("=")
    try:
        san = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, key.public_key(), ca_key, 825, [
        (x509.SubjectAlternativeName([san]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),  # digitalSignature
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ])
    write(name, key, cert)
    print(f"wrote {name}.pem and {name}.key for {host}")
