# --- prelude (remediations/_prelude/linux.sh, joined here by the catalog loader) ---------------------
# Strict mode, the one result line, and a result even when the script dies unexpectedly.
set -euo pipefail
export LC_ALL=C

result_printed=0
# Paths removed at exit, whatever the outcome (a script appends its private work folders).
cleanup_paths=()

# JSON string contents: backslash, quote and control characters escaped.
json_escape() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '%s' "${s//[$'\001'-$'\037']/?}"
}

emit() {
  result_printed=1
  printf 'REMEDIATION_RESULT %s\n' "$1"
}

on_exit() {
  local code=$? path
  for path in "${cleanup_paths[@]}"; do
    [ -n "$path" ] && rm -rf -- "$path"
  done
  if [ "$result_printed" = 0 ]; then
    emit '{"status":"error","reason":"unexpected failure (exit '"$code"')","before":{},"after":{}}'
    [ "$code" = 0 ] && code=1
  fi
  exit "$code"
}
trap on_exit EXIT

fail() {
  echo "error: $1" >&2
  emit "{\"status\":\"error\",\"reason\":\"$(json_escape "$1")\",\"before\":{},\"after\":{}}"
  exit 2
}

bool() { if "$@"; then echo true; else echo false; fi; }

[[ "${DRY_RUN-0}" =~ ^(0|1)$ ]] || fail "DRY_RUN must be 0 or 1"
# --- end of prelude -------------------------------------------------------------------------------------
