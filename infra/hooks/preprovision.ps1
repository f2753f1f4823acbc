# azd preprovision hook (Windows): checks, before azd creates anything, what the deployment and the later
# hooks need, and stops with one clear line when something is missing. Same checks as preprovision.sh.
$ErrorActionPreference = 'Stop'

function Stop-Preprovision([string]$message) {
  [Console]::Error.WriteLine("preprovision: $message")
  exit 2
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  Stop-Preprovision 'the Azure CLI (az) is not installed; the postdeploy and predown hooks need it (https://aka.ms/InstallAzureCLI)'
}

$subscription = $env:AZURE_SUBSCRIPTION_ID
if ($subscription) {
  $tenant = az account show --subscription $subscription --query tenantId --output tsv 2>$null
  if ($LASTEXITCODE -ne 0) {
    Stop-Preprovision "the Azure CLI cannot see subscription $subscription; run 'az login' (and 'azd config set auth.useAzCliAuth true' to share that sign-in with azd)"
  }
  if ($env:AZURE_TENANT_ID -and $tenant -ne $env:AZURE_TENANT_ID) {
    Stop-Preprovision "the Azure CLI is signed in to tenant $tenant, this environment deployed to tenant $($env:AZURE_TENANT_ID); run 'az login --tenant $($env:AZURE_TENANT_ID)'"
  }
} else {
  az account show --output none 2>$null
  if ($LASTEXITCODE -ne 0) {
    Stop-Preprovision "the Azure CLI is not signed in; run 'az login' (and 'azd config set auth.useAzCliAuth true' to share that sign-in with azd)"
  }
}

# Empty means the app's own resource group (main.bicep): a safe first deployment that acts on nothing.
$scopes = "$($env:REMEDIATION_TARGET_SCOPES)" -replace ' ', ''
if ($scopes) {
  $pattern = '^/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(/resourceGroups/[^/]+)?$'
  $entries = $scopes.Split(',')
  foreach ($scope in $entries) {
    if (-not $scope) {
      Stop-Preprovision "REMEDIATION_TARGET_SCOPES has an empty entry: '$scopes'"
    }
    if ($scope.TrimEnd('/') -notmatch $pattern) {
      Stop-Preprovision "REMEDIATION_TARGET_SCOPES: '$scope' is neither /subscriptions/<id> nor /subscriptions/<id>/resourceGroups/<name>"
    }
  }
  Write-Host "preprovision: $($entries.Count) target scope(s); the operator role will be assigned at each"
} else {
  Write-Host 'preprovision: REMEDIATION_TARGET_SCOPES is empty: the app may act only in its own resource group until you set it'
}
