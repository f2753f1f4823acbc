#!/bin/sh
# azd preprovision hook: checks, before azd creates anything, what the deployment and the later hooks
# need, and stops with one clear line when something is missing. The postdeploy hook (wiring.bicep) and
# the predown hook (custom role clean-up) call the Azure CLI, which keeps its own sign-in: sign in once
# with `az login` and let azd use it (`azd config set auth.useAzCliAuth true`), or sign in to both.
set -euf  # -f: a scope is never a glob pattern

fail() {
  echo "preprovision: $*" >&2
  exit 2
}

if ! command -v az >/dev/null 2>&1; then
  fail "the Azure CLI (az) is not installed; the postdeploy and predown hooks need it (https://aka.ms/InstallAzureCLI)"
fi

subscription=${AZURE_SUBSCRIPTION_ID:-}
if [ -n "$subscription" ]; then
  if ! tenant=$(az account show --subscription "$subscription" --query tenantId --output tsv 2>/dev/null); then
    fail "the Azure CLI cannot see subscription $subscription; run 'az login' (and 'azd config set auth.useAzCliAuth true' to share that sign-in with azd)"
  fi
  if [ -n "${AZURE_TENANT_ID:-}" ] && [ "$tenant" != "$AZURE_TENANT_ID" ]; then
    fail "the Azure CLI is signed in to tenant $tenant, this environment deployed to tenant $AZURE_TENANT_ID; run 'az login --tenant $AZURE_TENANT_ID'"
  fi
elif ! az account show --output none 2>/dev/null; then
  fail "the Azure CLI is not signed in; run 'az login' (and 'azd config set auth.useAzCliAuth true' to share that sign-in with azd)"
fi

# Empty means the app's own resource group (main.bicep): a safe first deployment that acts on nothing.
scopes=$(printf '%s' "${REMEDIATION_TARGET_SCOPES:-}" | tr -d ' ')
if [ -n "$scopes" ]; then
  count=0
  for scope in $(printf '%s' "$scopes" | tr ',' ' '); do
    count=$((count + 1))
    if ! printf '%s\n' "${scope%/}" | grep -Eiq '^/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(/resourceGroups/[^/]+)?$'; then
      fail "REMEDIATION_TARGET_SCOPES: '$scope' is neither /subscriptions/<id> nor /subscriptions/<id>/resourceGroups/<name>"
    fi
  done
  commas=$(printf '%s' "$scopes" | tr -cd ',' | wc -c)
  if [ "$count" -ne $((commas + 1)) ]; then
    fail "REMEDIATION_TARGET_SCOPES has an empty entry: '$scopes'"
  fi
  echo "preprovision: $count target scope(s); the operator role will be assigned at each"
else
  echo "preprovision: REMEDIATION_TARGET_SCOPES is empty: the app may act only in its own resource group until you set it"
fi
