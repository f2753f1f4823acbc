#!/bin/bash
# Restarts one named systemd service that is not running. Refuses anything but a service unit, the
# services that power off, reboot or isolate the VM, and units an operator disabled or masked.
# Parameters (environment): SERVICE_NAME, DRY_RUN (0). The last line of stdout is
# `REMEDIATION_RESULT {json}`.
# @prelude

SERVICE_NAME="${SERVICE_NAME-}"
DRY_RUN="${DRY_RUN-0}"
# A unit name: letters, digits, "_", "@", "-" and single dots; optional ".service" suffix.
if ! [[ "$SERVICE_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9_@.-]{0,79}$ ]] || [[ "$SERVICE_NAME" == *..* ]]; then
  fail "SERVICE_NAME must be a unit name (letters, digits, _ @ . -)"
fi
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"

# Only services: starting a target, socket, mount, timer... can isolate, power off or reboot the VM.
unit_types='target|socket|mount|automount|swap|path|timer|slice|scope|device|snapshot'
if [[ "$SERVICE_NAME" =~ \.($unit_types)$ ]]; then
  fail "refusing $SERVICE_NAME: only service units are restarted"
fi
# The full name, so systemctl never guesses a type from a dot inside the name.
unit="${SERVICE_NAME%.service}.service"

# Services whose start powers off, reboots, halts, suspends or isolates the VM, kills every process,
# unmounts its filesystems or opens a root shell on a console. Checked for the name given and for
# the unit it resolves to (an alias can point at one of them).
denied='^(systemd-(poweroff|reboot|halt|kexec|soft-reboot|suspend|hibernate|hybrid-sleep|suspend-then-hibernate)|emergency|rescue|debug-shell|halt|reboot|poweroff|kexec|sendsigs|killprocs|umountfs|umountnfs|umountroot|initrd-.*)\.service$'
[[ "$unit" =~ $denied ]] && fail "refusing $unit: starting it powers off, reboots or isolates the VM"

command -v systemctl >/dev/null || fail "systemctl not found: this script supports systemd guests only"

property() { systemctl show -p "$1" --value -- "$unit" 2>/dev/null || true; }
load=$(property LoadState)
[ "$load" = masked ] && fail "refusing $unit: the unit is masked (an operator turned it off on purpose)"
[ "$load" = loaded ] || fail "unit not found on this VM"

id=$(property Id)
# The real unit behind an alias; its name goes into the result, so only plain names are accepted.
[[ "$id" =~ ^[A-Za-z0-9][A-Za-z0-9_@.:-]{0,250}\.service$ ]] ||
  fail "refusing $unit: it does not resolve to a plain service unit"
[[ "$id" =~ $denied ]] && fail "refusing $unit: it is $id, whose start powers off, reboots or isolates the VM"
unit=$id
case "$(property UnitFileState)" in
  disabled) fail "refusing $unit: the unit is disabled (an operator turned it off on purpose)" ;;
  masked | masked-runtime) fail "refusing $unit: the unit is masked (an operator turned it off on purpose)" ;;
esac

active_state() { systemctl show -p ActiveState --value -- "$unit" 2>/dev/null || echo unknown; }
before_state=$(active_state)
name="${unit%.service}"
echo "unit $unit: $before_state"
before="{\"activeState\":\"$before_state\"}"
dry=false
[ "$DRY_RUN" = 1 ] && dry=true

if [ "$before_state" = active ]; then
  echo "already running: nothing to do"
  emit "{\"status\":\"already-ok\",\"unit\":\"$name\",\"dryRun\":$dry,\"before\":$before,\"after\":$before}"
  exit 0
fi
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
emit "{\"status\":\"$status\",\"unit\":\"$name\",\"dryRun\":false,\"restartSucceeded\":$restart_ok,\"before\":$before,\"after\":{\"activeState\":\"$after_state\"}}"
[ "$status" = fixed ]
