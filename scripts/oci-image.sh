#!/usr/bin/env bash
# Builds the cafe container image without a container engine: an OCI image layout made with
# umoci from the release binary and the shared libraries it loads. The result matches the
# Dockerfile's image: /usr/local/bin/cafe, glibc and libgcc, CA certificates, user nonroot
# (65532), writable /data and /logs, entrypoint `cafe`, default command `up`.
#
#   scripts/oci-image.sh [--binary PATH] [--out DIR] [--tag TAG]
#
# --binary  the cafe binary (default: target/release/cafe, built with
#           `cargo build --release --locked -p cafe` if missing or older than the sources)
# --out     the OCI layout directory to create (default: target/oci/cafe); replaced if present
# --tag     the image tag (default: the workspace version)
#
# Push or load the layout with any OCI tool, e.g. `skopeo copy oci:target/oci/cafe:0.1.0
# docker://registry.example.com/cafe:0.1.0`, or run it: `umoci unpack --image
# target/oci/cafe:0.1.0 bundle && runc run -b bundle cafe`.
# Needs umoci (Debian: `apt-get install umoci`), ldd, objcopy and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
out=target/oci/cafe
tag=$(awk -F'"' '/^version = /{print $2; exit}' Cargo.toml)
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "oci-image: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for tool in umoci ldd objcopy python3; do
  command -v "$tool" >/dev/null || { echo "oci-image: '$tool' is required" >&2; exit 1; }
done

if [ -z "$binary" ]; then
  binary=target/release/cafe
  # cargo decides whether anything changed; a no-op build takes a second.
  cargo build --release --locked -p cafe
fi
[ -x "$binary" ] || { echo "oci-image: no executable at $binary" >&2; exit 1; }

uid=65532
work=$(mktemp -d "${TMPDIR:-/tmp}/cafe-oci.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/data" "$root/logs" \
  "$root/home/nonroot"

# The binary without its debug information (the release profile keeps line tables).
objcopy --strip-debug "$binary" "$root/usr/local/bin/cafe"
chmod 0755 "$root/usr/local/bin/cafe"

# Every shared library the binary loads, and the dynamic loader, at the paths ldd resolves.
libs=$(ldd "$binary" | awk '/=> \// { print $3 } /^\s*\/[^ ]+ \(/ { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "oci-image: ldd found no libraries in $binary" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# glibc's resolver reads these; Kubernetes mounts /etc/hosts and /etc/resolv.conf over them.
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
: >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
  "$uid" "$uid" >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" >"$root/etc/group"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
chmod 1777 "$root/tmp"
chown -R 0:0 "$root"
chown "$uid:$uid" "$root/data" "$root/logs" "$root/home/nonroot"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out"
umoci new --image "$out:$tag"
umoci insert --image "$out:$tag" --history.created_by "scripts/oci-image.sh" "$root" /
umoci config --image "$out:$tag" \
  --os linux --architecture amd64 \
  --author "cafe" \
  --config.user "$uid:$uid" \
  --config.workingdir / \
  --config.env "PATH=/usr/local/bin:/usr/bin:/bin" \
  --config.env "CAFE_HOST=0.0.0.0" \
  --config.env "CAFE_DATA_DIR=/data" \
  --config.env "CAFE_LOG_DIR=/logs" \
  --config.exposedports 8080/tcp \
  --config.entrypoint /usr/local/bin/cafe \
  --config.cmd up \
  --config.label "org.opencontainers.image.title=cafe" \
  --config.label "org.opencontainers.image.version=$tag"
umoci gc --layout "$out"
size=$(du -sh "$out" | cut -f1)
echo "oci-image: $out:$tag ($size), libraries: $(echo "$libs" | tr '\n' ' ')"
