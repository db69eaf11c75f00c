"""A throw-away CA and a certificate for 127.0.0.1, made at run time with the openssl CLI.

Nothing is installed into any trust store: the AGI trusts the CA through
REQUESTS_CA_BUNDLE and the dialplan peer through CURLOPT(ssl_cainfo), both pointing at the
run folder's ca.pem mounted into the container.  P-256 keys keep the handshakes cheap, and
the extensions satisfy Python 3.13+'s strict X.509 checks (key usage, key identifiers).
"""
import ssl
import subprocess
from pathlib import Path

LEAF_EXTENSIONS = """\
subjectAltName = IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=str(cwd), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(folder: Path) -> Path:
    """Write ca.pem, server.pem and server.key into folder; return the CA file."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=synthflow-agi benchmark CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=folder)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "leaf.ext").write_text(LEAF_EXTENSIONS)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "leaf.ext", cwd=folder)
    return folder / "ca.pem"


def server_context(folder: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(folder / "server.pem"), str(folder / "server.key"))
    return context
