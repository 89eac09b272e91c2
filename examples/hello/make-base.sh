#!/bin/sh
# Makes the example's base image without a registry: a root filesystem holding this
# machine's static busybox (Debian: apt-get install busybox-static) and its applet links,
# imported into kiln's store as kiln-example/busybox:1. The tree's mtimes and owners are
# normalised by `kiln import`, so the base's digest depends only on the busybox binary.
set -eu
kiln=${KILN:-kiln}
busybox=${BUSYBOX:-$(command -v busybox || true)}
if [ -z "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
  echo "make-base.sh: no busybox found; on Debian: apt-get install busybox-static" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nwww:x:1000:1000:www:/srv:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nwww:x:1000:\n' >"$root/etc/group"
"$kiln" import "$root" kiln-example/busybox:1
