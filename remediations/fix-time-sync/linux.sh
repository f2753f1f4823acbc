#!/bin/bash
# Makes sure a time synchronisation service runs and asks it to correct the clock now: chrony first,
# then systemd-timesyncd. Parameters (environment): DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {json}`.
# @prelude

DRY_RUN="${DRY_RUN-0}"
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"
command -v systemctl >/dev/null || fail "systemctl not found: this script supports systemd guests only"

unit=""
for candidate in chrony chronyd systemd-timesyncd; do
  if [ "$(systemctl show -p LoadState --value -- "$candidate" 2>/dev/null || true)" = loaded ]; then
    unit=$candidate
    break
  fi
done
[ -n "$unit" ] || fail "no time service (chrony, chronyd, systemd-timesyncd) is installed"

active() { if systemctl is-active --quiet -- "$unit"; then echo true; else echo false; fi; }
synchronized() {
  local out
  case "$unit" in
    chrony*)
      out=$(chronyc -n tracking 2>/dev/null) || {
        echo false
        return
      }
      [[ "$out" == *"Leap status     : Normal"* ]] && echo true || echo false
      ;;
    *)
      out=$(timedatectl show -p NTPSynchronized --value 2>/dev/null) || out=no
      [ "$out" = yes ] && echo true || echo false
      ;;
  esac
}
snapshot() { printf '{"service":"%s","serviceActive":%s,"synchronized":%s}' "$unit" "$(active)" "$(synchronized)"; }

before=$(snapshot)
echo "before: $before"
dry=false
[ "$DRY_RUN" = 1 ] && dry=true
if [[ "$before" == *'"serviceActive":true,"synchronized":true'* ]]; then
  emit "{\"status\":\"already-ok\",\"dryRun\":$dry,\"before\":$before,\"after\":$before}"
  exit 0
fi
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: would enable and restart $unit and step the clock"
  emit "{\"status\":\"not-fixed\",\"dryRun\":true,\"before\":$before,\"after\":$before}"
  exit 1
fi

echo "enabling and restarting $unit"
systemctl enable -- "$unit" >/dev/null 2>&1 || echo "warning: could not enable $unit"
systemctl restart -- "$unit" || echo "warning: restart of $unit failed"
case "$unit" in
  chrony*)
    # A large offset is only slewed slowly unless chrony is told to step once.
    command -v chronyc >/dev/null && { chronyc -a makestep || echo "warning: chronyc makestep failed"; }
    ;;
  *)
    command -v timedatectl >/dev/null && { timedatectl set-ntp true || echo "warning: timedatectl set-ntp failed"; }
    ;;
esac
after=$(snapshot)
echo "after: $after"
# Synchronisation completes after the first NTP exchanges; a running service is what this step fixes.
status=not-fixed
[[ "$after" == *'"serviceActive":true'* ]] && status=fixed
emit "{\"status\":\"$status\",\"dryRun\":false,\"before\":$before,\"after\":$after}"
[ "$status" = fixed ]
