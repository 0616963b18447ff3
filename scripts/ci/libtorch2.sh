#!/usr/bin/env bash
# CI job: build and test medgr2 against libtorch 2.x -- the major version every GPU user builds
# against -- on this CPU machine, inside a Debian 13 ("trixie") chroot whose libtorch-dev is 2.6.
# The quick start (scripts/setup.sh on the host) only ever sees Debian 12's libtorch 1.13.
#
#   1. make the chroot under $MEDGR2_CI_CACHE (default /var/cache/medgr2-ci) if absent, or reuse it;
#   2. copy the working tree in fresh (tracked + untracked-not-ignored files: no build/,
#      node_modules/, dist/), with the host's CUDA headers bound read-only at /usr/local/cuda;
#   3. inside: scripts/setup.sh (finds the system libtorch 2.6), the compile-only CUDA check
#      (MEDGR2_CUDA_COMPILE_CHECK: every MEDGR2_WITH_CUDA line against 2.6's ATen/cuda headers and
#      the CUDA toolkit's), then `npm test`. Not the default cycle: the 1.13 job runs that.
# Mounts are undone on every exit, failure included. Needs root (debootstrap, chroot, mount).
# Environment: MEDGR2_CI_CACHE (cache folder), MEDGR2_CUDA_INCLUDE (default /usr/local/cuda/include),
#              MEDGR2_CI_MIRROR (default: the Debian archive in this machine's apt sources).
# Timing (2 cores): cold cache ~ debootstrap 0.5 min + packages 1 min + the job; warm = the job.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${MEDGR2_CI_CACHE:-/var/cache/medgr2-ci}"
root="$cache/trixie"
# The Debian archive this machine's apt already uses (the first URIs of its sources, or sources.list).
host_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$2 !~ /security/ {print $2; exit}')
  [[ -n "$uri" ]] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '$2 !~ /security/ {print $2; exit}')
  printf '%s' "$uri"
}
mirror="${MEDGR2_CI_MIRROR:-$(host_mirror)}"
[[ -n "$mirror" ]] || { printf '[ci:libtorch2] error: no Debian mirror in /etc/apt sources; set MEDGR2_CI_MIRROR\n' >&2; exit 1; }
cuda_inc="${MEDGR2_CUDA_INCLUDE:-/usr/local/cuda/include}"
# What setup.sh and the tests need inside. libtorch-dev pulls in libtorch2.6 and its headers
# (ATen/cuda and c10/cuda included, even in the CPU build); OpenBLAS for the same reason as setup.sh;
# DejaVu Sans for the charts.
packages=(libtorch-dev libgloo-dev nodejs npm g++ cmake ninja-build make python3 clang-format
  libopenblas0-openmp ca-certificates git fonts-dejavu-core)

say() { printf '[ci:libtorch2] %s\n' "$*"; }
die() { printf '[ci:libtorch2] error: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mount)"
start=$SECONDS

mounted=()
cleanup() {
  local i
  # Innermost first; lazy so a process still holding a file cannot keep a mount behind.
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Mounts a killed earlier run left behind (a trap cannot run on SIGKILL): never delete through them.
stale() { awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r; }
for m in $(stale); do say "unmounting a stale $m"; umount -l "$m" || die "cannot unmount $m"; done
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  if [[ "${3:-}" == ro ]]; then mount -o remount,bind,ro "$2"; fi
}

# --- 1. the chroot -----------------------------------------------------------------------------
# A stamp holds the package list: a changed list re-runs apt in the existing chroot.
stamp="$root/.medgr2-packages"
if [[ ! -f "$root/.medgr2-bootstrapped" ]]; then
  command -v debootstrap >/dev/null || {
    say "apt-get install debootstrap (host)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  say "debootstrap trixie into $root"
  [[ -z "$(stale)" ]] || die "mounts under $root: $(stale | tr '\n' ' ')"
  rm -rf --one-file-system "$root" && mkdir -p "$cache"
  debootstrap --variant=minbase trixie "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
  touch "$root/.medgr2-bootstrapped"
fi
# Host settings the chroot needs to reach the same registries: DNS, apt's options, npm's config
# (its CA file among them).
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
for f in /etc/apt/apt.conf.d/99*; do [[ -f "$f" ]] && cp "$f" "$root/etc/apt/apt.conf.d/"; done
for f in /etc/npmrc /root/.npmrc; do [[ -f "$f" ]] && mkdir -p "$root$(dirname "$f")" && cp "$f" "$root$f"; done

bind /proc "$root/proc"
bind /dev "$root/dev"
mount -t devpts devpts "$root/dev/pts" 2>/dev/null && mounted+=("$root/dev/pts") || true
# node's os.tmpdir() and the tests' scratch folders.
mount -t tmpfs tmpfs "$root/tmp" && mounted+=("$root/tmp")
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "$@"; }

if [[ "$(cat "$stamp" 2>/dev/null)" != "${packages[*]}" ]]; then
  say "apt-get install in the chroot: ${packages[*]}"
  in_root apt-get update -qq
  in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" \
    > "$cache/apt.log" 2>&1 || { tail -20 "$cache/apt.log" >&2; die "apt-get install failed (log: $cache/apt.log)"; }
  in_root apt-get clean
  echo "${packages[*]}" > "$stamp"
fi
# The host's CA bundle (npm's cafile points at it), after ca-certificates so it is not overwritten.
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
say "chroot ready: libtorch $(in_root dpkg-query -W -f='${Version}' libtorch-dev), node $(in_root node --version) ($((SECONDS - start)) s)"

# --- 2. the sources, fresh -------------------------------------------------------------------
work="$root/work/medgr2"
rm -rf --one-file-system "$work" && mkdir -p "$work"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 -I{} sh -c 'test -e "$1" && printf "%s\0" "$1"' _ {} |
  tar --null -T - -cf -) | tar -xf - -C "$work"
# npm's cache persists between runs (tarballs only; node_modules is rebuilt by npm ci every time).
mkdir -p "$cache/npm-cache"
bind "$cache/npm-cache" "$root/root/.npm"
if [[ -f "$cuda_inc/cuda_runtime_api.h" ]]; then
  bind "$(readlink -f "$cuda_inc")" "$root/usr/local/cuda/include" ro
  cuda_check=1
else
  say "warning: no CUDA headers at $cuda_inc: the compile-only CUDA check is skipped"
  cuda_check=0
fi

# --- 3. build, check, test -------------------------------------------------------------------
# MEDGR2_CUDA=OFF: no nvcc in here (the 1.13 job compile-checks native/kernels/*.cu with nvcc).
in_root bash -c "set -euo pipefail; cd /work/medgr2
  MEDGR2_SKIP_APT=1 MEDGR2_CUDA=OFF bash scripts/setup.sh
  echo \"[ci:libtorch2] setup (npm ci + build) done in \$SECONDS s\"
  node dist/src/cli/main.js info
  if [[ $cuda_check == 1 ]]; then
    echo '[ci:libtorch2] compile-only CUDA check (MEDGR2_WITH_CUDA, every native .cc)'
    cmake -S . -B build-cuda-check -G Ninja -DCMAKE_BUILD_TYPE=Release -DMEDGR2_CUDA=OFF \
      -DMEDGR2_CUDA_COMPILE_CHECK=ON -DMEDGR2_CUDA_INCLUDE=/usr/local/cuda/include \
      -DCMAKE_JS_INC=\$(node -p \"require('node-api-headers').include_dir\") > /dev/null
    cmake --build build-cuda-check --target medgr2_cuda_check
    echo \"[ci:libtorch2] CUDA compile check done at \$SECONDS s\"
  fi
  npm test
  echo \"[ci:libtorch2] npm test done at \$SECONDS s\""
say "passed in $((SECONDS - start)) s"
