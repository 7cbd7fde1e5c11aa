"""A real TLS reverse proxy (Debian's nginx) that accepts one API key, for tests.

The test distribution of Elasticsearch cannot create API keys, so the service's
``Authorization: ApiKey <encoded>`` support is tested against this proxy:
nginx answers 401 unless the header carries exactly its one key, and forwards
everything under a path prefix (``https://127.0.0.1:PORT/es/...``) to the
upstream's root with credentials of its own. Nothing here is a mock: the
client speaks TLS to nginx and nginx speaks HTTP/1.1 (or TLS) to Elasticsearch.

``serve_api_key_proxy`` is a ``serve_*`` function: start it with
``info = await nursery.start(serve_api_key_proxy, es_url, tmp_path)``; nginx
runs as a child process for as long as the task does, and is stopped when the
task is cancelled.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import trio
import trustme
from processes import free_port

NGINX = "/usr/sbin/nginx"
STARTUP_LIMIT = 10.0
STOP_LIMIT = 5.0
BIND_ATTEMPTS = 5
API_KEY_ID = "trio-books-test"
UNAUTHORIZED_BODY = (
    '{"error":{"type":"security_exception","reason":"missing or wrong API key"},"status":401}'
)


@dataclass(frozen=True)
class ProxyInfo:
    """Where the proxy listens and what a client needs to get through it."""

    url: str
    """``https://127.0.0.1:PORT/es``: the node URL to give the service, prefix included."""
    ca_certs: str
    """Path of a PEM file holding the CA that signed the proxy's certificate."""
    api_key: str
    """The encoded key the proxy accepts: base64 of ``id:key``."""
    access_log: Path
    """nginx's access log: request line, status, X-Opaque-Id, User-Agent, upstream status and
    ``connection=ID:N`` (the Nth request on that client connection); never credentials."""


def ensure_nginx() -> str:
    """The nginx binary's path; ``nox -s tests`` and ``.ci/run`` install Debian's nginx.

    Raises:
        RuntimeError: nginx is not installed.
    """
    # /usr/sbin is often missing from a non-root PATH.
    if os.access(NGINX, os.X_OK):
        return NGINX
    if found := shutil.which("nginx"):
        return found
    raise RuntimeError("the API key tests need nginx: apt-get install nginx (nox -s tests does it)")


async def serve_api_key_proxy(
    upstream: str,
    workdir: Path,
    *,
    upstream_ca: str | None = None,
    upstream_authorization: str | None = None,
    upstream_ssl_name: str | None = None,
    prefix: str = "/es",
    task_status: trio.TaskStatus[ProxyInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run nginx as a TLS proxy accepting one API key, in front of *upstream*, until cancelled.

    Args:
        upstream: The Elasticsearch to forward to, ``http://`` or ``https://``, possibly with
            a path (requests for ``PREFIX/x`` go to ``UPSTREAM_PATH/x``).
        workdir: An existing or new directory for the config, certificates, logs and temp files.
        upstream_ca: Path of the CA PEM file that an ``https`` upstream's certificate is verified
            against (required for ``https``).
        upstream_authorization: The ``Authorization`` header nginx sends upstream in place of
            the client's (for example ``Basic ...``); none at all when ``None``.
        upstream_ssl_name: The name the upstream certificate is checked against (and sent as
            SNI): by default the upstream's host, or ``localhost`` when that is an IP address,
            since nginx checks names, not IP addresses.
        prefix: The path under which the upstream is served; ``""`` for none.
        task_status: Receives the `ProxyInfo` once nginx accepts TLS connections.

    Raises:
        RuntimeError: nginx exited early (the message ends with its error log).
        TimeoutError: nginx did not accept connections within ``STARTUP_LIMIT`` seconds.
    """
    nginx = ensure_nginx()
    target = urlsplit(upstream)
    if target.scheme == "https" and upstream_ca is None:
        raise ValueError("an https upstream needs upstream_ca")
    prefix = prefix.rstrip("/")
    files = await trio.to_thread.run_sync(_write_certificates, workdir)
    workdir = files.workdir
    api_key = base64.b64encode(f"{API_KEY_ID}:{secrets.token_urlsafe(16)}".encode()).decode()
    client_context = ssl.create_default_context(cafile=str(files.ca))

    def config_for(port: int) -> str:
        return _nginx_config(
            workdir=workdir,
            files=files,
            port=port,
            api_key=api_key,
            upstream=upstream,
            upstream_ca=upstream_ca,
            upstream_authorization=upstream_authorization,
            upstream_ssl_name=upstream_ssl_name,
            prefix=prefix,
            as_root=os.geteuid() == 0,
        )

    def started(port: int) -> None:
        task_status.started(
            ProxyInfo(
                url=f"https://127.0.0.1:{port}{prefix}",
                ca_certs=str(files.ca),
                api_key=api_key,
                access_log=files.access_log,
            )
        )

    await run_nginx(nginx, files, config_for, client_context, started)


async def run_nginx(
    nginx: str,
    files: _Files,
    config_for: Callable[[int], str],
    client_context: ssl.SSLContext,
    started: Callable[[int], None],
) -> None:
    """Run nginx with ``config_for(port)`` on a free port until cancelled; ``started(port)`` once
    it accepts TLS (another port is tried if one is taken between the probe and nginx's bind).

    Raises:
        RuntimeError: nginx exited (the message ends with its error log).
    """
    for _ in range(BIND_ATTEMPTS):
        port = free_port()
        await trio.Path(files.config).write_text(config_for(port))
        await trio.Path(files.error_log).write_text("")
        process = await trio.lowlevel.open_process(
            [nginx, "-p", str(files.workdir), "-c", str(files.config), "-e", str(files.error_log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # nginx logs to -e's file from the start; stderr only says what it cannot log.
            stderr=subprocess.DEVNULL,
            # Its own process group, so that stopping it can reach the worker too.
            start_new_session=True,
        )
        try:
            if not await _wait_until_serving(process, port, client_context, files.error_log):
                log = await trio.Path(files.error_log).read_text()
                if "Address already in use" in log:
                    continue  # another process took the port between our probe and nginx's bind
                raise RuntimeError(f"nginx exited with {process.returncode}:\n{_tail(log)}")
            started(port)
            await process.wait()
            log = await trio.Path(files.error_log).read_text()
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{_tail(log)}")
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process)
    raise RuntimeError(f"nginx could not bind a free port in {BIND_ATTEMPTS} attempts")


@dataclass(frozen=True)
class _Files:
    workdir: Path
    config: Path
    ca: Path
    certificate: Path
    key: Path
    error_log: Path
    access_log: Path


def _write_certificates(workdir: Path) -> _Files:
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    files = _Files(
        workdir=workdir,
        config=workdir / "nginx.conf",
        ca=workdir / "proxy-ca.pem",
        certificate=workdir / "proxy-cert.pem",
        key=workdir / "proxy-key.pem",
        error_log=workdir / "error.log",
        access_log=workdir / "access.log",
    )
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.key))
    for number, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(files.certificate), append=number > 0)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / f"{name}_temp").mkdir(exist_ok=True)
    return files


def _quoted(value: str) -> str:
    """*value* as an nginx string literal; nginx has no escape for ``$``, so none may appear."""
    if re.search(r'["\\$\r\n]', value):
        raise ValueError(f"cannot put {value!r} in an nginx config")
    return f'"{value}"'


def _nginx_config(
    *,
    workdir: Path,
    files: _Files,
    port: int,
    api_key: str,
    upstream: str,
    upstream_ca: str | None,
    upstream_authorization: str | None,
    upstream_ssl_name: str | None,
    prefix: str,
    as_root: bool,
) -> str:
    target = urlsplit(upstream)
    host = target.hostname or "127.0.0.1"
    server = f"[{host}]" if ":" in host else host
    address = f"{server}:{target.port or (443 if target.scheme == 'https' else 80)}"
    upstream_path = target.path.rstrip("/")
    if upstream_ssl_name is None:
        try:
            ipaddress.ip_address(host)
            upstream_ssl_name = "localhost"
        except ValueError:
            upstream_ssl_name = host
    tls_upstream = ""
    if target.scheme == "https":
        tls_upstream = f"""
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {_quoted(str(upstream_ca))};
            proxy_ssl_name {_quoted(upstream_ssl_name)};
            proxy_ssl_server_name on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;"""
    # The path after the prefix, taken from the raw request line: a variable in proxy_pass
    # sends it as the client wrote it, where "location /es/ { proxy_pass .../; }" would
    # decode it first (a document id "a%2Fb" would reach Elasticsearch as "a/b").
    escaped = re.escape(prefix)
    return f"""\
# Written by tests/nginx_proxy.py for one test; everything lives in {workdir}.
{"user root;  # workers must read the test's 0700 temp directory" if as_root else ""}
daemon off;
master_process on;
worker_processes 1;
pid {_quoted(str(workdir / "nginx.pid"))};
lock_file {_quoted(str(workdir / "nginx.lock"))};
error_log {_quoted(str(files.error_log))} info;

events {{
    worker_connections 256;
}}

http {{
    access_log off;
    client_body_temp_path {_quoted(str(workdir / "client_body_temp"))};
    proxy_temp_path {_quoted(str(workdir / "proxy_temp"))};
    fastcgi_temp_path {_quoted(str(workdir / "fastcgi_temp"))};
    uwsgi_temp_path {_quoted(str(workdir / "uwsgi_temp"))};
    scgi_temp_path {_quoted(str(workdir / "scgi_temp"))};

    # Never $http_authorization: the log must not hold a credential.
    log_format api_key_proxy '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                             'opaque_id="$http_x_opaque_id" user_agent="$http_user_agent" '
                             'upstream_status=$upstream_status request_time=$request_time '
                             'connection=$connection:$connection_requests';

    keepalive_requests 10000;
    keepalive_timeout 75s;
    client_max_body_size 100m;

    map $request_uri $upstream_uri {{
        default "";
        "~^{escaped}(?<rest>/.*)$" "{upstream_path}$rest";
        "~^{escaped}(?<query>\\?.*)?$" "{upstream_path}/$query";
    }}

    upstream trio_books_upstream {{
        server {address};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name 127.0.0.1 localhost;
        ssl_certificate {_quoted(str(files.certificate))};
        ssl_certificate_key {_quoted(str(files.key))};
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log {_quoted(str(files.access_log))} api_key_proxy;
        default_type application/json;

        # An exact, case-sensitive comparison (a map would match strings ignoring case).
        if ($http_authorization != {_quoted(f"ApiKey {api_key}")}) {{
            return 401 '{UNAUTHORIZED_BODY}';
        }}
        if ($upstream_uri = "") {{
            return 404 '{{"error":"not under {prefix or "/"}","status":404}}';
        }}

        location / {{
            proxy_pass {target.scheme}://trio_books_upstream$upstream_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {_quoted(address)};
            proxy_set_header Authorization {_quoted(upstream_authorization or "")};
            proxy_buffering off;
            proxy_read_timeout 300s;{tls_upstream}
        }}
    }}
}}
"""


async def _wait_until_serving(
    process: trio.Process, port: int, context: ssl.SSLContext, error_log: Path
) -> bool:
    """True once nginx completes a TLS handshake on *port*; False if it exits first."""
    with trio.move_on_after(STARTUP_LIMIT):
        while process.returncode is None:
            try:
                stream = await trio.open_ssl_over_tcp_stream(
                    "127.0.0.1", port, ssl_context=context, https_compatible=True
                )
            except OSError:
                pass
            else:
                try:
                    await stream.do_handshake()
                    return True
                except (trio.BrokenResourceError, OSError):
                    pass
                finally:
                    await stream.aclose()
            await trio.sleep(0.05)
            process.poll()
        await process.wait()
        return False
    log = await trio.Path(error_log).read_text()
    raise TimeoutError(f"nginx did not accept TLS within {STARTUP_LIMIT} s:\n{_tail(log)}")


async def _stop(process: trio.Process) -> None:
    """SIGTERM (nginx's fast shutdown), then SIGKILL to its process group after a deadline."""
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(STOP_LIMIT):
            await process.wait()
    if process.returncode is None:
        # A killed master would leave its worker listening, so the whole group goes: it is
        # nginx's alone (start_new_session), and the unreaped master keeps its id taken.
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _tail(log: str, lines: int = 20) -> str:
    return "\n".join(log.splitlines()[-lines:])
