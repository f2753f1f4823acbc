# --- prelude (remediations/_prelude/windows.ps1, joined here by the catalog loader) ------------------
# Strict mode, the one result line, and the parameter check every script shares.
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

# Run Command has been seen passing parameters through cmd.exe: a value holding one of cmd's
# metacharacters or a line break is refused before any script logic reads it.
foreach ($entry in $PSBoundParameters.GetEnumerator()) {
    if ([string]$entry.Value -match '[&%^|<>"\r\n]') {
        Exit-WithError "$($entry.Key) holds a character Run Command parameters must not carry (& % ^ | < > "" or a line break)"
    }
}
if ($PSBoundParameters.ContainsKey('DryRun') -and $PSBoundParameters['DryRun'] -notmatch '^(0|1)$') {
    Exit-WithError 'DryRun must be 0 or 1'
}
# --- end of prelude -------------------------------------------------------------------------------------
