# Starts one named Windows service that is stopped, by allowance: only a service whose start type is
# Automatic (or one on the allow list), never a driver, never a service whose recovery action
# restarts the computer, never the services that can cut the VM off or restart it, and never a
# remote-access service unless allowed. Every refusal says exactly why. The last line of output is
# `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$ServiceName = '',
    [string]$AllowedUnits = '',
    [string]$DryRun = '0'
)
# @prelude

$namePattern = '[A-Za-z0-9][A-Za-z0-9_@.-]{0,79}'
if ($ServiceName -notmatch "^$namePattern$" -or $ServiceName.Contains('..')) {
    Exit-WithError 'ServiceName must be a service name (letters, digits, _ @ . -)'
}
if ($AllowedUnits -ne '' -and ($AllowedUnits -notmatch "^$namePattern(,$namePattern){0,19}$" -or $AllowedUnits.Contains('..'))) {
    Exit-WithError 'AllowedUnits must be a comma-separated list of service names'
}
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$dry = $DryRun -eq '1'
# Starting these can cut the VM off or restart it: the firewall, its filtering engine and IPsec
# enforce rules that may block RDP; routing and connection sharing rewrite how the NICs route; the
# update services may install updates and restart the VM on their own schedule. Never, allowed or not.
$refused = @('MpsSvc', 'BFE', 'IKEEXT', 'PolicyAgent', 'RemoteAccess', 'SharedAccess',
    'wuauserv', 'UsoSvc', 'WaaSMedicSvc', 'TrustedInstaller')
# Remote access into the VM: started only when the operator allows it by name.
$remoteAccess = @('sshd', 'ssh-agent', 'WinRM', 'RemoteRegistry', 'TermService', 'SessionEnv',
    'UmRdpService', 'RasMan', 'RasAuto', 'SstpSvc', 'TlntSvr', 'SNMP', 'FTPSVC')
if ($refused -contains $ServiceName) { Exit-WithError "refusing ${ServiceName}: starting it can cut the VM off or restart it" }
$service = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($null -eq $service) { Exit-WithError 'service not found on this VM' }
# Get-Service also finds a service by its display name: check the real name too.
$ServiceName = $service.ServiceName
if ($refused -contains $ServiceName) { Exit-WithError "refusing ${ServiceName}: starting it can cut the VM off or restart it" }
$allowList = @(if ($AllowedUnits -ne '') { $AllowedUnits.Split(',') })
$allowed = ($allowList -contains $ServiceName) -or ($allowList -contains $service.Name)
# KernelDriver (1) and FileSystemDriver (2): a driver is loaded into the kernel, not a service to restart.
if (([int]$service.ServiceType -band 3) -ne 0) { Exit-WithError "refusing ${ServiceName}: it is a driver, not a service" }
if ($service.StartType -eq 'Disabled') { Exit-WithError "refusing ${ServiceName}: the service is disabled (an operator disabled it on purpose)" }
if ($service.StartType -ne 'Automatic' -and -not $allowed) {
    Exit-WithError "refusing ${ServiceName}: its start type is $($service.StartType), not Automatic, and it is not on the allow list"
}
if ($remoteAccess -contains $ServiceName -and -not $allowed) {
    Exit-WithError "refusing ${ServiceName}: a remote-access service, and not on the allow list"
}
# The recovery actions (sc.exe qfailure): a SERVICE_FAILURE_ACTIONS blob of 20 bytes, then 8 bytes per
# action whose first DWORD is its type; 2 (SC_ACTION_REBOOT) restarts the computer when it fails.
$serviceKey = "HKLM:\SYSTEM\CurrentControlSet\Services\$ServiceName"
$failureActions = (Get-ItemProperty -LiteralPath $serviceKey -Name FailureActions -ErrorAction SilentlyContinue)
if ($null -ne $failureActions) {
    [byte[]]$blob = $failureActions.FailureActions
    for ($offset = 20; $offset + 8 -le $blob.Length; $offset += 8) {
        if ([BitConverter]::ToUInt32($blob, $offset) -eq 2) {
            Exit-WithError "refusing ${ServiceName}: its recovery action restarts the computer"
        }
    }
}

$status = (Get-Service -Name $ServiceName).Status
if ($status -ne 'Running' -and $status -ne 'Stopped') {
    Exit-WithError "refusing ${ServiceName}: it is $status, neither running nor stopped (the service manager is still acting on it)"
}
function Get-ActiveState { if ((Get-Service -Name $ServiceName).Status -eq 'Running') { 'active' } else { 'inactive' } }
$before = @{ activeState = (Get-ActiveState) }
Write-Output "service ${ServiceName}: $($before.activeState) (start type $($service.StartType), allow list: $allowed)"
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
