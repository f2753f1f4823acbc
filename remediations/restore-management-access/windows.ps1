# Guest step of restore-management-access on Windows: TermService runs, RDP is enabled
# (fDenyTSConnections = 0), and the firewall lets the port in from every management source and from
# nobody else: for the sources no enabled allow rule covers, one rule restricted to them is added
# (the built-in "Remote Desktop" group, which allows any address, is never enabled). Enabled inbound
# block rules covering the port are reported, never changed; NLA is reported. The last line of
# output is `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$Port = '3389',
    [string]$ManagementSources = '',
    [string]$DryRun = '0'
)
# @prelude

if ($Port -notmatch '^[0-9]{1,5}$' -or [int]$Port -lt 1 -or [int]$Port -gt 65535) { Exit-WithError 'Port must be an integer 1..65535' }
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$portNumber = [int]$Port
$dry = $DryRun -eq '1'
# IPv4 addresses or CIDRs, never wider than /8: the NSG step's sources made concrete.
$octet = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
$cidrPattern = "^$octet\.$octet\.$octet\.$octet(/(3[0-2]|[12]?[0-9]))?$"
$sources = @()
if ($ManagementSources -ne '') {
    if ($ManagementSources.Length -gt 1000) { Exit-WithError 'ManagementSources is too long' }
    foreach ($source in $ManagementSources.Split(',')) {
        if ($source -notmatch $cidrPattern) {
            Exit-WithError 'ManagementSources must be IPv4 addresses or CIDRs (a service tag such as VirtualNetwork has no addresses here)'
        }
        if (-not $source.Contains('/')) { $source = "$source/32" }
        if ([int]$source.Split('/')[1] -lt 8) { Exit-WithError "refusing management source ${source}: wider than a /8 is not a management source" }
        $sources += $source
    }
}
if ($sources.Count -gt 20) { Exit-WithError 'ManagementSources holds more than 20 sources' }
$ruleName = 'restore-management-access'
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

function ConvertTo-Number([string]$Address) {
    $bytes = [System.Net.IPAddress]::Parse($Address).GetAddressBytes()
    return ([uint32]$bytes[0] -shl 24) -bor ([uint32]$bytes[1] -shl 16) -bor ([uint32]$bytes[2] -shl 8) -bor [uint32]$bytes[3]
}
# True when the firewall's RemoteAddress entry ("Any", "10.1.0.0/24", "10.1.0.0/255.255.255.0",
# "10.1.0.5", "10.1.0.1-10.1.0.9") holds every address of the source CIDR. Keywords such as
# LocalSubnet are not evaluated: they cover nothing here.
function Test-CoversSource([string]$Entry, [string]$Source) {
    if ($Entry -eq 'Any' -or $Entry -eq '*') { return $true }
    $first = ConvertTo-Number ($Source.Split('/')[0])
    $bits = [int]$Source.Split('/')[1]
    $size = [uint64][math]::Pow(2, 32 - $bits)
    $first = [uint64]($first - ($first % $size))
    $last = $first + $size - 1
    if ($Entry -match '^([0-9.]+)-([0-9.]+)$') {
        return ((ConvertTo-Number $Matches[1]) -le $first -and $last -le (ConvertTo-Number $Matches[2]))
    }
    if ($Entry -match '^([0-9.]+)/([0-9.]+)$') {
        $prefix = $Matches[2]
        if ($prefix.Contains('.')) { $prefix = [string](([Convert]::ToString((ConvertTo-Number $prefix), 2) -replace '0', '').Length) }
        $entrySize = [uint64][math]::Pow(2, 32 - [int]$prefix)
        $entryFirst = [uint64](ConvertTo-Number $Matches[1])
        $entryFirst = $entryFirst - ($entryFirst % $entrySize)
        return ($entryFirst -le $first -and $last -le ($entryFirst + $entrySize - 1))
    }
    if ($Entry -match '^[0-9.]+$') { return ($bits -eq 32 -and (ConvertTo-Number $Entry) -eq $first) }
    return $false
}
# The management sources no enabled inbound allow rule for TCP to the port lets in (with no sources:
# "Any" when no allow rule for the port exists at all).
function Get-UncoveredSources {
    $ranges = New-Object System.Collections.ArrayList
    $rules = @(Get-NetFirewallRule -PolicyStore ActiveStore -Direction Inbound -Action Allow -Enabled True -ErrorAction SilentlyContinue)
    foreach ($rule in $rules) {
        $ports = @($rule | Get-NetFirewallPortFilter -ErrorAction SilentlyContinue)
        $matching = @($ports | Where-Object { ([string]$_.Protocol -in @('TCP', '6', 'Any')) -and (Test-CoversPort @($_.LocalPort)) })
        if ($matching.Count -eq 0) { continue }
        foreach ($filter in @($rule | Get-NetFirewallAddressFilter -ErrorAction SilentlyContinue)) {
            foreach ($entry in @($filter.RemoteAddress)) { [void]$ranges.Add([string]$entry) }
        }
    }
    if ($sources.Count -eq 0) {
        if ($ranges.Count -eq 0) { return @('Any') }
        return @()
    }
    $uncovered = @()
    foreach ($source in $sources) {
        $covered = $false
        foreach ($entry in $ranges) { if (Test-CoversSource $entry $source) { $covered = $true; break } }
        if (-not $covered) { $uncovered += $source }
    }
    return $uncovered
}

function Get-State {
    $deny = (Get-ItemProperty -LiteralPath $tsKey -Name fDenyTSConnections -ErrorAction SilentlyContinue).fDenyTSConnections
    $nla = (Get-ItemProperty -LiteralPath $rdpTcpKey -Name UserAuthentication -ErrorAction SilentlyContinue).UserAuthentication
    $service = Get-Service -Name TermService -ErrorAction SilentlyContinue
    $listening = @(Get-NetTCPConnection -State Listen -LocalPort $portNumber -ErrorAction SilentlyContinue).Count -gt 0
    $uncovered = @(Get-UncoveredSources)
    $blockRules = @(Get-BlockRules)
    return @{
        serviceRunning   = ($null -ne $service -and $service.Status -eq 'Running')
        rdpEnabled       = ($deny -eq 0)
        listening        = $listening
        uncoveredSources = $uncovered
        blockRules       = $blockRules
        firewallBlocks   = ($uncovered.Count -gt 0 -or $blockRules.Count -gt 0)
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
$firewallNote = ''
if ($before.uncoveredSources.Count -gt 0) {
    if ($sources.Count -eq 0) {
        $firewallNote = "no allow rule lets tcp/$portNumber in and no concrete management source was given: nothing is opened (an unrestricted allow is never added)"
        Write-Output $firewallNote
    } else {
        # One rule restricted to the sources not yet let in; a repeat run widens it by those only.
        $uncovered = @($before.uncoveredSources)
        [void]$fixes.Add("allow rule $ruleName for tcp/$portNumber from $($uncovered -join ',')")
        if (-not $dry) {
            $existing = Get-NetFirewallRule -Name $ruleName -ErrorAction SilentlyContinue
            if ($null -ne $existing) {
                $known = @($existing | Get-NetFirewallAddressFilter | ForEach-Object { $_.RemoteAddress })
                Set-NetFirewallRule -Name $ruleName -RemoteAddress (@($known) + $uncovered) -Enabled True
            } else {
                $displayName = 'Remote Desktop from management sources (restore-management-access)'
                New-NetFirewallRule -Name $ruleName -RemoteAddress $uncovered -DisplayName $displayName -Direction Inbound -Action Allow -Protocol TCP -LocalPort $portNumber -Profile Any | Out-Null
            }
        }
    }
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
Write-Result @{ status = $status; port = $portNumber; dryRun = $dry; fixes = $fixes; firewall = $firewallNote; managementSources = $sources; blockRules = $after.blockRules; before = $before; after = $after }
if ($status -eq 'fixed') { exit 0 } else { exit 1 }
