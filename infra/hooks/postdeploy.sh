#!/bin/sh
# azd postdeploy hook: connects Azure Monitor and Event Grid to the functions just deployed, by deploying
# infra/wiring.bicep into the app's resource group. azd passes the environment's values (the outputs of
# main.bicep) as environment variables. Needs the Azure CLI signed in to the same tenant as azd (the
# preprovision hook checks it before anything is created).
set -eu

here=$(cd "$(dirname "$0")" && pwd)

need() {
  eval "value=\${$1:-}"
  if [ -z "$value" ]; then
    echo "postdeploy: $1 is not set; run 'azd provision' (or 'azd up') first" >&2
    exit 2
  fi
}
for name in AZURE_ENV_NAME AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP FUNCTION_APP_NAME STORAGE_ACCOUNT_NAME \
  DEADLETTER_CONTAINER_NAME EVENTGRID_SYSTEM_TOPIC_NAME EVENTGRID_IDENTITY_ID LOG_ANALYTICS_WORKSPACE_ID \
  REMEDIATION_TARGET_SCOPES; do
  need "$name"
done

if ! az account show --subscription "$AZURE_SUBSCRIPTION_ID" >/dev/null 2>&1; then
  echo "postdeploy: the Azure CLI cannot see subscription $AZURE_SUBSCRIPTION_ID; run 'az login' (and 'azd config set auth.useAzCliAuth true' to share it with azd), then 'azd hooks run postdeploy'" >&2
  exit 2
fi

# The function list trails a deployment; Event Grid refuses a subscription to a function it cannot see.
attempt=0
until az functionapp function show --subscription "$AZURE_SUBSCRIPTION_ID" --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "$FUNCTION_APP_NAME" --function-name resource_events --query name --output tsv >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 30 ]; then
    echo "postdeploy: function resource_events did not appear in $FUNCTION_APP_NAME; check 'azd deploy' output" >&2
    exit 1
  fi
  echo "postdeploy: waiting for the functions of $FUNCTION_APP_NAME to be listed ($attempt/30)"
  sleep 10
done

az deployment group create \
  --subscription "$AZURE_SUBSCRIPTION_ID" \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "wiring-$AZURE_ENV_NAME" \
  --template-file "$here/../wiring.bicep" \
  --parameters \
  functionAppName="$FUNCTION_APP_NAME" \
  storageAccountName="$STORAGE_ACCOUNT_NAME" \
  deadLetterContainerName="$DEADLETTER_CONTAINER_NAME" \
  systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" \
  eventGridIdentityId="$EVENTGRID_IDENTITY_ID" \
  targetScopes="$REMEDIATION_TARGET_SCOPES" \
  vmInsightsWorkspaceId="${VM_INSIGHTS_WORKSPACE_ID:-$LOG_ANALYTICS_WORKSPACE_ID}" \
  deploySampleAlerts="${REMEDIATION_SAMPLE_ALERTS:-true}" \
  alertWebhookAppObjectId="${ALERT_WEBHOOK_APP_OBJECT_ID:-}" \
  alertWebhookIdentifierUri="${ALERT_WEBHOOK_APP_ID_URI:-}" \
  --output none

echo "postdeploy: alerts and resource events now reach $FUNCTION_APP_NAME"
