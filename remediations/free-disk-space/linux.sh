#!/bin/bash
# Frees space on one mount point from what is safe to delete, cheapest loss first, and stops as soon
# as the target free percentage is reached. Parameters arrive as environment variables:
#   MOUNT_POINT (default /), TARGET_FREE_PERCENT (20), OLDER_THAN_DAYS (7),
#   PRUNE_CONTAINER_IMAGES (0), DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {json}`.
# shellcheck disable=SC2317  # the step functions are called through run_step
# @prelude

# --- parameters: validated again here, whatever the caller checked ----------------------------------
MOUNT_POINT="${MOUNT_POINT-/}"
TARGET_FREE_PERCENT="${TARGET_FREE_PERCENT-20}"
OLDER_THAN_DAYS="${OLDER_THAN_DAYS-7}"
PRUNE_CONTAINER_IMAGES="${PRUNE_CONTAINER_IMAGES-0}"
DRY_RUN="${DRY_RUN-0}"

# A plain absolute path: segments of letters, digits, dot, dash, underscore, none starting with a
# dot, and no ".." anywhere.
if ! [[ "$MOUNT_POINT" =~ ^(/|(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+)$ ]] || [ "${#MOUNT_POINT}" -gt 255 ] ||
  [[ "$MOUNT_POINT" == *..* ]]; then
  fail "MOUNT_POINT must be an absolute path of plain segments"
fi
# Digits only before any arithmetic: bash evaluates expressions inside array subscripts.
[[ "$TARGET_FREE_PERCENT" =~ ^[0-9]{1,3}$ ]] || fail "TARGET_FREE_PERCENT must be an integer 5..90"
[[ "$OLDER_THAN_DAYS" =~ ^[0-9]{1,4}$ ]] || fail "OLDER_THAN_DAYS must be an integer 1..3650"
[[ "$PRUNE_CONTAINER_IMAGES" =~ ^(0|1|true|false)$ ]] || fail "PRUNE_CONTAINER_IMAGES must be 0 or 1"
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"
target=$((10#$TARGET_FREE_PERCENT))
days=$((10#$OLDER_THAN_DAYS))
{ [ "$target" -ge 5 ] && [ "$target" -le 90 ]; } || fail "TARGET_FREE_PERCENT must be an integer 5..90"
{ [ "$days" -ge 1 ] && [ "$days" -le 3650 ]; } || fail "OLDER_THAN_DAYS must be an integer 1..3650"
# Floors (remediation.yaml): the newest days of logs stay, and a healthy volume is never emptied.
[ "$days" -ge 3 ] || fail "OLDER_THAN_DAYS must be at least 3: the last days of logs stay on the VM"
[ "$target" -le 50 ] || fail "TARGET_FREE_PERCENT must be at most 50"
prune_images=0
[[ "$PRUNE_CONTAINER_IMAGES" =~ ^(1|true)$ ]] && prune_images=1

mountpoint -q -- "$MOUNT_POINT" 2>/dev/null || fail "MOUNT_POINT is not a mount point on this VM"
mount_dev=$(stat -c %d -- "$MOUNT_POINT")

# --- measurements -------------------------------------------------------------------------------------
size_bytes=0
free_bytes=0
measure() {
  local line
  line=$(df -P -B1 -- "$MOUNT_POINT" | awk 'NR == 2 { print $2, $4 }')
  size_bytes=${line% *}
  free_bytes=${line#* }
}
free_percent() { awk -v f="$free_bytes" -v s="$size_bytes" 'BEGIN { printf "%.2f", (s > 0 ? f * 100 / s : 0) }'; }
reached() { awk -v f="$free_bytes" -v s="$size_bytes" -v t="$target" 'BEGIN { exit !(s > 0 && f * 100 >= t * s) }'; }
snapshot() { printf '{"freePercent":%s,"freeBytes":%s,"sizeBytes":%s}' "$(free_percent)" "$free_bytes" "$size_bytes"; }

# True when a directory exists and lives on the target filesystem (find -xdev keeps it there).
on_target() { [ -d "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %d -- "$1")" = "$mount_dev" ]; }

# Bytes (allocated) that a find expression selects, for dry runs and reporting.
bytes_of() { find "$@" -printf '%b\n' 2>/dev/null | awk '{ s += $1 * 512 } END { printf "%d", s }'; }

actions=""
would_free=0
record() { # step, freed bytes, note
  actions="${actions:+$actions,}{\"step\":\"$1\",\"freedBytes\":$2,\"note\":\"$3\"}"
}

run_step() { # step-name function
  local name=$1 before_free
  reached && return 0
  before_free=$free_bytes
  "$2"
  measure
  if [ "$DRY_RUN" = 0 ]; then
    local freed=$((free_bytes - before_free))
    [ "$freed" -lt 0 ] && freed=0
    echo "step $name: freed $freed bytes, now $(free_percent)% free"
    record "$name" "$freed" "${step_note:-}"
  fi
  step_note=""
}
step_note=""

dry() { # step-name bytes: what a real run would remove
  echo "dry run: $1 would free about $2 bytes"
  would_free=$((would_free + $2))
  record "$1" 0 "would free about $2 bytes"
}

# --- steps, cheapest loss first ------------------------------------------------------------------------
step_package_cache() {
  local dirs=() d
  for d in /var/cache/apt/archives /var/cache/dnf /var/cache/yum /var/cache/zypp/packages; do
    on_target "$d" && dirs+=("$d")
  done
  [ ${#dirs[@]} -gt 0 ] || return 0
  if [ "$DRY_RUN" = 1 ]; then
    dry package-cache "$(bytes_of "${dirs[@]}" -xdev -type f)"
    return 0
  fi
  if command -v apt-get >/dev/null && on_target /var/cache/apt/archives; then
    apt-get clean || step_note="apt-get clean failed"
  fi
  if command -v dnf >/dev/null && on_target /var/cache/dnf; then
    dnf clean packages -q || step_note="dnf clean failed"
  elif command -v yum >/dev/null && on_target /var/cache/yum; then
    yum clean packages -q || step_note="yum clean failed"
  fi
  if command -v zypper >/dev/null && on_target /var/cache/zypp/packages; then
    zypper --non-interactive clean || step_note="zypper clean failed"
  fi
  return 0
}

temp_roots() {
  local d
  for d in /tmp /var/tmp; do on_target "$d" && printf '%s\0' "$d"; done
  return 0
}
step_temp_files() {
  local roots=()
  mapfile -d '' -t roots < <(temp_roots)
  [ ${#roots[@]} -gt 0 ] || return 0
  # Regular files only, neither read nor written for N days; -delete works relative to each directory,
  # so a user cannot redirect it with a symlink swapped in mid-walk.
  local expr=(-xdev -mindepth 1 -type f -mtime +"$days" -atime +"$days")
  if [ "$DRY_RUN" = 1 ]; then
    dry temp-files "$(bytes_of "${roots[@]}" "${expr[@]}")"
  else
    find "${roots[@]}" "${expr[@]}" -delete 2>/dev/null || step_note="some temp files could not be removed"
  fi
}

# Rotated logs only: compressed, numbered, .old or dated copies. The live log never matches.
rotated=(\( -name '*.gz' -o -name '*.xz' -o -name '*.bz2' -o -name '*.zst' -o -name '*.[0-9]'
  -o -name '*.[0-9][0-9]' -o -name '*.old' -o -name '*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]' \))
step_rotated_logs() {
  on_target /var/log || return 0
  # The journal has its own step (journalctl knows which files are live).
  local expr=(-xdev -type f -not -path '/var/log/journal/*' "${rotated[@]}" -mtime +"$days")
  if [ "$DRY_RUN" = 1 ]; then
    dry rotated-logs "$(bytes_of /var/log "${expr[@]}")"
  else
    find /var/log "${expr[@]}" -delete 2>/dev/null || step_note="some rotated logs could not be removed"
  fi
}

step_journal() {
  command -v journalctl >/dev/null || return 0
  local d
  # One directory per machine id; journalctl vacuums only archived files, never the live one.
  for d in /var/log/journal/*/ /run/log/journal/*/; do
    d=${d%/}
    on_target "$d" || continue
    if [ "$DRY_RUN" = 1 ]; then
      dry journal "$(bytes_of "$d" -xdev -type f -name '*@*.journal*' -mtime +"$days")"
    else
      journalctl --directory="$d" --vacuum-time="${days}d" 2>&1 | sed 's/^/journalctl: /' || true
    fi
  done
  return 0
}

step_core_dumps() {
  local roots=() d
  for d in /var/crash /var/lib/systemd/coredump; do on_target "$d" && roots+=("$d"); done
  [ ${#roots[@]} -gt 0 ] || return 0
  local expr=(-xdev -mindepth 1 -type f -mtime +"$days")
  if [ "$DRY_RUN" = 1 ]; then
    dry core-dumps "$(bytes_of "${roots[@]}" "${expr[@]}")"
  else
    find "${roots[@]}" "${expr[@]}" -delete 2>/dev/null || step_note="some core dumps could not be removed"
  fi
}

step_container_images() {
  [ "$prune_images" = 1 ] || return 0
  command -v docker >/dev/null || {
    step_note="docker not installed"
    return 0
  }
  local root
  root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null) || {
    step_note="docker daemon not reachable"
    return 0
  }
  on_target "$root" || {
    step_note="docker data is on another mount"
    return 0
  }
  if [ "$DRY_RUN" = 1 ]; then
    dry container-images 0
  else
    docker image prune --all --force --filter "until=$((days * 24))h" || step_note="docker image prune failed"
  fi
}

# --- run ------------------------------------------------------------------------------------------------
measure
before=$(snapshot)
echo "mount $MOUNT_POINT: $(free_percent)% free ($free_bytes of $size_bytes bytes), target ${target}%"

if reached; then
  echo "already at or above the target: nothing to do"
  emit "{\"status\":\"already-ok\",\"mountPoint\":\"$MOUNT_POINT\",\"targetFreePercent\":$target,\"dryRun\":$([ "$DRY_RUN" = 1 ] && echo true || echo false),\"before\":$before,\"after\":$before,\"actions\":[]}"
  exit 0
fi

run_step package-cache step_package_cache
run_step temp-files step_temp_files
run_step rotated-logs step_rotated_logs
run_step journal step_journal
run_step core-dumps step_core_dumps
run_step container-images step_container_images

measure
after=$(snapshot)
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: nothing was changed; about $would_free bytes could be freed"
  status=not-fixed
elif reached; then
  echo "target reached: $(free_percent)% free"
  status=fixed
else
  echo "target not reached: $(free_percent)% free after every safe step; the rest needs a person"
  status=not-fixed
fi
emit "{\"status\":\"$status\",\"mountPoint\":\"$MOUNT_POINT\",\"targetFreePercent\":$target,\"dryRun\":$([ "$DRY_RUN" = 1 ] && echo true || echo false),\"wouldFreeBytes\":$would_free,\"before\":$before,\"after\":$after,\"actions\":[$actions]}"
[ "$status" = fixed ] && exit 0
exit 1
