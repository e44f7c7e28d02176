#!/bin/sh
# Installs the supportstack agent of workspace {{.Tenant}} on this PC (Linux or macOS): downloads the agent built
# for it from {{.Base}}, checks its SHA-256 against the published list, writes its config (this workspace's
# ingest addresses and the enrollment token given with --token) and starts it as a service when it can.
#   curl -fsSL {{.Base}}/install.sh | sudo sh -s -- --token '<enrollment token>'
# Environment: SUPPORTSTACK_PREFIX (where the binary goes, /usr/local/bin), SUPPORTSTACK_CONFIG (the config file,
# the agent's default), SUPPORTSTACK_NO_SERVICE=1 (install only).
set -eu

base='{{.Base}}'
urls='{{.URLs}}'
token=''
while [ $# -gt 0 ]; do
	case "$1" in
	--token) token="${2:-}"; shift 2 || shift ;;
	--token=*) token="${1#--token=}"; shift ;;
	*) echo "install.sh: unknown argument $1 (usage: install.sh --token <enrollment token>)" >&2; exit 2 ;;
	esac
done
[ -n "$token" ] || { echo "install.sh: --token <enrollment token> is required (an admin makes one in the dashboard's Enrollment page)" >&2; exit 2; }

os=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$os" in linux | darwin) ;; *) echo "install.sh: $os is not supported here; on Windows use install.ps1" >&2; exit 1 ;; esac
case "$(uname -m)" in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) echo "install.sh: no agent for $(uname -m)" >&2; exit 1 ;;
esac
name="supportstack-agent-$os-$arch"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL "$base/downloads/$name" -o "$tmp/$name"
curl -fsSL "$base/downloads/SHA256SUMS" -o "$tmp/SHA256SUMS"
want=$(awk -v n="$name" '$2 == n { print $1 }' "$tmp/SHA256SUMS")
if command -v sha256sum >/dev/null 2>&1; then got=$(sha256sum "$tmp/$name" | cut -d' ' -f1); else got=$(shasum -a 256 "$tmp/$name" | cut -d' ' -f1); fi
if [ -z "$want" ] || [ "$want" != "$got" ]; then
	echo "install.sh: the download's SHA-256 ($got) is not the published one (${want:-none}): nothing was installed" >&2
	exit 1
fi

prefix="${SUPPORTSTACK_PREFIX:-/usr/local/bin}"
mkdir -p "$prefix"
cp "$tmp/$name" "$prefix/supportstack-agent.new"
chmod 0755 "$prefix/supportstack-agent.new"
mv -f "$prefix/supportstack-agent.new" "$prefix/supportstack-agent"

config="${SUPPORTSTACK_CONFIG:-}"
if [ -z "$config" ]; then
	# The agent's own default, as it prints it ("Default file: <path> (or ...").
	config=$("$prefix/supportstack-agent" help config 2>/dev/null | awk '/^Default file: / { print $3; exit }')
fi
[ -n "$config" ] || { echo "install.sh: could not learn the agent's config file; set SUPPORTSTACK_CONFIG" >&2; exit 1; }
mkdir -p "$(dirname "$config")"
(
	umask 077
	printf '# Written by install.sh from %s\ningest_urls = %s\nenrollment_token = %s\n' "$base" "$urls" "$token" >"$config.new"
)
mv -f "$config.new" "$config"
echo "Installed $prefix/supportstack-agent; its config is $config."

if [ "${SUPPORTSTACK_NO_SERVICE:-}" = 1 ]; then
	echo "Start it with: $prefix/supportstack-agent run --config $config"
	exit 0
fi
if [ "$os" = linux ] && command -v systemctl >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	cat >/etc/systemd/system/supportstack-agent.service <<UNIT
[Unit]
Description=supportstack agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$prefix/supportstack-agent run --config $config
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
	systemctl daemon-reload
	systemctl enable --now supportstack-agent.service
	echo "The agent runs as the systemd service supportstack-agent."
elif [ "$os" = darwin ] && [ "$(id -u)" = 0 ]; then
	cat >/Library/LaunchDaemons/io.supportstack.agent.plist <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>Label</key><string>io.supportstack.agent</string>
<key>ProgramArguments</key><array><string>$prefix/supportstack-agent</string><string>run</string><string>--config</string><string>$config</string></array>
<key>RunAtLoad</key><true/><key>KeepAlive</key><true/>
</dict></plist>
PLIST
	launchctl bootstrap system /Library/LaunchDaemons/io.supportstack.agent.plist
	echo "The agent runs as the launchd daemon io.supportstack.agent."
else
	echo "Start it with: $prefix/supportstack-agent run --config $config (as root, it is installed as a service)"
fi
