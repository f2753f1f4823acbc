# azd postdeploy hook (Windows): connects Azure Monitor and Event Grid to the functions just deployed, by
# deploying infra/wiring.bicep into the app's resource group. Same steps as postdeploy.sh.
$ErrorActionPreference = 'Stop'

$required = @(
  'AZURE_ENV_NAME', 'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'FUNCTION_APP_NAME', 'STORAGE_ACCOUNT_NAME',
  'DEADLETTER_CONTAINER_NAME', 'EVENTGRID_SYSTEM_TOPIC_NAME', 'EVENTGRID_IDENTITY_ID', 'LOG_ANALYTICS_WORKSPACE_ID',
  'REMEDIATION_TARGET_SCOPES'
)
foreach ($name in $required) {
  if (-not [Environment]::GetEnvironmentVariable($name)) {
    Write-Error "postdeploy: $name is not set; run 'azd provision' (or 'azd up') first"
    exit 2
  }
}

az account show --subscription $env:AZURE_SUBSCRIPTION_ID --output none 2>$null
if ($LASTEXITCODE -ne 0) {
  Write-Error "postdeploy: the Azure CLI cannot see subscription $($env:AZURE_SUBSCRIPTION_ID); run 'az login' (and 'azd config set auth.useAzCliAuth true' to share it with azd), then 'azd hooks run postdeploy'"
  exit 2
}

# The function list trails a deployment; Event Grid refuses a subscription to a function it cannot see.
$attempt = 0
while ($true) {
  az functionapp function show --subscription $env:AZURE_SUBSCRIPTION_ID --resource-group $env:AZURE_RESOURCE_GROUP `
    --name $env:FUNCTION_APP_NAME --function-name resource_events --query name --output tsv 2>$null | Out-Null
  if ($LASTEXITCODE -eq 0) { break }
  $attempt++
  if ($attempt -ge 30) {
    Write-Error "postdeploy: function resource_events did not appear in $($env:FUNCTION_APP_NAME); check 'azd deploy' output"
    exit 1
  }
  Write-Host "postdeploy: waiting for the functions of $($env:FUNCTION_APP_NAME) to be listed ($attempt/30)"
  Start-Sleep -Seconds 10
}

$workspace = if ($env:VM_INSIGHTS_WORKSPACE_ID) { $env:VM_INSIGHTS_WORKSPACE_ID } else { $env:LOG_ANALYTICS_WORKSPACE_ID }
$sampleAlerts = if ($env:REMEDIATION_SAMPLE_ALERTS) { $env:REMEDIATION_SAMPLE_ALERTS } else { 'true' }
$template = Join-Path $PSScriptRoot '..' 'wiring.bicep'

az deployment group create `
  --subscription $env:AZURE_SUBSCRIPTION_ID `
  --resource-group $env:AZURE_RESOURCE_GROUP `
  --name "wiring-$($env:AZURE_ENV_NAME)" `
  --template-file $template `
  --parameters `
  "functionAppName=$($env:FUNCTION_APP_NAME)" `
  "storageAccountName=$($env:STORAGE_ACCOUNT_NAME)" `
  "deadLetterContainerName=$($env:DEADLETTER_CONTAINER_NAME)" `
  "systemTopicName=$($env:EVENTGRID_SYSTEM_TOPIC_NAME)" `
  "eventGridIdentityId=$($env:EVENTGRID_IDENTITY_ID)" `
  "targetScopes=$($env:REMEDIATION_TARGET_SCOPES)" `
  "vmInsightsWorkspaceId=$workspace" `
  "deploySampleAlerts=$sampleAlerts" `
  "alertWebhookAppObjectId=$($env:ALERT_WEBHOOK_APP_OBJECT_ID)" `
  "alertWebhookIdentifierUri=$($env:ALERT_WEBHOOK_APP_ID_URI)" `
  --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

Write-Host "postdeploy: alerts and resource events now reach $($env:FUNCTION_APP_NAME)"
