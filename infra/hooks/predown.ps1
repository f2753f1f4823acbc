# azd predown hook (Windows): removes what `azd down` cannot, because it lives outside the resource group:
# the custom operator role's assignments at the target scopes, then the role definition. Same steps as
# predown.sh; reads OPERATOR_ROLE_DEFINITION_ID and REMEDIATION_TARGET_SCOPES (main.bicep outputs).
$ErrorActionPreference = 'Stop'

$api = '2022-04-01'

function Stop-Predown([string]$message) {
  [Console]::Error.WriteLine("predown: $message")
  exit 2
}

$role = $env:OPERATOR_ROLE_DEFINITION_ID
$scopes = "$($env:REMEDIATION_TARGET_SCOPES)" -replace ' ', ''
if (-not $role -or -not $scopes) {
  Write-Host 'predown: OPERATOR_ROLE_DEFINITION_ID or REMEDIATION_TARGET_SCOPES is not set: nothing to remove (an environment provisioned before this hook existed keeps its role: see infra/README.md, Upgrading)'
  exit 0
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  Stop-Predown "the Azure CLI (az) is not installed; it removes the operator role before 'azd down' (https://aka.ms/InstallAzureCLI)"
}
az account show --output none 2>$null
if ($LASTEXITCODE -ne 0) {
  Stop-Predown "the Azure CLI is not signed in; run 'az login' and then 'azd down' again (nothing was deleted)"
}

$arm = (az cloud show --query endpoints.resourceManager --output tsv).TrimEnd('/')
$guid = $role.Split('/')[-1]

$assignments = @()
foreach ($scope in $scopes.Split(',')) {
  if (-not $scope) { continue }
  $url = "$arm$($scope.TrimEnd('/'))/providers/Microsoft.Authorization/roleAssignments?api-version=$api&`$filter=atScope()"
  $found = az rest --method get --url $url --query "value[?ends_with(properties.roleDefinitionId, '/$guid')].id" --output tsv
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
  $assignments += @($found | Where-Object { $_ })
}

foreach ($assignment in ($assignments | Sort-Object -Unique)) {
  Write-Host "predown: removing role assignment $assignment"
  az rest --method delete --url "$arm$($assignment)?api-version=$api" --output none
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}

Write-Host "predown: removing role definition $role"
az rest --method delete --url "$arm$($role)?api-version=$api" --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

$app = $env:OPERATOR_API_APP_OBJECT_ID_CREATED
if ($app) {
  $graph = (az cloud show --query endpoints.microsoftGraphResourceId --output tsv).TrimEnd('/')
  Write-Host "predown: removing the app registration $app this deployment created, and purging it"
  az rest --method delete --url "$graph/v1.0/applications/$app" --output none
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
  az rest --method delete --url "$graph/v1.0/directory/deletedItems/$app" --output none
  if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
Write-Host 'predown: the operator role and its assignments are gone; azd now deletes the resource group'
