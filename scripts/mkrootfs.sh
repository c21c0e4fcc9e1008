#!/usr/bin/env bash
# Build the workshop's image in rootfs/: a static busybox, its applet links, and the few files a
# container expects (/etc/passwd, /etc/group, /etc/hostname, empty /proc /sys /dev /tmp); and a
# second layer in layers/web/ that step 8 puts on top of it (a web page and a script that serves
# it with busybox's httpd). Works offline. Usage: scripts/mkrootfs.sh [--force] [BUSYBOX]
set -euo pipefail

# Bump when the recipe below changes, so an older image is rebuilt.
RECIPE_VERSION=2

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/rootfs"
marker="$out/etc/box-image"

die() { echo "mkrootfs: error: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
busybox=${1:-}
if [ -z "$busybox" ]; then
    for candidate in /bin/busybox /usr/bin/busybox /usr/local/bin/busybox /sbin/busybox; do
        if [ -x "$candidate" ]; then busybox=$candidate; break; fi
    done
fi
[ -n "$busybox" ] || die "no busybox found" \
    "install a static one (Debian/Ubuntu: apt-get install busybox-static) or pass its path"
[ -x "$busybox" ] || die "busybox is not executable: $busybox"

# A dynamically linked busybox would need the host's libc inside the image, which is exactly
# what an image must not depend on: refuse it.
case "$(ldd "$busybox" 2>&1 || true)" in
    *"not a dynamic executable"*|*"statically linked"*) ;;
    *) die "$busybox is dynamically linked; the image needs a static busybox" \
           "apt-get install busybox-static (it replaces the dynamic busybox package)" ;;
esac

version=$({ "$busybox" 2>&1 || true; } | sed -n "1s/ multi-call binary.*//p")
stamp="recipe $RECIPE_VERSION, $version from $busybox"
if [ "$force" = 0 ] && [ -f "$marker" ] && [ "$(sed -n 2p "$marker")" = "$stamp" ] && [ -d "$top/layers/web" ]; then
    echo "mkrootfs: $out is up to date ($version)"
    exit 0
fi

echo "mkrootfs: building $out from $busybox ($version)"
# Start from an empty image, keeping the tracked README.
find "$out" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
mkdir -p "$out"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,tmp,var/tmp}
chmod 1777 "$out/tmp" "$out/var/tmp"
chmod 0700 "$out/root"

install -m 0755 "$busybox" "$out/bin/busybox"
# One relative link per applet (bin/ls -> busybox, usr/bin/awk -> ../../bin/busybox): relative
# links resolve the same inside the container and on the host.
"$out/bin/busybox" --list-full | while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    dir=$(dirname "$applet")
    up=$(echo "$dir" | sed -E 's#[^/]+#..#g')
    mkdir -p "$out/$dir"
    ln -sf "$up/bin/busybox" "$out/$applet"
done

cat > "$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$out/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "box" > "$out/etc/hostname"
cat > "$out/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost
HOSTS

# A second layer, for step 8 and step 10: only what it adds to the base image.
web="$top/layers/web"
rm -rf "$web"
mkdir -p "$web/var/www" "$web/usr/local/bin" "$web/etc"
cat > "$web/var/www/index.html" <<'HTML'
<!doctype html>
<title>Hello from a container</title>
<h1>Hello from a container</h1>
<p>This page is in the image's second layer (layers/web), served by busybox httpd.</p>
HTML
cat > "$web/usr/local/bin/serve" <<'SERVE'
#!/bin/sh
# Serve /var/www on port ${PORT:-80} in the foreground, logging each request.
exec httpd -f -v -p "${PORT:-80}" -h /var/www
SERVE
chmod 0755 "$web/usr/local/bin/serve"
echo "web layer: a page in /var/www and /usr/local/bin/serve" > "$web/etc/box-layer"

# The marker says what built the image; the tests' probe also uses it to tell "/" is the image.
printf 'box workshop image, built by scripts/mkrootfs.sh\n%s\n' "$stamp" > "$marker"
echo "mkrootfs: done: $(find "$out" -type l | wc -l) applet links, $(du -sh "$out" | cut -f1); layer $web"
