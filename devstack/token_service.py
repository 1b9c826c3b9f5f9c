"""A token service for the test registry: Docker's token authentication, as Docker Hub, GitLab
and Harbor serve it, so that the Bearer flow is proven against a real registry.

Why a service of our own: Debian's `docker-registry` (distribution 2.8) verifies tokens
(`auth: token`) but issues none, and the tests have no internet, so no real token server can
be reached. This one implements the documented protocol
(https://distribution.github.io/distribution/spec/auth/token/ and .../auth/jwt/):
- `GET /token?service=S&scope=repository:NAME:pull` with HTTP Basic credentials (or none, for
  anonymous access, which it refuses) answers `{"token", "access_token", "expires_in",
  "issued_at"}`;
- the token is a JWT signed ES256 with a P-256 key whose certificate is the registry's
  `rootcertbundle`; its header's `kid` is the libtrust key ID of that public key (base32 of the
  first 240 bits of the SHA-256 of the DER SubjectPublicKeyInfo, in groups of 4 joined by
  ':'), which is how distribution's `token.go` finds the verifying key when there is no x5c;
- claims: iss, sub, aud (the service), exp, nbf, iat, jti, and `access` granting exactly the
  actions asked for (pull, push) on the repository asked for.
The real registry then checks the signature, issuer, audience, expiry and access: whatever it
accepts, jcp's client got right. Requests are recorded (never the credentials).

It runs its own event loop in a thread, like devstack.ratelimit's proxy.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BasicAuth, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

SERVICE = "jcp-test-registry"
ISSUER = "jcp-test-token-service"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenRequest:
    """One request the service answered (the user, never the password)."""

    user: str | None
    scope: str
    service: str
    status: int


@dataclass
class TokenService:
    root: Path
    user: str
    password: str
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    port: int = 0
    _key: ec.EllipticCurvePrivateKey = field(init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def certificate(self) -> Path:
        """The registry's rootcertbundle: a self-signed certificate of the signing key."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self._key, hashes.SHA256())
        )
        path = self.root / "token-cert.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def registry_auth(self) -> str:
        """The `auth:` section of the registry's config.yml."""
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.certificate()}\n"
        )

    def token(self, user: str, scope: str) -> str:
        access = []
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and name:
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": libtrust_key_id(self._key.public_key())}
        claims = {
            "iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + self.expires_in,
            "nbf": now - 5, "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r || s
        return f"{signing_input}.{_b64(signature)}"

    async def _handle(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        service = request.query.get("service", "")
        user = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                creds = BasicAuth.decode(header)
            except ValueError:
                creds = None
            if creds is not None and (creds.login, creds.password) == (self.user, self.password):
                user = creds.login
        if user is None or service != SERVICE:
            self.requests.append(TokenRequest(None, scope, service, 401))
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        self.requests.append(TokenRequest(user, scope, service, 200))
        token = self.token(user, scope)
        issued = dt.datetime.now(dt.UTC).isoformat()
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": self.expires_in,
             "issued_at": issued}
        )  # fmt: skip

    def start(self) -> TokenService:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/token", self._handle)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            server = site._server  # noqa: SLF001 - the port the OS chose
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        threading.Thread(target=serve, daemon=True, name="token-service").start()
        if not ready.wait(10):
            raise RuntimeError("the token service did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
