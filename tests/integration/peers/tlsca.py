"""A test certificate authority made with the openssl CLI: a CA and leaf
certificates it signs, for peers whose certificate chamoisd verifies
(relay_host, tls_ca_file).

    ca = TestCA(dir)                 ca.cert is the CA's PEM (tls_ca_file)
    cert, key = ca.leaf(dir, name)   a certificate for DNS name `name`
"""

import os
import subprocess
from pathlib import Path


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


class TestCA:
    __test__ = False    # not a pytest class

    def __init__(self, dir, name="chamois test CA"):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = str(self.dir / "ca.pem")
        self.key = str(self.dir / "ca-key.pem")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                 "-out", self.cert, "-days", "30", "-subj", "/CN=%s" % name,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.cert, 0o644)

    def leaf(self, dir, name):
        """cert.pem/key.pem under dir for `name` (a DNS name, or an IP
        address: then an IP subjectAltName), signed by this CA."""
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        key, csr, cert = dir / "key.pem", dir / "req.csr", dir / "cert.pem"
        ext = dir / "ext.cnf"
        kind = "IP" if name.replace(".", "").isdigit() or ":" in name else "DNS"
        ext.write_text("subjectAltName=%s:%s\nextendedKeyUsage=serverAuth\n" % (kind, name))
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                 str(csr), "-subj", "/CN=%s" % name)
        _openssl("x509", "-req", "-in", str(csr), "-CA", self.cert, "-CAkey", self.key,
                 "-CAcreateserial", "-out", str(cert), "-days", "30", "-extfile", str(ext))
        os.chmod(key, 0o600)
        return str(cert), str(key)
