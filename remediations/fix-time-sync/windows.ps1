# Makes sure the Windows Time service (w32time) runs and resynchronises now. Changes no time source.
# The last line of output is `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$DryRun = '0'
)
# @prelude

if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$dry = $DryRun -eq '1'
if ($null -eq (Get-Service -Name w32time -ErrorAction SilentlyContinue)) { Exit-WithError 'the w32time service is not installed' }

function Get-State {
    $running = (Get-Service -Name w32time).Status -eq 'Running'
    $synced = $false
    if ($running) {
        $text = & "$env:windir\System32\w32tm.exe" /query /status 2>$null | Out-String
        $synced = $LASTEXITCODE -eq 0 -and $text -match 'Leap Indicator: 0'
    }
    return @{ service = 'w32time'; serviceActive = $running; synchronized = $synced }
}

$before = Get-State
Write-Output ("before: " + ($before | ConvertTo-Json -Compress))
if ($before.serviceActive -and $before.synchronized) {
    Write-Result @{ status = 'already-ok'; dryRun = $dry; before = $before; after = $before }
    exit 0
}
if ($dry) {
    Write-Output 'dry run: would set w32time to start automatically, restart it and resync'
    Write-Result @{ status = 'not-fixed'; dryRun = $true; before = $before; after = $before }
    exit 1
}
Set-Service -Name w32time -StartupType Automatic
if ($before.serviceActive) { Restart-Service -Name w32time -Force } else { Start-Service -Name w32time }
& "$env:windir\System32\w32tm.exe" /resync /force | Out-Null
$after = Get-State
$status = if ($after.serviceActive) { 'fixed' } else { 'not-fixed' }
Write-Output ("after: " + ($after | ConvertTo-Json -Compress))
Write-Result @{ status = $status; dryRun = $false; before = $before; after = $after }
if ($status -eq 'fixed') { exit 0 } else { exit 1 }
