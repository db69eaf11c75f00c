#!/usr/bin/env bash
# Install everything `make test` needs on a fresh Debian/Ubuntu host, idempotently:
# the E2E tools from apt (podman, runc, debootstrap, SIPp), systemd-analyze for the unit
# file's checks (systemd >= 250 for `security --offline`), haproxy for contrib/haproxy.cfg and
# the failover lab, dnsmasq-base (the binary alone, no service) for the failover lab's DNS SRV,
# and the project venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(podman runc debootstrap sip-tester systemd haproxy dnsmasq-base)
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]} with apt" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$VENV/.installed-$(cat setup.cfg setup.py | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "bootstrap: creating $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
echo "bootstrap: host tools and $VENV ready" >&2
