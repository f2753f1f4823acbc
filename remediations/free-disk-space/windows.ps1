# Frees space on one drive from what is safe to delete, cheapest loss first, and stops as soon as the
# target free percentage is reached. The last line of output is `REMEDIATION_RESULT {json}`.
[CmdletBinding()]
param(
    [string]$MountPoint = 'C:',
    [string]$TargetFreePercent = '20',
    [string]$OlderThanDays = '7',
    [string]$PruneContainerImages = 'false',
    [string]$DryRun = '0'
)
# @prelude

# Validated again here, whatever the caller checked. Digits only before any conversion.
if ($MountPoint -notmatch '^[A-Za-z]:$') { Exit-WithError 'MountPoint must be a drive letter such as C:' }
if ($TargetFreePercent -notmatch '^[0-9]{1,3}$') { Exit-WithError 'TargetFreePercent must be an integer 5..90' }
if ($OlderThanDays -notmatch '^[0-9]{1,4}$') { Exit-WithError 'OlderThanDays must be an integer 1..3650' }
if ($DryRun -notmatch '^(0|1)$') { Exit-WithError 'DryRun must be 0 or 1' }
if ($PruneContainerImages -notmatch '^(0|1|true|false)$') { Exit-WithError 'PruneContainerImages must be true or false' }
$target = [int]$TargetFreePercent
$days = [int]$OlderThanDays
if ($target -lt 5 -or $target -gt 90) { Exit-WithError 'TargetFreePercent must be an integer 5..90' }
if ($days -lt 1 -or $days -gt 3650) { Exit-WithError 'OlderThanDays must be an integer 1..3650' }
# Floors (remediation.yaml): the newest days of logs stay, and a healthy volume is never emptied.
if ($days -lt 3) { Exit-WithError 'OlderThanDays must be at least 3: the last days of logs stay on the VM' }
if ($target -gt 50) { Exit-WithError 'TargetFreePercent must be at most 50' }
$dry = $DryRun -eq '1'
$drive = $MountPoint.ToUpperInvariant()
$cutoff = (Get-Date).AddDays(-$days)

function Get-Snapshot {
    $disk = Get-CimInstance -ClassName Win32_LogicalDisk -Filter "DeviceID='$drive'"
    if ($null -eq $disk -or -not $disk.Size) { Exit-WithError 'MountPoint is not a local drive on this VM' }
    $free = [int64]$disk.FreeSpace
    $size = [int64]$disk.Size
    return @{ freePercent = [math]::Round($free * 100.0 / $size, 2); freeBytes = $free; sizeBytes = $size }
}
function Test-Reached { $s = Get-Snapshot; return ($s.freeBytes * 100.0 -ge $target * $s.sizeBytes) }

# Junctions, directory symlinks and mount points are reparse points. Windows PowerShell 5.1's
# Get-ChildItem -Recurse follows them, so a link planted in a user-writable temp folder would let this
# script, running as SYSTEM, delete files anywhere. Folders are therefore walked by hand, a reparse
# point is never entered nor deleted, and every path is checked again just before its delete.
$reparsePoint = [int][IO.FileAttributes]::ReparsePoint
function Test-ReparsePoint($Item) { return (([int]$Item.Attributes -band $reparsePoint) -ne 0) }

# True when no part of the path below the drive root is a reparse point: neither the item itself
# nor any folder above it (a user can swap his own profile folders for links too).
function Test-NoLinkOnPath([string]$Path) {
    try {
        $current = [IO.Path]::GetFullPath($Path)
        while ($true) {
            $parent = [IO.Path]::GetDirectoryName($current)
            if ([string]::IsNullOrEmpty($parent)) { return $true }
            if (([int][IO.File]::GetAttributes($current) -band $reparsePoint) -ne 0) { return $false }
            $current = $parent
        }
    }
    catch { return $false }
}

# True when the path, made absolute and normalised, lies below the root folder.
function Test-Inside([string]$Path, [string]$Root) {
    try {
        $full = [IO.Path]::GetFullPath($Path)
        $prefix = [IO.Path]::GetFullPath($Root).TrimEnd('\') + '\'
        return $full.StartsWith($prefix, [StringComparison]::OrdinalIgnoreCase)
    }
    catch { return $false }
}

# Files under the root matching the filter and older than the cutoff, one folder level at a time.
function Get-OldFiles([string]$Root, [string]$Filter) {
    $pending = New-Object System.Collections.Stack
    $pending.Push($Root)
    while ($pending.Count -gt 0) {
        $folder = [string]$pending.Pop()
        foreach ($entry in @(Get-ChildItem -LiteralPath $folder -Force -ErrorAction SilentlyContinue)) {
            if (Test-ReparsePoint $entry) { continue }
            if ($entry.PSIsContainer) { $pending.Push($entry.FullName); continue }
            if ($entry.Name -like $Filter -and $entry.LastWriteTime -lt $cutoff) { Write-Output $entry }
        }
    }
}

$actions = New-Object System.Collections.ArrayList
function Remove-OldFiles([string]$Step, [string[]]$Folders, [string]$Filter) {
    $bytes = [int64]0
    $skipped = 0
    foreach ($folder in $Folders) {
        if (-not (Test-Path -LiteralPath $folder -PathType Container)) { continue }
        if (-not $folder.StartsWith($drive, [StringComparison]::OrdinalIgnoreCase)) { continue }
        if (-not (Test-NoLinkOnPath $folder)) {
            Write-Output "skipped ${folder}: it or a folder above it is a link"
            continue
        }
        foreach ($file in @(Get-OldFiles $folder $Filter)) {
            # The tree may have changed since it was listed: a folder swapped for a link since then
            # would redirect the delete.
            if (-not (Test-Inside $file.FullName $folder) -or -not (Test-NoLinkOnPath $file.FullName)) {
                $skipped++
                continue
            }
            if ($dry) { $bytes += $file.Length; continue }
            try {
                Remove-Item -LiteralPath $file.FullName -Force -ErrorAction Stop
                $bytes += $file.Length
            }
            catch { $skipped++ }
        }
    }
    [void]$actions.Add(@{ step = $Step; bytes = $bytes; skipped = $skipped; dryRun = $dry })
    Write-Output "step ${Step}: $bytes bytes $(if ($dry) { 'would be freed' } else { 'freed' }), $skipped skipped"
}

$before = Get-Snapshot
Write-Output "drive ${drive}: $($before.freePercent)% free, target $target%"
if (Test-Reached) {
    Write-Output 'already at or above the target: nothing to do'
    Write-Result @{ status = 'already-ok'; mountPoint = $drive; dryRun = $dry; before = $before; after = $before; actions = @() }
    exit 0
}

$systemDrive = $env:SystemDrive.ToUpperInvariant()
$windir = $env:windir
# Profiles that are links ("All Users", "Default User") are not profiles of their own.
$userTemps = @(Get-ChildItem -LiteralPath "$systemDrive\Users" -Directory -Force -ErrorAction SilentlyContinue |
        Where-Object { -not (Test-ReparsePoint $_) } |
        ForEach-Object { Join-Path $_.FullName 'AppData\Local\Temp' })

if ($dry -or -not (Test-Reached)) { Remove-OldFiles 'temp-files' (@("$windir\Temp") + $userTemps) '*' }

if (($dry -or -not (Test-Reached)) -and $drive -eq $systemDrive) {
    # The update agent holds its download cache open: stop it for the cleanup, then start it again.
    $wu = Get-Service -Name wuauserv -ErrorAction SilentlyContinue
    if ($null -ne $wu -and -not $dry) { Stop-Service -Name wuauserv -Force -ErrorAction SilentlyContinue }
    try { Remove-OldFiles 'windows-update-cache' @("$windir\SoftwareDistribution\Download") '*' }
    finally { if ($null -ne $wu -and $wu.Status -eq 'Running' -and -not $dry) { Start-Service -Name wuauserv -ErrorAction SilentlyContinue } }
}

if (($dry -or -not (Test-Reached)) -and (Test-Path -LiteralPath "$drive\inetpub\logs\LogFiles")) {
    Remove-OldFiles 'iis-logs' @("$drive\inetpub\logs\LogFiles") '*.log'
}

if (($dry -or -not (Test-Reached))) {
    if ($dry) { [void]$actions.Add(@{ step = 'recycle-bin'; dryRun = $true }) }
    else {
        Clear-RecycleBin -DriveLetter $drive.Substring(0, 1) -Force -ErrorAction SilentlyContinue
        [void]$actions.Add(@{ step = 'recycle-bin'; dryRun = $false })
        Write-Output 'step recycle-bin: emptied'
    }
}

if (($dry -or -not (Test-Reached)) -and $drive -eq $systemDrive) {
    if ($dry) { [void]$actions.Add(@{ step = 'component-store'; dryRun = $true }) }
    else {
        Write-Output 'step component-store: DISM /StartComponentCleanup'
        & "$windir\System32\dism.exe" /Online /Cleanup-Image /StartComponentCleanup /Quiet /NoRestart | Out-Null
        [void]$actions.Add(@{ step = 'component-store'; exitCode = $LASTEXITCODE; dryRun = $false })
    }
}

$after = Get-Snapshot
if ($dry) { $status = 'not-fixed' }
elseif (Test-Reached) { $status = 'fixed' }
else { $status = 'not-fixed' }
Write-Output "after: $($after.freePercent)% free"
Write-Result @{ status = $status; mountPoint = $drive; targetFreePercent = $target; dryRun = $dry; before = $before; after = $after; actions = $actions }
if ($status -eq 'fixed') { exit 0 } else { exit 1 }
