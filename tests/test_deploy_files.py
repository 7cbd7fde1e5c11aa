"""The deployment files, checked as far as this machine can (no Docker, no systemd running).

- ``install.sh`` (the Dockerfile's install step) runs into a fresh virtual environment;
  the Dockerfile's ``CMD``, with its ``ENV``, then serves from it and its
  ``HEALTHCHECK`` passes against that server.
- ``trio_books.service`` passes ``systemd-analyze verify`` without a warning.
- ``compose.yaml`` and ``kubernetes.yaml`` are parsed, and what the service relies on is
  read back from them: secrets never written in, the probes on the right paths, a stop
  that leaves time for the graceful drain.
``deploy/nginx.conf`` runs for real in ``test_behind_a_proxy.py``.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from processes import free_port
from tools import find

from trio_books.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
GRACEFUL_TIMEOUT = Settings.model_fields["graceful_timeout"].default
STARTUP_LIMIT = 60.0


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, rest), continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile_env(rest: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(rest))


def test_the_dockerfile_install_cmd_and_healthcheck_work_from_a_fresh_venv(
    tmp_path: Path,
) -> None:
    steps = instructions((DEPLOY / "Dockerfile").read_text())
    keywords = [keyword for keyword, _ in steps]
    assert keywords[0] == "FROM"
    assert steps[0][1].startswith("python:3.11-slim")
    # Never root when serving: USER comes before CMD and names the user made for it.
    assert keywords.index("USER") < keywords.index("CMD")
    assert dict(steps)["USER"] == "trio_books"
    # The install step is install.sh, over sources copied in; run it the same way here.
    (run,) = [rest for keyword, rest in steps if keyword == "RUN" and "install.sh" in rest]
    copied = tmp_path / "src"
    for keyword, rest in steps:
        if keyword == "COPY":
            *sources, target = rest.split()
            for source in sources:
                into = copied / Path(target).relative_to("/opt/trio_books/src")
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, into, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    into.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, into)
    venv = tmp_path / "venv"
    command = run.split("&&")[0].split()
    assert command[0] == "/opt/trio_books/src/deploy/install.sh"
    installed = subprocess.run(
        [str(copied / "deploy" / "install.sh"), str(venv)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert installed.stdout.strip().endswith("0.1.0")
    # Only serving's packages: none of the development set came along.
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)}
    assert "trio-books" in names
    assert "hypercorn" in names
    assert not names & {"pytest", "playwright", "matplotlib", "schemathesis", "mypy"}

    env_lines = [rest for keyword, rest in steps if keyword == "ENV"]
    environment = {key: value for rest in env_lines for key, value in dockerfile_env(rest).items()}
    assert environment["TRIO_BOOKS_PRESET"] == "production"
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd[:4] == ["python", "-m", "trio_books", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    healthcheck = dict(steps)["HEALTHCHECK"]
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    port, metrics_port = free_port(), free_port()
    # The image's command, from the fresh environment, on this test's ports (loopback).
    served = [*cmd, "--port", str(port), "--host", "127.0.0.1", "--workers", "1"]
    env = {
        **os.environ,
        **environment,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "TRIO_BOOKS_METRICS_PORT": str(metrics_port),
        "TRIO_BOOKS_ES_URLS": "http://127.0.0.1:9",  # the liveness check needs none
    }
    server = subprocess.Popen(
        served, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "not serving in time"
            time.sleep(0.1)
        checked = subprocess.run(
            [arg.replace("5000", str(port)) for arg in probe], env=env, capture_output=True
        )
        assert checked.returncode == 0, checked.stderr
        # The page's files came with the installed package, and the figures on their port.
        assert "ui/app.js" in httpx.get(f"http://127.0.0.1:{port}/ui").text
        assert httpx.get(f"http://127.0.0.1:{port}/ui/app.js").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200
        # The production preset: no interactive docs.
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 404
        server.terminate()
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()


@pytest.mark.needs("systemd-analyze")
def test_the_systemd_unit_verifies_and_stops_the_way_the_workers_drain(tmp_path: Path) -> None:
    analyze = find("systemd-analyze")
    assert analyze is not None
    text = (DEPLOY / "trio_books.service").read_text()
    unit = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert unit["KillMode"] == "mixed"  # SIGTERM to the parent alone, which drains the workers
    assert "--workers" in unit["ExecStart"]
    assert int(unit["TimeoutStopSec"]) > GRACEFUL_TIMEOUT + 5
    for hardening in ("DynamicUser", "NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert unit[hardening] == "yes", hardening
    assert unit["ProtectSystem"] == "strict"
    # Verified with the interpreter this test runs on in place of /opt/trio_books/venv's.
    local = tmp_path / "trio_books.service"
    local.write_text(text.replace("/opt/trio_books/venv/bin/python", sys.executable))
    verified = subprocess.run(
        [analyze, "verify", "--man=no", str(local)], capture_output=True, text=True
    )
    assert (verified.returncode, verified.stderr) == (0, "")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_takes_its_secrets_from_the_environment_and_waits_for_a_healthy_node() -> None:
    services = compose()["services"]
    assert set(services) == {"certificates", "elasticsearch", "trio_books"}
    node, api = services["elasticsearch"], services["trio_books"]
    assert node["environment"]["xpack.security.enabled"] == "true"
    assert node["environment"]["xpack.security.http.ssl.enabled"] == "true"
    assert node["environment"]["ELASTIC_PASSWORD"].startswith("${ELASTIC_PASSWORD:?")
    assert api["environment"]["TRIO_BOOKS_ES_PASSWORD"].startswith("${ELASTIC_PASSWORD:?")
    assert api["environment"]["TRIO_BOOKS_CURSOR_KEY"].startswith("${TRIO_BOOKS_CURSOR_KEY:?")
    assert api["environment"]["TRIO_BOOKS_ES_URLS"].startswith("https://")
    assert api["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert node["depends_on"]["certificates"]["condition"] == "service_completed_successfully"
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert int(api["stop_grace_period"].rstrip("s")) > GRACEFUL_TIMEOUT + 5
    # The CA the service trusts is the one the node's certificate was made with.
    ca = api["environment"]["TRIO_BOOKS_ES_CA_CERTS"]
    mount = next(v.split(":")[1] for v in api["volumes"] if v.startswith("certs:"))
    assert ca.removeprefix(mount + "/") == node["environment"][
        "xpack.security.http.ssl.certificate_authorities"
    ].removeprefix("certs/")
    # Every setting named in the service's environment is one the service reads.
    for name in api["environment"]:
        assert name.removeprefix("TRIO_BOOKS_").lower() in Settings.model_fields, name


# Quotes, a backslash, a space and what a shell would expand: the password must reach
# Elasticsearch as it is.
HOSTILE_PASSWORD = 'pa"ss\\wo rd $HOME `id` %s'


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 and keeps the ``Authorization`` header of each request."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.needs("curl")
def test_the_nodes_healthcheck_passes_a_hostile_password_to_curl_intact() -> None:
    """The node's healthcheck, run by the shell, against a loopback server that records it.

    The command is compose's, with its address swapped for the recorder's: the password
    goes to curl as a config file on standard input, quoted and escaped, never in argv.
    """
    check = compose()["services"]["elasticsearch"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    command = check[1].replace("$$", "$")
    # Never in a command line: the password variable is read by the shell's printf alone.
    assert re.findall(r"(\S+) '%s' \"\$ELASTIC_PASSWORD\"", command) == ["printf"]
    assert command.count("$ELASTIC_PASSWORD") == 1
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    recording = threading.Thread(target=server.serve_forever, daemon=True)
    recording.start()
    try:
        address = f"http://127.0.0.1:{server.server_address[1]}"
        assert "https://localhost:9200" in command
        ran = subprocess.run(
            ["sh", "-c", command.replace("https://localhost:9200", address)],
            env={"PATH": os.environ["PATH"], "ELASTIC_PASSWORD": HOSTILE_PASSWORD},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert ran.returncode == 0, ran.stderr
    (authorization,) = _Recorder.seen
    scheme, _, encoded = authorization.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"elastic:{HOSTILE_PASSWORD}"


def test_the_kubernetes_example_probes_drains_and_keeps_secrets_in_a_secret() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    assert [document["kind"] for document in documents] == ["Deployment", "Service"]
    pod = documents[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pause + GRACEFUL_TIMEOUT + 5
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {item["name"]: item for item in container["env"]}
    for secret in ("TRIO_BOOKS_ES_PASSWORD", "TRIO_BOOKS_CURSOR_KEY"):
        assert "value" not in env[secret]
        assert "secretKeyRef" in env[secret]["valueFrom"]
    for name in env:
        assert name.removeprefix("TRIO_BOOKS_").lower() in Settings.model_fields, name
    assert container["args"][:4] == ["python", "-m", "trio_books", "serve"]
