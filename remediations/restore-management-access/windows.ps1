# Guest step of restore-management-access on Windows: TermService runs, RDP is enabled
# (fDenyTSConnections = 0), the "Remote Desktop" firewall rule group is enabled, and NLA is reported.
# Enabled inbound block rules covering the port are reported, never changed. The last line of output
# is `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$Port = '3389',
    [string]$DryRun = '0'
)
# @prelude

if ($Port -notmatch '^[0-9]{1,5}$' -or [int]$Port -lt 1 -or [int]$Port -gt 65535) { Exit-WithError 'Port must be an integer 1..65535' }
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$portNumber = [int]$Port
$dry = $DryRun -eq '1'
$tsKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server'
$rdpTcpKey = "$tsKey\WinStations\RDP-Tcp"

# True when a port filter's LocalPort list ("Any", "3389", "3000-3500", keywords such as "RPC")
# includes the port.
function Test-CoversPort([string[]]$LocalPorts) {
    foreach ($entry in $LocalPorts) {
        if ($entry -eq 'Any') { return $true }
        if ($entry -match '^[0-9]{1,5}$' -and [int]$entry -eq $portNumber) { return $true }
        if ($entry -match '^([0-9]{1,5})-([0-9]{1,5})$' -and
            [int]$Matches[1] -le $portNumber -and $portNumber -le [int]$Matches[2]) { return $true }
    }
    return $false
}

# Enabled inbound block rules in force (local and Group Policy ones) that match TCP to the port. A
# block rule wins over every allow rule, so any of them keeps RDP closed. A rule limited to some
# remote addresses or to one profile counts too: it may be the operator's address or profile.
function Get-BlockRules {
    $rules = @(Get-NetFirewallRule -PolicyStore ActiveStore -Direction Inbound -Action Block -Enabled True -ErrorAction SilentlyContinue)
    foreach ($rule in $rules) {
        foreach ($filter in @($rule | Get-NetFirewallPortFilter -ErrorAction SilentlyContinue)) {
            $protocol = [string]$filter.Protocol
            if ($protocol -ne 'TCP' -and $protocol -ne '6' -and $protocol -ne 'Any') { continue }
            if (Test-CoversPort @($filter.LocalPort)) {
                Write-Output "$($rule.DisplayName) ($($rule.Name))"
                break
            }
        }
    }
}

function Get-State {
    $deny = (Get-ItemProperty -LiteralPath $tsKey -Name fDenyTSConnections -ErrorAction SilentlyContinue).fDenyTSConnections
    $nla = (Get-ItemProperty -LiteralPath $rdpTcpKey -Name UserAuthentication -ErrorAction SilentlyContinue).UserAuthentication
    $service = Get-Service -Name TermService -ErrorAction SilentlyContinue
    $listening = @(Get-NetTCPConnection -State Listen -LocalPort $portNumber -ErrorAction SilentlyContinue).Count -gt 0
    $rules = @(Get-NetFirewallRule -Direction Inbound -ErrorAction SilentlyContinue |
            Where-Object { $_.Group -eq '@FirewallAPI.dll,-28752' -or $_.DisplayGroup -eq 'Remote Desktop' })
    $enabledAllow = @($rules | Where-Object { $_.Enabled -eq 'True' -and $_.Action -eq 'Allow' }).Count
    $blockRules = @(Get-BlockRules)
    return @{
        serviceRunning   = ($null -ne $service -and $service.Status -eq 'Running')
        rdpEnabled       = ($deny -eq 0)
        listening        = $listening
        allowGroupOff    = ($enabledAllow -eq 0)
        blockRules       = $blockRules
        firewallBlocks   = ($enabledAllow -eq 0 -or $blockRules.Count -gt 0)
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
if ($before.allowGroupOff) {
    # Enabling the built-in group adds no new rule and removes none of the customer's rules.
    [void]$fixes.Add('enabled the Remote Desktop firewall rule group')
    if (-not $dry) { Enable-NetFirewallRule -Group '@FirewallAPI.dll,-28752' }
}

$after = Get-State
if ($after.blockRules.Count -gt 0) {
    # Someone put these rules there: an operator decides whether they go.
    Write-Output ("still blocked by firewall rules, left in place: " + ($after.blockRules -join '; '))
}
if ($dry) { $status = 'not-fixed' }
elseif ($after.serviceRunning -and $after.rdpEnabled -and $after.listening -and -not $after.firewallBlocks) { $status = 'fixed' }
else { $status = 'not-fixed' }
Write-Output ("after: " + ($after | ConvertTo-Json -Compress))
Write-Result @{ status = $status; port = $portNumber; dryRun = $dry; fixes = $fixes; blockRules = $after.blockRules; before = $before; after = $after }
if ($status -eq 'fixed') { exit 0 } else { exit 1 }
