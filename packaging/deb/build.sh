#!/bin/sh
# make deb: a Debian package of fulcrum built from this repository with plain dpkg-deb.
#
# fulcrum and its Python dependencies go in a virtual environment at /opt/fulcrum (made with
# Debian's /usr/bin/python3, so it runs on the same release: bookworm builds for bookworm),
# with /usr/bin/fulcrum pointing into it; beside it the systemd unit, the OCF agent, the man
# page, bash completion, the docs and a default /etc/fulcrum/fulcrum.toml (a conffile).
# Nothing here needs root: the tree is owned by root in the archive (--root-owner-group).
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
VERSION=$($PYTHON -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)  # uvloop, httptools and pydantic-core are compiled
WORK=build/deb
ROOT=$WORK/root
OUT=dist/fulcrum_${VERSION}_${ARCH}.deb
rm -rf "$WORK"
mkdir -p "$ROOT/DEBIAN" dist

# the venv is built where it will not live, then its absolute paths are rewritten
$PYTHON -m venv "$ROOT/opt/fulcrum"
"$ROOT/opt/fulcrum/bin/pip" install -q --no-warn-script-location --no-compile .
here=$(cd "$ROOT" && pwd)
grep -rlI --null "$here/opt/fulcrum" "$ROOT/opt/fulcrum/bin" | xargs -0 sed -i "s|$here/opt/fulcrum|/opt/fulcrum|g"
find "$ROOT/opt/fulcrum" -name __pycache__ -prune -exec rm -rf {} +  # compiled by postinst

install -d "$ROOT/usr/bin" "$ROOT/etc/fulcrum" "$ROOT/lib/systemd/system" \
    "$ROOT/usr/lib/ocf/resource.d/fulcrum" "$ROOT/usr/share/man/man1" \
    "$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/doc/fulcrum/examples" \
    "$ROOT/etc/logrotate.d"
ln -s /opt/fulcrum/bin/fulcrum "$ROOT/usr/bin/fulcrum"
install -m 644 packaging/deb/fulcrum.toml "$ROOT/etc/fulcrum/fulcrum.toml"
install -m 644 packaging/systemd/fulcrum.service "$ROOT/lib/systemd/system/fulcrum.service"
install -m 755 packaging/ocf/fulcrum "$ROOT/usr/lib/ocf/resource.d/fulcrum/fulcrum"
# fulcrum(1) from the CLI as installed (the committed copy may lag a new command)
"$ROOT/opt/fulcrum/bin/python" -m fulcrum.cli.manpage | gzip -9n > "$ROOT/usr/share/man/man1/fulcrum.1.gz"
# click writes the completion script for the shell it is asked for
_FULCRUM_COMPLETE=bash_source "$ROOT/opt/fulcrum/bin/python" "$ROOT/opt/fulcrum/bin/fulcrum" \
    > "$ROOT/usr/share/bash-completion/completions/fulcrum"
grep -q _fulcrum_completion "$ROOT/usr/share/bash-completion/completions/fulcrum"
install -m 644 README.md docs/*.md "$ROOT/usr/share/doc/fulcrum/"
install -m 644 src/fulcrum/examples/*.toml "$ROOT/usr/share/doc/fulcrum/examples/"
install -m 644 LICENSE "$ROOT/usr/share/doc/fulcrum/copyright"
cat > "$ROOT/etc/logrotate.d/fulcrum" <<'ROT'
/var/log/fulcrum/*.log {
    weekly
    rotate 8
    compress
    delaycompress
    missingok
    notifempty
    postrotate
        systemctl reload fulcrum >/dev/null 2>&1 || true
    endscript
}
ROT

cat > "$ROOT/DEBIAN/control" <<CTRL
Package: fulcrum
Version: $VERSION
Architecture: $ARCH
Maintainer: fulcrum maintainers <fulcrum@localhost>
Section: net
Priority: optional
Depends: python3 (>= 3.11), python3 (<< 3.$(( $($PYTHON -c 'import sys; print(sys.version_info[1])') + 1 ))), adduser
Recommends: nftables, iproute2
Suggests: conntrackd, pacemaker
Installed-Size: $(du -sk "$ROOT" | cut -f1)
Description: high-availability TCP and HTTP load balancer
 One tool for what pen, Apache mod_proxy_balancer, IPVS/ipvsadm and keepalived or
 Heartbeat did together: a userspace TCP/HTTP proxy with TLS offload and cookie
 stickiness, kernel NAT/full-NAT/DSR through nftables, VRRP failover of virtual IPs,
 configuration sync, a REST API and web UI, and importers for those tools' files.
CTRL
printf '/etc/fulcrum/fulcrum.toml\n/etc/logrotate.d/fulcrum\n' > "$ROOT/DEBIAN/conffiles"
cat > "$ROOT/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd fulcrum >/dev/null; then
        adduser --system --group --no-create-home --home /var/lib/fulcrum fulcrum >/dev/null
    fi
    install -d -o fulcrum -g fulcrum -m 750 /var/log/fulcrum
    /opt/fulcrum/bin/python -m compileall -q /opt/fulcrum/lib >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    echo "fulcrum: edit /etc/fulcrum/fulcrum.toml, then: systemctl enable --now fulcrum"
fi
POST
cat > "$ROOT/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop fulcrum >/dev/null 2>&1 || true
fi
find /opt/fulcrum -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
PRERM
cat > "$ROOT/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -rf /var/log/fulcrum
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTRM
chmod 755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT" >/dev/null
echo "$OUT"
