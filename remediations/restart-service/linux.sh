#!/bin/bash
# Restarts one named systemd service that is not running, by allowance: only a service unit that is
# enabled (or named on the allow list), not a template instance (unless allowed), currently failed or
# inactive, and whose start cannot end or isolate the system. Every refusal says exactly why.
# Parameters (environment): SERVICE_NAME, ALLOWED_UNITS (comma-separated, may be empty), DRY_RUN (0).
# The last line of stdout is `REMEDIATION_RESULT {json}`.
# @prelude

SERVICE_NAME="${SERVICE_NAME-}"
ALLOWED_UNITS="${ALLOWED_UNITS-}"
DRY_RUN="${DRY_RUN-0}"
name_re='[A-Za-z0-9][A-Za-z0-9_@.-]{0,79}'
# A unit name: letters, digits, "_", "@", "-" and single dots; optional ".service" suffix.
if ! [[ "$SERVICE_NAME" =~ ^$name_re$ ]] || [[ "$SERVICE_NAME" == *..* ]]; then
  fail "SERVICE_NAME must be a unit name (letters, digits, _ @ . -)"
fi
if [ -n "$ALLOWED_UNITS" ] && { ! [[ "$ALLOWED_UNITS" =~ ^$name_re(,$name_re){0,19}$ ]] || [[ "$ALLOWED_UNITS" == *..* ]]; }; then
  fail "ALLOWED_UNITS must be a comma-separated list of unit names"
fi
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"

# Only services: starting a target, socket, mount, timer... can isolate, power off or reboot the VM.
unit_types='target|socket|mount|automount|swap|path|timer|slice|scope|device|snapshot'
if [[ "$SERVICE_NAME" =~ \.($unit_types)$ ]]; then
  fail "refusing $SERVICE_NAME: only service units are restarted"
fi
# The full name, so systemctl never guesses a type from a dot inside the name.
unit="${SERVICE_NAME%.service}.service"

# Units whose start ends the system, isolates it or stops everything: as the unit itself or as
# anything it pulls in or waits for.
ending='(shutdown|reboot|poweroff|halt|kexec|exit|soft-reboot|final|umount|emergency|rescue|ctrl-alt-del|sleep|suspend|hibernate|hybrid-sleep|suspend-then-hibernate|initrd-switch-root)\.target'
ending_services='(systemd-(poweroff|reboot|halt|kexec|exit|soft-reboot|suspend|hibernate|hybrid-sleep|suspend-then-hibernate)|emergency|rescue|debug-shell|halt|reboot|poweroff|kexec|sendsigs|killprocs|umountfs|umountnfs|umountroot|initrd-[A-Za-z0-9-]+)\.service'
[[ "$unit" =~ ^$ending_services$ ]] && fail "refusing $unit: starting it powers off, reboots or isolates the VM"

command -v systemctl >/dev/null || fail "systemctl not found: this script supports systemd guests only"

property() { systemctl show -p "$1" --value -- "$unit" 2>/dev/null || true; }
load=$(property LoadState)
[ "$load" = masked ] && fail "refusing $unit: the unit is masked (an operator turned it off on purpose)"
[ "$load" = loaded ] || fail "unit not found on this VM"

id=$(property Id)
# The real unit behind an alias; its name goes into the result, so only plain names are accepted.
[[ "$id" =~ ^[A-Za-z0-9][A-Za-z0-9_@.:-]{0,250}\.service$ ]] ||
  fail "refusing $unit: it does not resolve to a plain service unit"
[[ "$id" =~ ^$ending_services$ ]] && fail "refusing $unit: it is $id, whose start powers off, reboots or isolates the VM"
unit=$id
name="${unit%.service}"

# On the allow list: the name asked for or the unit it resolves to, with or without ".service".
allowed=false
IFS=, read -r -a allow_list <<<"$ALLOWED_UNITS"
for entry in "${allow_list[@]}"; do
  entry="${entry%.service}"
  if [ "$entry" = "$name" ] || [ "$entry" = "${SERVICE_NAME%.service}" ]; then allowed=true; fi
done

# What the unit does when it starts, succeeds or fails: any of these set to an action (poweroff,
# reboot, halt, kexec, exit, soft-reboot, with or without -force / -immediate) ends the system.
for action in SuccessAction FailureAction StartLimitAction JobTimeoutAction; do
  value=$(property "$action")
  [[ "$value" =~ ^[a-z-]*$ ]] || fail "refusing $unit: unreadable $action"
  if [ -n "$value" ] && [ "$value" != none ]; then
    fail "refusing $unit: $action=$value (its start can end the system)"
  fi
done
default_deps=$(property DefaultDependencies)
[ "$default_deps" = no ] && fail "refusing $unit: DefaultDependencies=no (an early-boot or shutdown unit)"
# Before= and Conflicts= shutdown.target are what every ordinary service carries; what a unit pulls
# in, binds to, waits for or triggers must not be one of the ending units.
for dependency in Requires Requisite Wants BindsTo PartOf Upholds OnSuccess OnFailure After; do
  for other in $(property "$dependency"); do
    if [[ "$other" =~ ^($ending|$ending_services)$ ]]; then
      fail "refusing $unit: $dependency=$other (its start can end or isolate the system)"
    fi
  done
done

file_state=$(property UnitFileState)
case "$file_state" in
  masked | masked-runtime) fail "refusing $unit: the unit is masked (an operator turned it off on purpose)" ;;
  disabled) [ "$allowed" = true ] || fail "refusing $unit: the unit is disabled (an operator turned it off on purpose)" ;;
  enabled | enabled-runtime) ;;
  *) [ "$allowed" = true ] || fail "refusing $unit: the unit is ${file_state:-without a unit file state}, not enabled, and not on the allow list" ;;
esac
if [[ "$name" == *@* ]] && [ "$allowed" != true ]; then
  fail "refusing $unit: a template instance, and not on the allow list"
fi

active_state() { systemctl show -p ActiveState --value -- "$unit" 2>/dev/null || echo unknown; }
before_state=$(active_state)
echo "unit $unit: $before_state (unit file $file_state, allow list: $allowed)"
before="{\"activeState\":\"$(json_escape "$before_state")\"}"
dry=false
[ "$DRY_RUN" = 1 ] && dry=true

if [ "$before_state" = active ]; then
  echo "already running: nothing to do"
  emit "{\"status\":\"already-ok\",\"unit\":\"$name\",\"dryRun\":$dry,\"before\":$before,\"after\":$before}"
  exit 0
fi
case "$before_state" in
  failed | inactive) ;;
  *) fail "refusing $unit: it is $before_state, neither failed nor inactive (systemd is still acting on it)" ;;
esac
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: would restart $unit"
  emit "{\"status\":\"not-fixed\",\"unit\":\"$name\",\"dryRun\":true,\"before\":$before,\"after\":$before}"
  exit 1
fi

echo "restarting $unit"
restart_ok=true
systemctl restart -- "$unit" || restart_ok=false
after_state=$(active_state)
echo "unit $unit: $after_state"
status=not-fixed
[ "$after_state" = active ] && status=fixed
emit "{\"status\":\"$status\",\"unit\":\"$name\",\"dryRun\":false,\"restartSucceeded\":$restart_ok,\"before\":$before,\"after\":{\"activeState\":\"$(json_escape "$after_state")\"}}"
[ "$status" = fixed ]
