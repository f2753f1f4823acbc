#!/bin/bash
# Restarts one named systemd unit that is not running. Parameters (environment): SERVICE_NAME,
# DRY_RUN (0). The last line of stdout is `REMEDIATION_RESULT {json}`.
set -euo pipefail
export LC_ALL=C

result_printed=0
emit() {
  result_printed=1
  printf 'REMEDIATION_RESULT %s\n' "$1"
}
on_exit() {
  local code=$?
  if [ "$result_printed" = 0 ]; then
    emit '{"status":"error","reason":"unexpected failure (exit '"$code"')","before":{},"after":{}}'
    [ "$code" = 0 ] && code=1
  fi
  exit "$code"
}
trap on_exit EXIT
fail() {
  echo "error: $1" >&2
  emit "{\"status\":\"error\",\"reason\":\"$1\",\"before\":{},\"after\":{}}"
  exit 2
}

SERVICE_NAME="${SERVICE_NAME-}"
DRY_RUN="${DRY_RUN-0}"
# A unit name: letters, digits, "_", "@", "-" and single dots; optional ".service" suffix.
if ! [[ "$SERVICE_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9_@.-]{0,79}$ ]] || [[ "$SERVICE_NAME" == *..* ]]; then
  fail "SERVICE_NAME must be a unit name (letters, digits, _ @ . -)"
fi
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"
unit="${SERVICE_NAME%.service}"
command -v systemctl >/dev/null || fail "systemctl not found: this script supports systemd guests only"

load=$(systemctl show -p LoadState --value -- "$unit" 2>/dev/null || true)
[ "$load" = loaded ] || fail "unit not found on this VM"

active_state() { systemctl show -p ActiveState --value -- "$unit" 2>/dev/null || echo unknown; }
before_state=$(active_state)
echo "unit $unit: $before_state"
before="{\"activeState\":\"$before_state\"}"
dry=false
[ "$DRY_RUN" = 1 ] && dry=true

if [ "$before_state" = active ]; then
  echo "already running: nothing to do"
  emit "{\"status\":\"already-ok\",\"unit\":\"$unit\",\"dryRun\":$dry,\"before\":$before,\"after\":$before}"
  exit 0
fi
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: would restart $unit"
  emit "{\"status\":\"not-fixed\",\"unit\":\"$unit\",\"dryRun\":true,\"before\":$before,\"after\":$before}"
  exit 1
fi

echo "restarting $unit"
restart_ok=true
systemctl restart -- "$unit" || restart_ok=false
after_state=$(active_state)
echo "unit $unit: $after_state"
status=not-fixed
[ "$after_state" = active ] && status=fixed
emit "{\"status\":\"$status\",\"unit\":\"$unit\",\"dryRun\":false,\"restartSucceeded\":$restart_ok,\"before\":$before,\"after\":{\"activeState\":\"$after_state\"}}"
[ "$status" = fixed ]
