#!/usr/bin/env bash
# Seeds fuzz/corpus/<target> for `cargo +nightly fuzz run <target>`:
#   dockerfile     the Dockerfiles of ../shared/corpus (real files and BuildKit's test files)
#   kiln_program   the .kiln programs of examples/, stdlib/ and docs/
#   layer_extract  small tars (plain, gzip, GNU) with a directory, a file, a hardlink, a
#                  relative symlink and a fifo
#   archive_load   `kiln save` of an image of that tar (plain and gzip), and `docker save` of
#                  it when a docker daemon answers
# usage: fuzz/seed-corpus.sh [KILN]   (KILN: a kiln binary; default target/release/kiln)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
kiln=${1:-$repo/target/release/kiln}
corpus=$here/corpus
shared=$repo/../shared/corpus
mkdir -p "$corpus"/{dockerfile,kiln_program,layer_extract,archive_load}
i=0
while IFS= read -r -d '' f; do
  i=$((i + 1)); cp "$f" "$corpus/dockerfile/df$i"
done < <(find "$shared/real" "$shared/buildkit-testfiles" "$shared/buildkit-testfiles-negative" \
  -type f -size -16k -print0)
i=0
while IFS= read -r -d '' f; do
  i=$((i + 1)); cp "$f" "$corpus/kiln_program/k$i"
done < <(find "$repo/examples" "$repo/stdlib" "$repo/docs" -name '*.kiln' -print0)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/t/a/b"
echo hi >"$work/t/a/f"
ln -s ../f "$work/t/a/b/s"
ln "$work/t/a/f" "$work/t/a/h"
mkfifo "$work/t/a/fifo"
tar -C "$work/t" -cf "$corpus/layer_extract/t1.tar" .
tar -C "$work/t" -czf "$corpus/layer_extract/t2.tgz" .
tar --format=gnu -C "$work/t" -cf "$corpus/layer_extract/t3.tar" .
"$kiln" --root "$work/store" import "$corpus/layer_extract/t1.tar" tiny:1 >/dev/null
"$kiln" --root "$work/store" save -o "$corpus/archive_load/kiln-save.tar" tiny:1
gzip -kf "$corpus/archive_load/kiln-save.tar"
if docker info >/dev/null 2>&1; then
  docker import "$corpus/layer_extract/t1.tar" kiln-fuzz-tiny:1 >/dev/null
  docker save kiln-fuzz-tiny:1 -o "$corpus/archive_load/docker-save.tar"
  docker rmi kiln-fuzz-tiny:1 >/dev/null
fi
for t in dockerfile kiln_program layer_extract archive_load; do
  echo "$t: $(find "$corpus/$t" -type f | wc -l) inputs"
done
