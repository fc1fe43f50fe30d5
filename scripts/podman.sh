#!/usr/bin/env bash
# Builds and runs sluice's container image (Containerfile) with Debian's podman, set up for machines without a
# registry, systemd or a writable system container store:
#
#   scripts/podman.sh base [--refresh]   the base image: `mmdebstrap --variant=minbase bookworm` from Debian's mirror,
#                                        `podman import`ed as localhost/sluice-base:bookworm (cached: made once)
#   scripts/podman.sh build [ARGS...]    the image localhost/sluice:latest (and localhost/sluice:python with
#                                        --target python); ARGS go to `podman build`
#   scripts/podman.sh run ARGS...        `podman run --rm ARGS...` with the settings below
#   scripts/podman.sh podman ARGS...     any podman command with the settings below (images, inspect, rm, ...)
#   scripts/podman.sh env                prints the environment that gives a shell these settings
#   scripts/podman.sh check              exit 0 if podman can run a container here; else one line saying why, exit 1
#
# The settings: the runc runtime, the cgroupfs cgroup manager (no systemd needed), events and logs in files, the host's
# network (no bridge or firewall rules to set up), default ulimits no higher than this shell's hard limit of open files
# (nofile) and kernel.pid_max (nproc) — podman's defaults are higher, and runc fails to set them — and overlay storage
# in a private directory, SL_PODMAN_DIR (default: build/podman in the repository), through CONTAINERS_STORAGE_CONF and
# CONTAINERS_CONF: the system's /etc/containers and /var/lib/containers are neither read for these nor written (vfs
# storage instead of overlay where overlay cannot work, e.g. on an overlay file system: `check` finds out).
# Missing Debian packages (podman, runc, mmdebstrap; uidmap and fuse-overlayfs when not root) are installed first, as
# scripts/deps.sh does. SL_DEBIAN_MIRROR overrides the mirror (default http://deb.debian.org/debian).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${SL_PODMAN_DIR:-$REPO/build/podman}"
MIRROR="${SL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE=localhost/sluice-base:bookworm
IMAGE=localhost/sluice

s_say() { echo "podman.sh: $*" >&2; }
s_die() {
  echo "podman.sh: $*" >&2
  exit 1
}

s_packages() {
  local packages=(podman runc mmdebstrap) missing=() p
  [ "$(id -u)" -eq 0 ] || packages+=(uidmap fuse-overlayfs slirp4netns)
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || s_die "needs the Debian packages ${missing[*]}: run as root, or install them"
    sudo="sudo"
  fi
  s_say "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The private configuration: written each time (cheap), so a changed limit or directory is picked up.
s_configure() {
  mkdir -p "$DIR/run" "$DIR/tmp"
  chmod 0700 "$DIR"
  local nofile nproc pid_max
  nofile=$(ulimit -Hn)
  [ "$nofile" != unlimited ] || nofile=$(cat /proc/sys/fs/nr_open)
  pid_max=$(cat /proc/sys/kernel/pid_max)
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
  local driver=overlay options='[storage.options.overlay]
mountopt = "nodev"'
  if [ "$(id -u)" -ne 0 ]; then
    options='[storage.options.overlay]
mount_program = "/usr/bin/fuse-overlayfs"'
  fi
  # A driver chosen before (vfs, where overlay cannot work: see s_check) stays; each driver has a store of its own.
  [ ! -f "$DIR/driver" ] || driver=$(cat "$DIR/driver")
  local store="$DIR/storage"
  if [ "$driver" != overlay ]; then
    options=""
    store="$DIR/storage-$driver"
  fi
  mkdir -p "$store"
  cat >"$DIR/storage.conf" <<EOF
# Written by scripts/podman.sh: a container store of sluice's own, not the system's.
[storage]
driver = "$driver"
graphroot = "$store"
runroot = "$DIR/run${store#"$DIR/storage"}"
$options
EOF
  cat >"$DIR/containers.conf" <<EOF
# Written by scripts/podman.sh.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DIR/run/events.log"
tmp_dir = "$DIR/tmp"
static_dir = "$store/libpod"
volume_path = "$store/volumes"
EOF
  export CONTAINERS_STORAGE_CONF="$DIR/storage.conf" CONTAINERS_CONF="$DIR/containers.conf"
}

s_podman() {
  podman "$@"
}

# Can podman run a container here at all? One line on stderr when not, exit 1. Runs a trivial container from the base
# image (which it makes first).
s_check() {
  if [ "$(id -u)" -ne 0 ]; then
    local me
    me=$(id -un)
    grep -q "^$me:" /etc/subuid 2>/dev/null ||
      s_die "cannot run podman: not root, and no subordinate uid range for $me in /etc/subuid (rootless podman needs one)"
  fi
  if ! s_podman info >"$DIR/info.log" 2>&1; then
    # Overlay storage cannot sit on every file system (an overlay itself, in a container); vfs can, more slowly.
    if [ ! -f "$DIR/driver" ] && grep -qi overlay "$DIR/info.log"; then
      s_say "overlay storage does not work here ($(grep -v '^$' "$DIR/info.log" | tail -1)): using vfs"
      echo vfs >"$DIR/driver"
      s_configure
      s_podman info >"$DIR/info.log" 2>&1 || s_die "podman info failed: $(grep -v '^$' "$DIR/info.log" | tail -1)"
    else
      s_die "podman info failed: $(grep -v '^$' "$DIR/info.log" | tail -1)"
    fi
  fi
  s_base
  s_podman run --rm "$BASE_IMAGE" true >"$DIR/check.log" 2>&1 ||
    s_die "podman cannot run a container here: $(grep -v '^$' "$DIR/check.log" | tail -1)"
}

s_base() {
  local refresh=0 tar="$DIR/base-bookworm.tar"
  [ "${1:-}" != --refresh ] || refresh=1
  if [ "$refresh" = 0 ] && s_podman image exists "$BASE_IMAGE"; then
    return 0
  fi
  if [ "$refresh" = 1 ] || [ ! -s "$tar" ]; then
    s_say "making the base image with mmdebstrap from $MIRROR (once; cached in $tar)"
    # minbase: Essential and Priority: required packages and apt. Documentation and translations are left out of
    # this and of every later apt-get install in the image. apt's sources stay, so the Containerfile can install.
    # shellcheck disable=SC2016 # the hook's $1 is for the shell mmdebstrap runs it with (the new root)
    mmdebstrap --variant=minbase --format=tar --quiet \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Languages "none"' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      bookworm "$tar.part" \
      "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
      "deb ${MIRROR%/debian}/debian-security bookworm-security main"
    mv "$tar.part" "$tar"
  fi
  s_podman import --quiet --change 'CMD ["/bin/bash"]' "$tar" "$BASE_IMAGE" >/dev/null
  s_say "imported $BASE_IMAGE"
}

s_build() {
  s_base
  s_podman build --network host --build-arg BASE="$BASE_IMAGE" -f "$REPO/Containerfile" "$@" "$REPO"
}

cmd="${1:-}"
[ $# -eq 0 ] || shift
case "$cmd" in
base | build | run | podman | env | check) ;;
*)
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
s_packages
s_configure
case "$cmd" in
base) s_base "$@" ;;
build)
  # Default tags: :python for the python target, :latest for the default one.
  tag=()
  case " $* " in
  *" -t "* | *" --tag "* | *" --tag="*) ;;
  *" --target python "* | *" --target=python "*) tag=(-t "$IMAGE:python") ;;
  *) tag=(-t "$IMAGE:latest") ;;
  esac
  s_build "${tag[@]}" "$@"
  ;;
run) s_podman run --rm "$@" ;;
podman) s_podman "$@" ;;
env) printf 'export CONTAINERS_STORAGE_CONF=%q CONTAINERS_CONF=%q\n' "$CONTAINERS_STORAGE_CONF" "$CONTAINERS_CONF" ;;
check) s_check ;;
esac
