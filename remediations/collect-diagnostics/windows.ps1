# Bundles system state and recent event logs into a zip and uploads it to the app's diagnostics
# container: UploadUrl is the blob URL (no SAS), UploadToken the SAS, base64 (a protected parameter,
# so no cmd.exe metacharacter travels). Changes nothing on the VM: the archive is written to a private
# temporary folder removed at the end. The last line of output is `REMEDIATION_RESULT {json}`; the SAS
# is never printed and never on a command line (the upload runs in this process).
[CmdletBinding()]
param(
    [string]$UploadUrl = '',
    [string]$UploadToken = '',
    [string]$MaxLogLines = '2000',
    [string]$DryRun = '0'
)
# @prelude

$urlPattern = '^https://[a-z0-9]{3,24}\.blob\.core\.windows\.net/[a-z0-9][a-z0-9-]{1,61}[a-z0-9]/[A-Za-z0-9._/-]{1,1000}$'
if ($UploadUrl -cnotmatch $urlPattern -or $UploadUrl.Contains('..')) { Exit-WithError 'UploadUrl must be an https blob URL of the diagnostics container' }
if ($UploadToken -cnotmatch '^[A-Za-z0-9+/]{1,4000}={0,2}$') { Exit-WithError 'UploadToken must be a base64 SAS' }
try { $sas = [Text.Encoding]::ASCII.GetString([Convert]::FromBase64String($UploadToken)) } catch { Exit-WithError 'UploadToken must be a base64 SAS' }
if ($sas -cnotmatch '^[A-Za-z0-9%=&:._/+-]+$') { Exit-WithError 'UploadToken must be a base64 SAS' }
if ($MaxLogLines -notmatch '^[0-9]{1,6}$' -or [int]$MaxLogLines -lt 100 -or [int]$MaxLogLines -gt 100000) {
    Exit-WithError 'MaxLogLines must be an integer 100..100000'
}
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
$lines = [int]$MaxLogLines
if ($DryRun -eq '1') {
    Write-Output 'dry run: would collect system info, services, network, firewall and the System/Application event logs'
    Write-Result @{ status = 'not-fixed'; dryRun = $true; before = @{}; after = @{ uploaded = $false } }
    exit 1
}

$work = Join-Path ([IO.Path]::GetTempPath()) ([guid]::NewGuid().ToString('N'))
$diag = New-Item -ItemType Directory -Path (Join-Path $work 'diag')
$items = 0
$uploaded = $false
$probes = [ordered]@{
    'computer'     = { Get-ComputerInfo }
    'disks'        = { Get-CimInstance Win32_LogicalDisk }
    'services'     = { Get-Service | Sort-Object -Property Status }
    'processes'    = { Get-Process | Sort-Object CPU -Descending | Select-Object -First 100 }
    'listening'    = { Get-NetTCPConnection -State Listen }
    'addresses'    = { Get-NetIPAddress }
    'firewall'     = { Get-NetFirewallProfile; Get-NetFirewallRule -Enabled True -Direction Inbound }
    'system-log'   = { Get-WinEvent -LogName System -MaxEvents $lines }
    'app-log'      = { Get-WinEvent -LogName Application -MaxEvents $lines }
}
try {
    foreach ($name in $probes.Keys) {
        try {
            & $probes[$name] | Format-List | Out-File -FilePath (Join-Path $diag.FullName "$name.txt") -Encoding utf8 -Width 300
            $items++
        } catch { Write-Output "skipped ${name}: $($_.Exception.Message)" }
    }
    $archive = Join-Path $work 'diagnostics.zip'
    Compress-Archive -Path (Join-Path $diag.FullName '*') -DestinationPath $archive
    $size = (Get-Item -LiteralPath $archive).Length
    Write-Output "collected $items items into a $size byte archive"
    $http = 0
    try {
        $response = Invoke-WebRequest -Uri "${UploadUrl}?$sas" -Method Put -InFile $archive -UseBasicParsing `
            -Headers @{ 'x-ms-blob-type' = 'BlockBlob' } -ContentType 'application/zip' -TimeoutSec 300
        $http = [int]$response.StatusCode
    } catch { Write-Output 'upload failed' }
    Write-Output "upload: HTTP $http"
    $uploaded = $http -eq 201
    $status = if ($uploaded) { 'fixed' } else { 'not-fixed' }
    Write-Result @{ status = $status; dryRun = $false; blobUrl = $UploadUrl; before = @{}; after = @{ uploaded = $uploaded; httpStatus = $http; archiveBytes = $size; items = $items } }
} finally {
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}
if ($uploaded) { exit 0 } else { exit 1 }
