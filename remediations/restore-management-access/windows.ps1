# Guest step of restore-management-access on Windows: TermService runs, RDP is enabled
# (fDenyTSConnections = 0), the "Remote Desktop" firewall rule group is enabled, and NLA is reported.
# The last line of output is `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$Port = '3389',
    [string]$DryRun = '0'
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

function Write-Result([hashtable]$Result) {
    Write-Output ('REMEDIATION_RESULT ' + ($Result | ConvertTo-Json -Compress -Depth 6))
}
function Exit-WithError([string]$Reason) {
    Write-Output "error: $Reason"
    Write-Result @{ status = 'error'; reason = $Reason; before = @{}; after = @{} }
    exit 2
}

if ($Port -notmatch '^[0-9]{1,5}$' -or [int]$Port -lt 1 -or [int]$Port -gt 65535) { Exit-WithError 'Port must be an integer 1..65535' }
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$portNumber = [int]$Port
$dry = $DryRun -eq '1'
$tsKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server'
$rdpTcpKey = "$tsKey\WinStations\RDP-Tcp"

function Get-State {
    $deny = (Get-ItemProperty -LiteralPath $tsKey -Name fDenyTSConnections -ErrorAction SilentlyContinue).fDenyTSConnections
    $nla = (Get-ItemProperty -LiteralPath $rdpTcpKey -Name UserAuthentication -ErrorAction SilentlyContinue).UserAuthentication
    $service = Get-Service -Name TermService -ErrorAction SilentlyContinue
    $listening = @(Get-NetTCPConnection -State Listen -LocalPort $portNumber -ErrorAction SilentlyContinue).Count -gt 0
    $rules = @(Get-NetFirewallRule -Direction Inbound -ErrorAction SilentlyContinue |
            Where-Object { $_.Group -eq '@FirewallAPI.dll,-28752' -or $_.DisplayGroup -eq 'Remote Desktop' })
    $enabledAllow = @($rules | Where-Object { $_.Enabled -eq 'True' -and $_.Action -eq 'Allow' }).Count
    return @{
        serviceRunning   = ($null -ne $service -and $service.Status -eq 'Running')
        rdpEnabled       = ($deny -eq 0)
        listening        = $listening
        firewallBlocks   = ($enabledAllow -eq 0)
        nlaRequired      = ($nla -eq 1)
    }
}

$before = Get-State
Write-Output ("before: " + ($before | ConvertTo-Json -Compress))
$fixes = New-Object System.Collections.ArrayList
$healthy = $before.serviceRunning -and $before.rdpEnabled -and $before.listening -and -not $before.firewallBlocks
if ($healthy) {
    Write-Result @{ status = 'already-ok'; port = $portNumber; dryRun = $dry; fixes = @(); before = $before; after = $before }
    exit 0
}

if (-not $before.rdpEnabled) {
    [void]$fixes.Add('set fDenyTSConnections to 0')
    if (-not $dry) { Set-ItemProperty -LiteralPath $tsKey -Name fDenyTSConnections -Value 0 -Type DWord }
}
if (-not $before.serviceRunning -or -not $before.listening) {
    [void]$fixes.Add('TermService automatic and started')
    if (-not $dry) {
        Set-Service -Name TermService -StartupType Automatic
        if ($before.serviceRunning) { Restart-Service -Name TermService -Force } else { Start-Service -Name TermService }
    }
}
if ($before.firewallBlocks) {
    # Enabling the built-in group adds no new rule and removes none of the customer's rules.
    [void]$fixes.Add('enabled the Remote Desktop firewall rule group')
    if (-not $dry) { Enable-NetFirewallRule -Group '@FirewallAPI.dll,-28752' }
}

$after = Get-State
if ($dry) { $status = 'not-fixed' }
elseif ($after.serviceRunning -and $after.rdpEnabled -and $after.listening -and -not $after.firewallBlocks) { $status = 'fixed' }
else { $status = 'not-fixed' }
Write-Output ("after: " + ($after | ConvertTo-Json -Compress))
Write-Result @{ status = $status; port = $portNumber; dryRun = $dry; fixes = $fixes; before = $before; after = $after }
if ($status -eq 'fixed') { exit 0 } else { exit 1 }
