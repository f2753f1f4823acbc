#!/bin/bash
# Bundles system state and recent logs into a tar.gz and uploads it to the app's diagnostics container.
# Changes nothing on the VM: the archive lives in a private temporary directory that is removed at exit.
# Parameters (environment): UPLOAD_URL (the blob URL, without SAS), UPLOAD_TOKEN (protected: the SAS,
# base64), MAX_LOG_LINES (2000), DRY_RUN (0). The SAS reaches curl through a config file in the private
# directory (never its argv or environment) and is never printed.
# The last line of stdout is `REMEDIATION_RESULT {json}`.
# @prelude
umask 077

UPLOAD_URL="${UPLOAD_URL-}"
UPLOAD_TOKEN="${UPLOAD_TOKEN-}"
# Out of the environment of everything this script starts.
export -n UPLOAD_TOKEN
MAX_LOG_LINES="${MAX_LOG_LINES-2000}"
DRY_RUN="${DRY_RUN-0}"
# The blob URL of an Azure storage account: https only, no query, no spaces, quotes or shell syntax.
url_re='^https://[a-z0-9]{3,24}\.blob\.core\.windows\.net/[a-z0-9][a-z0-9-]{1,61}[a-z0-9]/[A-Za-z0-9._/-]+$'
if ! [[ "$UPLOAD_URL" =~ $url_re ]] || [ "${#UPLOAD_URL}" -gt 1100 ] || [[ "$UPLOAD_URL" == *..* ]]; then
  fail "UPLOAD_URL must be an https blob URL of the diagnostics container"
fi
{ [[ "$UPLOAD_TOKEN" =~ ^[A-Za-z0-9+/]+={0,2}$ ]] && [ "${#UPLOAD_TOKEN}" -le 4000 ]; } ||
  fail "UPLOAD_TOKEN must be a base64 SAS"
sas=$(printf '%s' "$UPLOAD_TOKEN" | base64 -d 2>/dev/null) || fail "UPLOAD_TOKEN must be a base64 SAS"
UPLOAD_TOKEN=""
# A SAS query: field=value pairs of URL-safe characters; nothing a curl config line could misread.
[[ "$sas" =~ ^[A-Za-z0-9%=\&:._/+-]+$ ]] || fail "UPLOAD_TOKEN must be a base64 SAS"
[[ "$MAX_LOG_LINES" =~ ^[0-9]{1,6}$ ]] || fail "MAX_LOG_LINES must be an integer 100..100000"
lines=$((10#$MAX_LOG_LINES))
{ [ "$lines" -ge 100 ] && [ "$lines" -le 100000 ]; } || fail "MAX_LOG_LINES must be an integer 100..100000"
[[ "$DRY_RUN" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"

# name|command: each runs with a time limit; a missing tool just leaves its file out.
probes=(
  "uname|uname -a"
  "os-release|cat /etc/os-release"
  "uptime|uptime"
  "disk|df -P -h"
  "inodes|df -P -i"
  "mounts|findmnt -l"
  "memory|free -m"
  "processes|ps auxww --sort=-%cpu"
  "listening|ss -ltnup"
  "addresses|ip addr"
  "routes|ip route"
  "iptables|iptables -S"
  "nftables|nft list ruleset"
  "failed-units|systemctl --failed --no-pager"
  "journal|journalctl -n $lines --no-pager"
  "kernel|dmesg -T"
)
logs=(/var/log/syslog /var/log/messages /var/log/cloud-init.log /var/log/waagent.log /var/log/auth.log)

if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: would collect: ${probes[*]%%|*} and the last $lines lines of ${logs[*]}"
  emit '{"status":"not-fixed","dryRun":true,"before":{},"after":{"uploaded":false}}'
  exit 1
fi

work=$(mktemp -d)
cleanup_paths+=("$work")
mkdir "$work/diag"
collected=0
for probe in "${probes[@]}"; do
  name=${probe%%|*}
  read -r -a cmd <<<"${probe#*|}"
  command -v "${cmd[0]}" >/dev/null || continue
  if timeout 20 "${cmd[@]}" >"$work/diag/$name.txt" 2>&1; then collected=$((collected + 1)); fi
done
for log in "${logs[@]}"; do
  [ -f "$log" ] || continue
  tail -n "$lines" -- "$log" >"$work/diag/$(basename "$log").tail" 2>/dev/null && collected=$((collected + 1))
done
tar -C "$work" -czf "$work/diagnostics.tar.gz" diag
size=$(stat -c %s "$work/diagnostics.tar.gz")
echo "collected $collected items into a $size byte archive"

uploaded=false
http=0
if command -v curl >/dev/null; then
  # The signed URL goes to curl in a config file only root can read, never on its command line.
  config="$work/upload.curl"
  printf 'url = "%s?%s"\n' "$UPLOAD_URL" "$sas" >"$config"
  sas=""
  http=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 300 --retry 2 -X PUT \
    -H "x-ms-blob-type: BlockBlob" -H "Content-Type: application/gzip" \
    --upload-file "$work/diagnostics.tar.gz" -K "$config" 2>/dev/null) || http=0
  rm -f -- "$config"
  [[ "$http" =~ ^[0-9]{3}$ ]] || http=0
  [ "$http" = 201 ] && uploaded=true
  echo "upload: HTTP $http"
else
  echo "curl not found: cannot upload"
fi
status=not-fixed
[ "$uploaded" = true ] && status=fixed
emit "{\"status\":\"$status\",\"dryRun\":false,\"blobUrl\":\"$UPLOAD_URL\",\"before\":{},\"after\":{\"uploaded\":$uploaded,\"httpStatus\":$((10#$http)),\"archiveBytes\":$size,\"items\":$collected}}"
[ "$status" = fixed ]
