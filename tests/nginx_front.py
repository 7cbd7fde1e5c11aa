"""``deploy/nginx.conf`` run for real (Debian's nginx) in front of a service under test.

``front = await nursery.start(serve_front, service_port, tmp_path)`` runs nginx
with the deployment file as shipped, except its lines marked ``# set:``
(the addresses, the certificate, the included file's path), which this runner
replaces one by one; a marked line it does not know fails the test, so the
file and the test cannot drift apart. The certificate is made for the test
(``trustme``); nginx's access log, in ``FrontInfo.access_log``, holds the
client address it saw and the ``X-Forwarded-For`` it received.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import trio
from nginx_proxy import _quoted, _write_certificates, ensure_nginx, run_nginx

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# A directive whose comment marks it as this host's own value.
SET_LINE = re.compile(r"^\s*[^#\s].*#\s*set\b")


@dataclass(frozen=True)
class FrontInfo:
    url: str
    """``https://127.0.0.1:PORT``."""
    ca_certs: str
    access_log: Path


def deploy_config(
    *, port: int, upstream_port: int, certificate: Path, key: Path, proxy_conf: Path
) -> str:
    """``deploy/nginx.conf`` with each ``# set:`` line given this test's value."""
    values = {
        "server": f"server 127.0.0.1:{upstream_port};",
        "listen": f"listen 127.0.0.1:{port} ssl http2;",
        "server_name": "server_name 127.0.0.1 localhost;",
        "ssl_certificate": f"ssl_certificate {_quoted(str(certificate))};",
        "ssl_certificate_key": f"ssl_certificate_key {_quoted(str(key))};",
        "include": f"include {_quoted(str(proxy_conf))};",
    }
    lines = []
    for line in (DEPLOY / "nginx.conf").read_text().splitlines():
        if SET_LINE.match(line):
            directive = line.split()[0]
            if directive not in values:
                raise ValueError(f"deploy/nginx.conf: no test value for {line.strip()!r}")
            line = line[: len(line) - len(line.lstrip())] + values[directive]
        lines.append(line)
    return "\n".join(lines) + "\n"


def main_config(workdir: Path, error_log: Path, access_log: Path, site: Path, as_root: bool) -> str:
    """What Debian's /etc/nginx/nginx.conf does around the site file, in *workdir*."""
    temp = {
        name: _quoted(str(workdir / f"{name}_temp"))
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    return f"""\
# Written by tests/nginx_front.py for one test; everything lives in {workdir}.
{"user root;  # workers must read the test's 0700 temp directory" if as_root else ""}
daemon off;
master_process on;
worker_processes 1;
pid {_quoted(str(workdir / "nginx.pid"))};
lock_file {_quoted(str(workdir / "nginx.lock"))};
error_log {_quoted(str(error_log))} info;

events {{
    worker_connections 512;
}}

http {{
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    log_format front '$remote_addr "$request" $status $server_protocol '
                     'forwarded="$http_x_forwarded_for" id=$trio_books_request_id';
    access_log {_quoted(str(access_log))} front;
    include {_quoted(str(site))};
}}
"""


async def serve_front(
    upstream_port: int,
    workdir: Path,
    *,
    task_status: trio.TaskStatus[FrontInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run nginx with the deployment file in front of 127.0.0.1:*upstream_port* until cancelled."""
    nginx = ensure_nginx()
    files = await trio.to_thread.run_sync(_write_certificates, workdir)
    workdir = files.workdir
    client_context = ssl.create_default_context(cafile=str(files.ca))
    site = workdir / "trio_books.conf"

    def config_for(port: int) -> str:
        site.write_text(
            deploy_config(
                port=port,
                upstream_port=upstream_port,
                certificate=files.certificate,
                key=files.key,
                proxy_conf=DEPLOY / "trio_books_proxy.conf",
            )
        )
        return main_config(workdir, files.error_log, files.access_log, site, os.geteuid() == 0)

    def started(port: int) -> None:
        task_status.started(
            FrontInfo(
                url=f"https://127.0.0.1:{port}", ca_certs=str(files.ca), access_log=files.access_log
            )
        )

    await run_nginx(nginx, files, config_for, client_context, started)
