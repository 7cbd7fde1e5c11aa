"""A secured local Elasticsearch: TLS on HTTP, file-realm users and a service token.

``es start --secure`` provisions these once and reuses them on later starts:

* a certificate authority and one loopback certificate (``127.0.0.1`` and
  ``localhost``), made with ``elasticsearch-certutil`` into the cache's
  ``security/`` folder and shared by every secure local node (they all listen on
  127.0.0.1, so one certificate fits them all). Each node gets copies in its
  ``config/certs/``: Elasticsearch reads TLS files only from its config folder.
  The node's certificate file holds the leaf *followed by the CA*, so a client
  pinning the CA's fingerprint finds it in the chain the server presents.
* file-realm users (``elasticsearch-users``): ``trio_books_admin`` (builtin
  ``superuser``), ``trio_books_reader`` and ``trio_books_loader`` (roles of
  ``roles.yml``), and a service-account token for ``elastic/fleet-server``
  (``elasticsearch-service-tokens``). This distribution lacks ``analysis-common``,
  so the ``.security`` index cannot be created: no native users (hence no use of
  the ``elastic`` superuser) and no API keys, only file-based credentials.
  A cluster's nodes share one realm, made once in ``security/realm-<first port>/``,
  so any node accepts the same passwords.
* ``secure.json`` in the node's folder (mode 0600, the invoking user's): URL, CA
  file, CA fingerprint, the three users' passwords and the service token.

The pure pieces (settings, ``roles.yml``, parsing tool output, fingerprints,
the ``secure.json`` format) are plain functions; :func:`provision` does the I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import ssl
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import trio

from trio_books.errors import LocalElasticsearchError

if TYPE_CHECKING:
    from trio_books.es.distribution import Say
    from trio_books.es.layout import NodeLayout
    from trio_books.es.server_user import Owner

SECURE_FILE = "secure.json"
ADMIN_USER = "trio_books_admin"
READER_USER = "trio_books_reader"
LOADER_USER = "trio_books_loader"
SERVICE_ACCOUNT = "elastic/fleet-server"
SERVICE_TOKEN_NAME = "trio-books"
CERT_DAYS = 3 * 365

User = Literal["admin", "reader", "loader"]

# The users and the role each gets; superuser is builtin, the others are ours.
USER_ROLES: dict[User, tuple[str, str]] = {
    "admin": (ADMIN_USER, "superuser"),
    "reader": (READER_USER, "trio_books_reader"),
    "loader": (LOADER_USER, "trio_books_loader"),
}

# Index patterns are "*" rather than the book indices alone: the test suite and
# the demos, drills and benchmarks name their indices freely (test-*, bench-*…).
# The loader's "manage" covers aliases (8.19 has no "manage_aliases" privilege:
# Elasticsearch skips a role naming one and answers 400 to its users).
ROLES_YML = """\
# Written by trio_books (es start --secure); rewritten on every secure start.
trio_books_reader:
  cluster: [monitor]
  indices:
    - names: ["*"]
      privileges: [read, view_index_metadata]
trio_books_loader:
  cluster: [monitor, manage_index_templates]
  indices:
    - names: ["*"]
      privileges: [create_index, delete_index, manage, write, read, view_index_metadata]
"""

_TOKEN_LINE = re.compile(
    r"^SERVICE_TOKEN\s+" + re.escape(f"{SERVICE_ACCOUNT}/{SERVICE_TOKEN_NAME}") + r"\s*=\s*(\S+)",
    re.M,
)


# ---------------------------------------------------------------- the pure core


@dataclass(frozen=True)
class Credentials:
    """A file-realm user's name and password (the password is kept out of ``repr``)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SecureInfo:
    """What a client needs to reach a secured local node: the contents of ``secure.json``."""

    url: str
    ca_certs: Path
    fingerprint: str
    admin: Credentials
    reader: Credentials
    loader: Credentials
    service_token: str = field(repr=False)

    def credentials(self, user: User) -> Credentials:
        return {"admin": self.admin, "reader": self.reader, "loader": self.loader}[user]

    def environment(self, user: User = "reader", urls: str | None = None) -> dict[str, str]:
        """The service's settings for this node as environment variables.

        Args:
            user: whose credentials to hand out.
            urls: ``TRIO_BOOKS_ES_URLS`` if not this node's URL alone (a cluster).
        """
        who = self.credentials(user)
        return {
            "TRIO_BOOKS_ES_URLS": urls or self.url,
            "TRIO_BOOKS_ES_CA_CERTS": str(self.ca_certs),
            "TRIO_BOOKS_ES_USERNAME": who.username,
            "TRIO_BOOKS_ES_PASSWORD": who.password,
        }

    def ssl_context(self) -> ssl.SSLContext:
        """Verification against this node's CA alone (hostname checked: the cert names 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.ca_certs))

    def to_json(self) -> str:
        users = {
            name: {"username": who.username, "password": who.password}
            for name, who in (
                ("admin", self.admin),
                ("reader", self.reader),
                ("loader", self.loader),
            )
        }
        document = {
            "url": self.url,
            "ca_certs": str(self.ca_certs),
            "fingerprint": self.fingerprint,
            "users": users,
            "service_token": self.service_token,
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SecureInfo:
        """Parse ``secure.json``; raises ``ValueError`` (or ``KeyError``) when malformed."""
        document = json.loads(text)
        users = document["users"]

        def who(name: str) -> Credentials:
            return Credentials(str(users[name]["username"]), str(users[name]["password"]))

        return cls(
            url=str(document["url"]),
            ca_certs=Path(document["ca_certs"]),
            fingerprint=str(document["fingerprint"]),
            admin=who("admin"),
            reader=who("reader"),
            loader=who("loader"),
            service_token=str(document["service_token"]),
        )


def ca_fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate's DER in *pem*: lowercase hex, no colons."""
    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
    if match is None:
        raise ValueError("no PEM certificate found")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(match.group(0))).hexdigest()


def parse_service_token(output: str) -> str:
    """The token value in ``elasticsearch-service-tokens create``'s output."""
    match = _TOKEN_LINE.search(output)
    if match is None:
        raise LocalElasticsearchError(
            "elasticsearch-service-tokens printed no SERVICE_TOKEN line for "
            f"{SERVICE_ACCOUNT}/{SERVICE_TOKEN_NAME}"
        )
    return match.group(1)


def security_dir(layout: NodeLayout) -> Path:
    """The cache's security folder: the CA and certificate all secure nodes share, and realms."""
    return layout.cache_dir / "security"


def realm_dir(layout: NodeLayout) -> Path:
    """Where the realm of *layout*'s cluster (or single node) is made, once."""
    first = layout.cluster_ports[0] if layout.cluster_ports else layout.port
    return security_dir(layout) / f"realm-{first}"


def certs_dir(layout: NodeLayout) -> Path:
    return layout.config_dir / "certs"


def secure_file(layout: NodeLayout) -> Path:
    return layout.node_dir / SECURE_FILE


def server_settings(layout: NodeLayout) -> dict[str, str]:
    """The ``-E`` settings of a secure node: TLS on HTTP and on transport.

    A single node never talks transport to another, but Elasticsearch warns at
    every start without transport TLS ("Transport SSL must be enabled if
    security is enabled"), and the same files serve both.
    """
    certs = certs_dir(layout)
    files = {
        "key": str(certs / "node.key"),
        "certificate": str(certs / "node.crt"),
        "certificate_authorities": str(certs / "ca.crt"),
    }
    return {
        "xpack.security.enabled": "true",
        "xpack.security.http.ssl.enabled": "true",
        **{f"xpack.security.http.ssl.{key}": value for key, value in files.items()},
        "xpack.security.transport.ssl.enabled": "true",
        # Every local node has the same loopback certificate: check the CA, not names.
        "xpack.security.transport.ssl.verification_mode": "certificate",
        **{f"xpack.security.transport.ssl.{key}": value for key, value in files.items()},
    }


def read_secure_info(layout: NodeLayout) -> SecureInfo | None:
    """The node's ``secure.json``, or ``None`` if it was never provisioned (or is unreadable)."""
    try:
        return SecureInfo.from_json(secure_file(layout).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------- the I/O shell


def _write_private(path: Path, text: str) -> None:
    """Write *text* to *path* atomically, readable by its owner (the invoking user) only."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _tool(layout: NodeLayout, name: str) -> str:
    return str(layout.dist_home / "bin" / name)


async def _run_tool(command: list[str], env: Mapping[str, str], *, stdin: bytes = b"") -> str:
    """Run an Elasticsearch CLI tool; its stdout, or a one-line error naming its complaint."""
    done = await trio.run_process(
        command,
        env=dict(env),
        stdin=stdin,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    stdout = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        # The tools print "ERROR: <why>, with exit code N"; never the password (it goes by stdin).
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
        reason = errors[0] if errors else (stderr.strip().splitlines() or ["no output"])[-1]
        raise LocalElasticsearchError(
            f"{Path(command[0]).name} {command[1]} failed (exit {done.returncode}): {reason[:300]}"
        )
    return stdout


def _extract(archive: Path, member: str) -> str:
    with zipfile.ZipFile(archive) as zipped:
        return zipped.read(member).decode()


async def _ensure_certificates(layout: NodeLayout, env: Mapping[str, str], say: Say) -> None:
    """The shared CA and loopback certificate, made once with ``elasticsearch-certutil``."""
    folder = security_dir(layout)
    wanted = [folder / name for name in ("ca.crt", "ca.key", "node.crt", "node.key")]
    if all(path.exists() for path in wanted):
        return
    say("making a certificate authority and a certificate for 127.0.0.1 (once)")
    certutil = _tool(layout, "elasticsearch-certutil")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        work = Path(scratch)
        await _run_tool(
            [certutil, "ca", "--pem", "--silent", "--days", str(CERT_DAYS),
             "--out", str(work / "ca.zip")],
            env,
        )  # fmt: skip
        ca_crt, ca_key = (
            _extract(work / "ca.zip", "ca/ca.crt"),
            _extract(work / "ca.zip", "ca/ca.key"),
        )
        (work / "ca.crt").write_text(ca_crt)
        _write_private(work / "ca.key", ca_key)
        await _run_tool(
            [certutil, "cert", "--pem", "--silent", "--days", str(CERT_DAYS),
             "--ca-cert", str(work / "ca.crt"), "--ca-key", str(work / "ca.key"),
             "--ip", "127.0.0.1", "--dns", "localhost", "--name", "node",
             "--out", str(work / "node.zip")],
            env,
        )  # fmt: skip
        leaf = _extract(work / "node.zip", "node/node.crt")
        # Leaf then CA: the server presents both, so a client can pin the CA's fingerprint.
        (work / "node.crt").write_text(leaf.rstrip("\n") + "\n" + ca_crt)
        _write_private(work / "node.key", _extract(work / "node.zip", "node/node.key"))
        for name in ("ca.crt", "node.crt", "ca.key", "node.key"):
            os.replace(work / name, folder / name)


def _realm_complete(folder: Path) -> SecureInfo | None:
    """The realm's saved credentials, if every file of it is there and names our users."""
    try:
        saved = SecureInfo.from_json((folder / "credentials.json").read_text())
        users = (folder / "users").read_text()
        tokens = (folder / "service_tokens").read_text()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    names = {line.split(":", 1)[0] for line in users.splitlines()}
    if not {name for name, _ in USER_ROLES.values()} <= names:
        return None
    if f"{SERVICE_ACCOUNT}/{SERVICE_TOKEN_NAME}:" not in tokens:
        return None
    return saved


async def _ensure_realm(layout: NodeLayout, env: Mapping[str, str], say: Say) -> SecureInfo:
    """The cluster's users and service token, made once; returns them (url and CA left blank)."""
    folder = realm_dir(layout)
    folder.mkdir(mode=0o700, exist_ok=True)
    # Roles hold no secret and may change between versions of this code: always ours.
    (folder / "roles.yml").write_text(ROLES_YML)
    if (saved := _realm_complete(folder)) is not None:
        return saved
    say("creating the file-realm users and a service token (once)")
    # Start from empty files: useradd refuses an existing user, and
    # service-tokens create an existing token.
    for name in ("users", "users_roles"):
        _write_private(folder / name, "")
    (folder / "service_tokens").unlink(missing_ok=True)
    tool_env = {**env, "ES_PATH_CONF": str(folder)}
    users: dict[User, Credentials] = {}
    for user, (username, role) in USER_ROLES.items():
        password = secrets.token_urlsafe(18)
        # The password goes in by stdin (the tool prompts twice), never on a
        # command line that other local users can read in /proc.
        await _run_tool(
            [_tool(layout, "elasticsearch-users"), "useradd", username, "-r", role],
            tool_env,
            stdin=f"{password}\n{password}\n".encode(),
        )
        users[user] = Credentials(username, password)
    output = await _run_tool(
        [_tool(layout, "elasticsearch-service-tokens"), "create", SERVICE_ACCOUNT,
         SERVICE_TOKEN_NAME],
        tool_env,
    )  # fmt: skip
    saved = SecureInfo(
        url="",
        ca_certs=Path(),
        fingerprint="",
        admin=users["admin"],
        reader=users["reader"],
        loader=users["loader"],
        service_token=parse_service_token(output),
    )
    _write_private(folder / "credentials.json", saved.to_json())
    return saved


async def prepare_shared(layout: NodeLayout, *, env: Mapping[str, str], say: Say) -> SecureInfo:
    """Make (once) what the nodes of *layout*'s cluster share: certificates and realm.

    A cluster's nodes start concurrently; calling this first, once, keeps them
    from racing to make the same files.
    """
    folder = security_dir(layout)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Kept closed: it holds the CA's key and the passwords.
    folder.chmod(0o700)
    await _ensure_certificates(layout, env, say)
    return await _ensure_realm(layout, env, say)


def _install(source: Path, target: Path, mode: int, owner: Owner | None) -> None:
    """Copy a shared file into the node's config folder, owned by the server's user."""
    shutil.copyfile(source, target)
    target.chmod(mode)
    if owner is not None:
        os.chown(target, owner.uid, owner.gid)


async def provision(
    layout: NodeLayout, *, env: Mapping[str, str], owner: Owner | None, say: Say
) -> SecureInfo:
    """Give the node (whose folders exist) its certificates, realm files and ``secure.json``.

    Idempotent: what was made before is reused, so passwords stay the same
    across restarts.

    Args:
        layout: the node; its config folder must exist (``prepare_node``).
        env: the tools' environment (``ES_JAVA_HOME``…); ``ES_PATH_CONF`` is set here.
        owner: the user the server runs as, who must be able to read the files.
        say: progress messages (never a secret).

    Raises:
        LocalElasticsearchError: a tool failed.
    """
    shared = await prepare_shared(layout, env=env, say=say)
    certs = certs_dir(layout)
    certs.mkdir(exist_ok=True)
    certs.chmod(0o755)
    if owner is not None:
        os.chown(certs, owner.uid, owner.gid)
    tls, realm = security_dir(layout), realm_dir(layout)
    # The CA certificate is public (clients of any local user need it); the key
    # and the realm's files are the server's alone.
    _install(tls / "ca.crt", certs / "ca.crt", 0o644, owner)
    _install(tls / "node.crt", certs / "node.crt", 0o644, owner)
    _install(tls / "node.key", certs / "node.key", 0o600, owner)
    for name in ("roles.yml", "users", "users_roles", "service_tokens"):
        _install(realm / name, layout.config_dir / name, 0o600, owner)
    info = SecureInfo(
        url=layout.url,
        ca_certs=certs / "ca.crt",
        fingerprint=ca_fingerprint((certs / "ca.crt").read_text()),
        admin=shared.admin,
        reader=shared.reader,
        loader=shared.loader,
        service_token=shared.service_token,
    )
    # Written by us (root, when we are root) and left ours: prepare_node leaves it alone.
    _write_private(secure_file(layout), info.to_json())
    return info


def forget(layout: NodeLayout) -> None:
    """Drop the node's ``secure.json``: it is about to run without security."""
    secure_file(layout).unlink(missing_ok=True)
