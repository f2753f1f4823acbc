# Starts one named Windows service that is not running. Refuses drivers, disabled services and the
# services whose start can cut the VM off or restart it. The last line of output is
# `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$ServiceName = '',
    [string]$DryRun = '0'
)
# @prelude

if ($ServiceName -notmatch '^[A-Za-z0-9][A-Za-z0-9_@.-]{0,79}$' -or $ServiceName.Contains('..')) {
    Exit-WithError 'ServiceName must be a service name (letters, digits, _ @ . -)'
}
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$dry = $DryRun -eq '1'
# Starting these can cut the VM off or restart it: the firewall, its filtering engine and IPsec
# enforce rules that may block RDP; routing and connection sharing rewrite how the NICs route; the
# update services may install updates and restart the VM on their own schedule. An operator starts
# them by hand.
$refused = @('MpsSvc', 'BFE', 'IKEEXT', 'PolicyAgent', 'RemoteAccess', 'SharedAccess',
    'wuauserv', 'UsoSvc', 'WaaSMedicSvc', 'TrustedInstaller')
if ($refused -contains $ServiceName) { Exit-WithError "refusing ${ServiceName}: starting it can cut the VM off or restart it" }
$service = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($null -eq $service) { Exit-WithError 'service not found on this VM' }
# Get-Service also finds a service by its display name: check the real name too.
$ServiceName = $service.ServiceName
if ($refused -contains $ServiceName) { Exit-WithError "refusing ${ServiceName}: starting it can cut the VM off or restart it" }
# KernelDriver (1) and FileSystemDriver (2): a driver is loaded into the kernel, not a service to restart.
if (([int]$service.ServiceType -band 3) -ne 0) { Exit-WithError "refusing ${ServiceName}: it is a driver, not a service" }
if ($service.StartType -eq 'Disabled') { Exit-WithError 'the service is disabled: an operator disabled it on purpose' }

function Get-ActiveState { if ((Get-Service -Name $ServiceName).Status -eq 'Running') { 'active' } else { 'inactive' } }
$before = @{ activeState = (Get-ActiveState) }
Write-Output "service ${ServiceName}: $($before.activeState)"
if ($before.activeState -eq 'active') {
    Write-Result @{ status = 'already-ok'; unit = $ServiceName; dryRun = $dry; before = $before; after = $before }
    exit 0
}
if ($dry) {
    Write-Output "dry run: would start $ServiceName"
    Write-Result @{ status = 'not-fixed'; unit = $ServiceName; dryRun = $true; before = $before; after = $before }
    exit 1
}
try { Start-Service -Name $ServiceName; (Get-Service -Name $ServiceName).WaitForStatus('Running', [TimeSpan]::FromSeconds(60)) }
catch { Write-Output "start failed: $($_.Exception.Message)" }
$after = @{ activeState = (Get-ActiveState) }
$status = if ($after.activeState -eq 'active') { 'fixed' } else { 'not-fixed' }
Write-Result @{ status = $status; unit = $ServiceName; dryRun = $false; before = $before; after = $after }
if ($status -eq 'fixed') { exit 0 } else { exit 1 }
