# Installs the supportstack agent of workspace {{.Tenant}} on this Windows PC: downloads the agent built for it
# from {{.Base}}, checks its SHA-256 against the published list, writes its config (this workspace's ingest
# addresses and the enrollment token given with -Token) and runs it at startup as a scheduled task (SYSTEM).
#   powershell -ExecutionPolicy Bypass -Command "& ([scriptblock]::Create((irm {{.Base}}/install.ps1))) -Token '<token>'"
param([Parameter(Mandatory = $true)][string]$Token, [string]$Prefix = "$env:ProgramFiles\supportstack")
$ErrorActionPreference = 'Stop'
$base = '{{.Base}}'
$urls = '{{.URLs}}'
$arch = if ($env:PROCESSOR_ARCHITECTURE -eq 'ARM64') { 'arm64' } else { 'amd64' }
$name = "supportstack-agent-windows-$arch.exe"
$tmp = Join-Path ([IO.Path]::GetTempPath()) ([Guid]::NewGuid())
New-Item -ItemType Directory -Path $tmp | Out-Null
try {
    Invoke-WebRequest -UseBasicParsing -Uri "$base/downloads/$name" -OutFile "$tmp\$name"
    $sums = (Invoke-WebRequest -UseBasicParsing -Uri "$base/downloads/SHA256SUMS").Content
    $want = ($sums -split "`n" | Where-Object { ($_ -split '\s+')[1] -eq $name } | ForEach-Object { ($_ -split '\s+')[0] }) | Select-Object -First 1
    $got = (Get-FileHash -Algorithm SHA256 "$tmp\$name").Hash.ToLower()
    if (-not $want -or $want -ne $got) { throw "the download's SHA-256 ($got) is not the published one ($want): nothing was installed" }
    New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
    Copy-Item -Force "$tmp\$name" "$Prefix\supportstack-agent.exe"
} finally { Remove-Item -Recurse -Force $tmp }
$configDir = "$env:ProgramData\supportstack-agent"
New-Item -ItemType Directory -Force -Path $configDir | Out-Null
$config = "$configDir\agent.conf"
Set-Content -Path $config -Value "# Written by install.ps1 from $base`ningest_urls = $urls`nenrollment_token = $Token`n" -NoNewline
icacls $config /inheritance:r /grant:r "SYSTEM:F" "Administrators:F" | Out-Null
$action = New-ScheduledTaskAction -Execute "$Prefix\supportstack-agent.exe" -Argument "run --config `"$config`""
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -ExecutionTimeLimit 0
Register-ScheduledTask -Force -TaskName 'supportstack agent' -Action $action -Trigger $trigger -Settings $settings -User 'SYSTEM' -RunLevel Highest | Out-Null
Start-ScheduledTask -TaskName 'supportstack agent'
Write-Output "Installed $Prefix\supportstack-agent.exe; it runs at startup (scheduled task 'supportstack agent'); its config is $config."
