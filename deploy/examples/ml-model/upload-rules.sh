#!/bin/sh
# upload-rules.sh RULES_FILE STRATA_URL [TENANT]: uploads every group of a
# Prometheus rule file (rules.yml) to Strata's ruler, namespace ml-model
# (NAMESPACE in the environment says another), as TENANT (X-Scope-OrgID;
# none without multi-tenancy). An upload replaces the group of the same
# name. Used by run-local.sh and by the `rules` service of
# docker-compose.yml (curlimages/curl: POSIX sh, busybox awk).
#
# The rule configuration API takes one rule group per request, the group
# itself (`name:`, `interval:`, `rules:`), not a rule file (`groups:` and
# a list): a file POSTed whole gets 400 "field groups not found". So the
# file is split at its groups, each written as `  - name: ...` at the
# indentation of rules.yml (two spaces, as `promtool check rules` and most
# editors leave it).
#
# Strata may still be starting: curl retries a refused connection and a
# 5xx for up to a minute. A 4xx is final and printed with Strata's reason.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 RULES_FILE STRATA_URL [TENANT]" >&2; exit 2; }
file=$1
url=${2%/}
tenant=${3:-}
namespace=${NAMESPACE:-ml-model}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One file per group: from a `  - name:` line to the next, the list item
# turned into a mapping at the same indentation.
awk -v dir="$tmp" '
	/^  - name:/ { n++; f = sprintf("%s/group-%03d.yml", dir, n); sub(/^  - /, "    ") }
	n { print > f }
' "$file"
[ -e "$tmp/group-001.yml" ] || { echo "$file: no rule group (a line \"  - name: ...\")" >&2; exit 1; }

# post GROUP_FILE: POSTs one group; prints the HTTP status ("000": no answer).
post() {
	if [ -n "$tenant" ]; then
		set -- "$1" -H "X-Scope-OrgID: $tenant"
	fi
	group=$1
	shift
	curl -sS --retry 30 --retry-delay 2 --retry-connrefused \
		-o "$tmp/answer" -w '%{http_code}' \
		-X POST -H 'Content-Type: application/yaml' "$@" \
		--data-binary "@$group" "$url/config/v1/rules/$namespace" || true
}

for g in "$tmp"/group-*.yml; do
	name=$(sed -n 's/^    name: *//p' "$g" | head -n 1)
	code=$(post "$g")
	case $code in
	2??) echo "rule group $name: uploaded to $url/config/v1/rules/$namespace${tenant:+ as tenant $tenant}" ;;
	*)
		echo "rule group $name: upload to $url/config/v1/rules/$namespace failed (HTTP $code): $(cat "$tmp/answer" 2>/dev/null || true)" >&2
		exit 1
		;;
	esac
done
