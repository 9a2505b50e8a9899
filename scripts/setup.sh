#!/bin/sh
# setup.sh - installs the Debian 12 packages fleetd builds and tests with,
# only those missing, so a fresh machine needs nothing but `make test`.
set -e
PKGS="gcc make pkg-config clang libclang-rt-14-dev llvm libuv1-dev
libmicrohttpd-dev libyaml-dev libxxhash-dev libjansson-dev libcmocka-dev libhiredis-dev
redis-server redis-tools prometheus curl python3 procps chromium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The dashboard's build (web/) needs nodejs and npm. Checked by command, not
# by package: NodeSource's nodejs carries npm and conflicts with Debian's npm
# package, so a machine with either kind of install has all it needs.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "setup: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The prometheus package would start a server as a service; we only want
# promtool, so keep services from starting during the install.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
