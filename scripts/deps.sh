#!/usr/bin/env bash
# Installs every Debian package the build, `make run` and `make test` need.
# Idempotent and quick when everything is already there.
set -euo pipefail

packages=(
	build-essential pkg-config curl
	postgresql-15 postgresql-server-dev-15 postgresql-client-15 libpq-dev
	libwebsockets-dev libwebsockets-evlib-uv libuv1-dev
	libjansson-dev libjwt-dev
	python3 python3-websockets python3-psycopg2 python3-jwt python3-pytest
	valgrind clang libclang-rt-14-dev cppcheck clang-format
)

# Node.js runs the client SDK's tests.  These machines come with a Node.js
# that ships its own npm (and conflicts with Debian's npm package); install
# Debian's only where there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
