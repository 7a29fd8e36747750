#!/bin/sh
# upload-alertmanager.sh CONFIG STRATA_URL [TENANT]: uploads an Alertmanager
# configuration (alertmanager.yml, upstream's YAML) to Strata's built-in
# Alertmanager as TENANT (X-Scope-OrgID; none without multi-tenancy). An
# upload replaces the tenant's configuration. Used by run-local.sh and by
# the `alertmanager-config` service of docker-compose.yml (curlimages/curl:
# POSIX sh, busybox sed).
#
# The configuration API (POST /api/v1/alerts, Cortex's and Mimir's) takes
# the configuration as a string: `alertmanager_config: |` followed by the
# file indented, and optionally `template_files:`. Strata checks it before
# storing it: a configuration it refuses gets 400 with the reason, printed
# here, and the tenant keeps the one it had.
#
# Strata may still be starting: curl retries a refused connection and a
# 5xx for up to a minute. A 4xx is final.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 CONFIG STRATA_URL [TENANT]" >&2; exit 2; }
file=$1
url=${2%/}
tenant=${3:-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

{
	echo 'alertmanager_config: |'
	sed -e 's/^/  /' "$file"
} >"$tmp/body.yml"

if [ -n "$tenant" ]; then
	set -- -H "X-Scope-OrgID: $tenant"
else
	set --
fi
code=$(curl -sS --retry 30 --retry-delay 2 --retry-connrefused \
	-o "$tmp/answer" -w '%{http_code}' \
	-X POST -H 'Content-Type: application/yaml' "$@" \
	--data-binary "@$tmp/body.yml" "$url/api/v1/alerts" || true)
case $code in
2??) echo "alertmanager configuration $file: uploaded to $url/api/v1/alerts${tenant:+ as tenant $tenant}" ;;
*)
	echo "alertmanager configuration $file: upload to $url/api/v1/alerts failed (HTTP $code): $(cat "$tmp/answer" 2>/dev/null || true)" >&2
	exit 1
	;;
esac
