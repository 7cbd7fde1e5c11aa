#!/bin/sh
# Install trio_books for serving into a new virtual environment: ./deploy/install.sh VENV
#
# What the Dockerfile runs, and what a host without containers runs the same way
# (the systemd unit expects /opt/trio_books/venv). Every file pip fetches is checked
# against deploy/requirements-serve.lock's hashes; the project itself is built by the
# lock's setuptools, without a build environment fetched from elsewhere.
set -eu
venv=${1:?usage: install.sh VENV}
source=$(cd "$(dirname "$0")/.." && pwd)
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
  --require-hashes -r "$source/deploy/requirements-serve.lock"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
  --no-deps --no-build-isolation "$source"
"$venv/bin/python" -m trio_books --version
