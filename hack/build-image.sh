#!/usr/bin/env bash
# Builds Barge's container image without a container daemon or registry.
#
#   hack/build-image.sh                    build the image: target/image/barge-<version>.oci.tar
#   hack/build-image.sh reference          print the image reference the build tags
#   hack/build-image.sh stage BINARY DIR   stage the image's root filesystem from BINARY into DIR
#
# The Containerfile builds the same image with a container engine (its builder stage pulls
# docker.io/library/rust, so it needs a registry); this script does its steps on the host:
#   1. `cargo build --profile image --no-default-features --locked -p barge-operator`: the
#      `barge` binary without the simulator (`barge demo` needs the default `demo` feature).
#      Target directory: $BARGE_IMAGE_TARGET_DIR (default target/image-build), never the test
#      build's, so the build does not wait on the lock a running `cargo test` holds.
#   2. `stage` (the Containerfile's builder stage runs the same function): /barge, the shared
#      libraries `ldd` lists (a glibc binary, distroless/cc style), the CA bundle, and an
#      /etc/passwd and /etc/group naming the non-root user 65532. Everything owned by root.
#   3. buildah assembles the Containerfile's final stage (`FROM scratch`): one layer with the
#      staged files, and USER, ENTRYPOINT, CMD and LABEL read from the Containerfile itself, so
#      the two cannot differ. Storage: vfs under a private temporary root in target/, removed at
#      the end; no system state is read or written.
#
# The reference is the chart's default image: `image.repository` of charts/barge/values.yaml,
# tagged with the chart's appVersion, which must equal the workspace version (Cargo.toml).
#
# Environment: BARGE_IMAGE_OUT (output directory, default target/image), BARGE_IMAGE_TARGET_DIR
# (cargo target directory), SOURCE_DATE_EPOCH (image creation time and file times; default the
# last commit's time, else 0: the same binary gives the same image digest).
# Needs buildah (Debian: `apt-get install buildah`) and root (or `buildah unshare`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
containerfile="$root/Containerfile"

# The cargo invocation of the image's binary; the Containerfile's builder stage runs the same
# (e2e/tests/image.rs checks).
cargo_args=(build --profile image --no-default-features --locked -p barge-operator)
# The non-root user of the image (the Containerfile's USER; checked against it below).
nonroot_uid=65532

die() {
  echo "build-image: $*" >&2
  exit 1
}

# The workspace version ([workspace.package] version in Cargo.toml).
workspace_version() {
  sed -n '/^\[workspace\.package\]/,/^\[/s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' \
    "$root/Cargo.toml" | head -n 1
}

# The chart's appVersion (Chart.yaml), unquoted.
chart_app_version() {
  sed -n 's/^appVersion:[[:space:]]*//p' "$root/charts/barge/Chart.yaml" | head -n 1 | tr -d "\"'"
}

# The chart's default image repository (`image.repository` in values.yaml), unquoted.
chart_repository() {
  sed -n '/^image:/,/^[^[:space:]#]/s/^[[:space:]]\{2\}repository:[[:space:]]*//p' \
    "$root/charts/barge/values.yaml" | head -n 1 | sed 's/[[:space:]]*#.*//' | tr -d "\"'"
}

# repository:tag, after checking the chart's appVersion is the workspace version.
reference() {
  local version app repository
  version="$(workspace_version)"
  app="$(chart_app_version)"
  repository="$(chart_repository)"
  [ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
  [ -n "$repository" ] || die "no image.repository in charts/barge/values.yaml"
  [ "$app" = "$version" ] ||
    die "charts/barge/Chart.yaml appVersion ($app) is not the workspace version ($version)"
  echo "$repository:$version"
}

# The Containerfile's final stage (from its `FROM scratch` on), continuation lines joined.
final_stage() {
  sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' "$containerfile" |
    awk 'toupper($1) == "FROM" { final = ($2 == "scratch") } final'
}

# The argument of the final stage's last `$1` instruction.
instruction() {
  final_stage | sed -n "s/^$1[[:space:]]\{1,\}//p" | tail -n 1
}

# Stages the root filesystem of the image from BINARY into DIR (created; must not exist).
stage() {
  local binary="$1" dir="$2" lib
  [ -x "$binary" ] || die "stage: $binary is not an executable"
  [ ! -e "$dir" ] || die "stage: $dir exists"
  install -d -m 0755 "$dir" "$dir/etc" "$dir/etc/ssl" "$dir/etc/ssl/certs"
  install -m 0555 "$binary" "$dir/barge"
  # The dynamic loader and the libraries, at the paths the binary names (the loader's path is
  # in the binary; the libraries are found in the loader's default directories). Executable:
  # the kernel runs the loader only if it may execute it.
  for lib in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    install -D -m 0555 "$(readlink -f "$lib")" "$dir$lib"
  done
  [ -f /etc/ssl/certs/ca-certificates.crt ] ||
    die "stage: no /etc/ssl/certs/ca-certificates.crt (Debian: apt-get install ca-certificates)"
  install -m 0444 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/nonexistent:/sbin/nologin\n' \
    "$nonroot_uid" "$nonroot_uid" >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$nonroot_uid" >"$dir/etc/group"
  chmod 0444 "$dir/etc/passwd" "$dir/etc/group"
  chown -R 0:0 "$dir"
}

build() {
  command -v buildah >/dev/null || die "needs buildah (Debian: apt-get install buildah)"
  [ -f "$containerfile" ] || die "no $containerfile"
  local ref version target out store rootfs ctr epoch archive user entrypoint cmd started
  started=$SECONDS
  ref="$(reference)"
  version="$(workspace_version)"
  target="${BARGE_IMAGE_TARGET_DIR:-$root/target/image-build}"
  out="${BARGE_IMAGE_OUT:-$root/target/image}"
  user="$(instruction USER)"
  entrypoint="$(instruction ENTRYPOINT)"
  cmd="$(instruction CMD)"
  [ "$user" = "$nonroot_uid:$nonroot_uid" ] ||
    die "the Containerfile's USER ($user) is not $nonroot_uid:$nonroot_uid, the user stage writes"
  [ -n "$entrypoint" ] && [ -n "$cmd" ] || die "the Containerfile's final stage has no ENTRYPOINT or CMD"

  echo "== cargo ${cargo_args[*]} (target $target)"
  (cd "$root" && cargo "${cargo_args[@]}" --target-dir "$target")
  local binary="$target/image/barge"

  mkdir -p "$out" "$root/target"
  store="$(mktemp -d "$root/target/image-storage.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the trap must remove this build's storage only
  trap "rm -rf '$store'" EXIT
  rootfs="$store/rootfs"
  stage "$binary" "$rootfs"

  local labels=() line
  while IFS= read -r line; do
    labels+=(--label "${line//\$\{VERSION\}/$version}")
  done < <(final_stage | sed -n 's/^LABEL[[:space:]]\{1,\}\([^=]*\)="\(.*\)"$/\1=\2/p')

  epoch="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}"
  archive="$out/barge-$version.oci.tar"
  rm -f "$archive"
  local b=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
  echo "== buildah: $ref"
  ctr="$("${b[@]}" from --quiet scratch)"
  "${b[@]}" copy --quiet "$ctr" "$rootfs/" / >/dev/null
  "${b[@]}" config --user "$user" --entrypoint "$entrypoint" --cmd "$cmd" \
    --created-by "COPY --from=build /rootfs/ / (hack/build-image.sh)" "${labels[@]}" "$ctr"
  "${b[@]}" commit --quiet --rm --format oci --disable-compression=false --identity-label=false \
    --timestamp "$epoch" "$ctr" \
    "oci-archive:$archive:$ref" >/dev/null
  echo "== $archive ($ref, $(du -h "$archive" | cut -f1), $((SECONDS - started)) s)"
}

case "${1:-build}" in
build) build ;;
reference) reference ;;
stage)
  [ $# -eq 3 ] || die "usage: $0 stage BINARY DIR"
  stage "$2" "$3"
  ;;
*) die "usage: $0 [build | reference | stage BINARY DIR]" ;;
esac
