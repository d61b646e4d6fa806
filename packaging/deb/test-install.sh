#!/bin/sh
# Install the built package and check it works: `fulcrum check` on the installed default
# configuration and examples, the unit verified by systemd, the man page and completion found,
# then remove it. CI runs it on its fresh machine (.ci/run). `--isolated` runs the same in a
# private mount namespace whose /usr, /etc, /opt, /lib and /var are writable copies that vanish
# afterwards (for a shared machine).
set -eu
cd "$(dirname "$0")/../.."
DEB=$(ls -t dist/fulcrum_*.deb | head -n 1)
if [ "${1:-}" = --isolated ]; then
    exec unshare --mount --propagation private sh -eu -c '
        mount -t tmpfs tmpfs /mnt
        for d in usr etc opt lib var; do
            mkdir -p /mnt/$d.up /mnt/$d.work
            mount -t overlay overlay -o lowerdir=/$d,upperdir=/mnt/$d.up,workdir=/mnt/$d.work /$d
        done
        exec "$0"' "$(pwd)/packaging/deb/test-install.sh"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "./$DEB"  # with its dependencies (adduser)
test -x /opt/fulcrum/bin/fulcrum
fulcrum --version
fulcrum check -q -c /etc/fulcrum/fulcrum.toml || { echo "check failed: $?"; exit 1; }
# the TLS example names /tmp/www.pem: make it as its comment says
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=www.example.com \
    -keyout /tmp/www.key -out /tmp/www.pem 2>/dev/null
for example in /usr/share/doc/fulcrum/examples/*.toml; do
    fulcrum check -q -c "$example" 2>/dev/null || { echo "check of $example failed"; exit 1; }
done
test "$(readlink -f /usr/bin/fulcrum)" = /opt/fulcrum/bin/fulcrum
test -x /usr/lib/ocf/resource.d/fulcrum/fulcrum
test -f /usr/share/bash-completion/completions/fulcrum
test -f /usr/share/man/man1/fulcrum.1.gz
getent passwd fulcrum >/dev/null
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/fulcrum.service
fi
if command -v man >/dev/null; then
    man -w fulcrum >/dev/null
fi
apt-get remove -y -q fulcrum
test ! -e /usr/bin/fulcrum
rm -f /tmp/www.pem /tmp/www.key
echo "package installs, checks its configuration and removes cleanly: $DEB"
