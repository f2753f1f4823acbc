#!/bin/sh
# azd predown hook: removes what `azd down` cannot, because it lives outside the resource group: the
# custom operator role's assignments at the target scopes, then the role definition itself (ARM refuses
# to delete a role that is still assigned), and the operator API's Entra app registration when this
# deployment created it (deleted, then purged from the directory's deleted items). Reads the values
# main.bicep outputs into the azd environment: OPERATOR_ROLE_DEFINITION_ID, REMEDIATION_TARGET_SCOPES and
# OPERATOR_API_APP_OBJECT_ID_CREATED. Safe to run twice: ARM answers 204 to a
# DELETE of something already gone. Needs the Azure CLI signed in (see preprovision.sh).
set -euf  # -f: a scope is never a glob pattern

API=2022-04-01

fail() {
  echo "predown: $*" >&2
  exit 2
}

role=${OPERATOR_ROLE_DEFINITION_ID:-}
scopes=$(printf '%s' "${REMEDIATION_TARGET_SCOPES:-}" | tr -d ' ')
if [ -z "$role" ] || [ -z "$scopes" ]; then
  echo "predown: OPERATOR_ROLE_DEFINITION_ID or REMEDIATION_TARGET_SCOPES is not set: nothing to remove (an environment provisioned before this hook existed keeps its role: see infra/README.md, Upgrading)"
  exit 0
fi

if ! command -v az >/dev/null 2>&1; then
  fail "the Azure CLI (az) is not installed; it removes the operator role before 'azd down' (https://aka.ms/InstallAzureCLI)"
fi
if ! az account show --output none 2>/dev/null; then
  fail "the Azure CLI is not signed in; run 'az login' and then 'azd down' again (nothing was deleted)"
fi

arm=$(az cloud show --query endpoints.resourceManager --output tsv)
arm=${arm%/}
guid=${role##*/}

# Every assignment of the role at or above each target scope: assignments in another subscription carry
# that subscription's id in their roleDefinitionId, so they are matched by the role's GUID.
assignments=""
for scope in $(printf '%s' "$scopes" | tr ',' ' '); do
  found=$(az rest --method get \
    --url "$arm${scope%/}/providers/Microsoft.Authorization/roleAssignments?api-version=$API&\$filter=atScope()" \
    --query "value[?ends_with(properties.roleDefinitionId, '/$guid')].id" --output tsv)
  assignments="$assignments
$found"
done

for assignment in $(printf '%s\n' "$assignments" | sed '/^$/d' | sort -u); do
  echo "predown: removing role assignment $assignment"
  az rest --method delete --url "$arm$assignment?api-version=$API" --output none
done

echo "predown: removing role definition $role"
az rest --method delete --url "$arm$role?api-version=$API" --output none

app=${OPERATOR_API_APP_OBJECT_ID_CREATED:-}
if [ -n "$app" ]; then
  graph=$(az cloud show --query endpoints.microsoftGraphResourceId --output tsv)
  graph=${graph%/}
  echo "predown: removing the app registration $app this deployment created, and purging it"
  az rest --method delete --url "$graph/v1.0/applications/$app" --output none
  az rest --method delete --url "$graph/v1.0/directory/deletedItems/$app" --output none
fi
echo "predown: the operator role and its assignments are gone; azd now deletes the resource group"
