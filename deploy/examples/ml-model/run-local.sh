#!/usr/bin/env bash
# The ML-model quickstart without Docker (`make example-ml`): Strata
# (-target=all) whose ruler evaluates rules.yml (uploaded by
# upload-rules.sh) with overrides.yml and whose built-in Alertmanager runs
# alertmanager.yml (uploaded by upload-alertmanager.sh; overrides.yml points
# the ruler at it), the example service, and Debian's prometheus with this
# folder's prometheus.yml; all on 127.0.0.1. The configs are copied to a temporary
# directory with the Compose host names rewritten to loopback ports. Ctrl-C
# stops everything this script started.
#
# Strata runs without multi-tenancy here (every request is tenant
# "anonymous"): Debian's Prometheus 2.42 does not send remote_write's
# `headers` (prometheus/prometheus#13030), so the X-Scope-OrgID of
# prometheus.yml never arrives. overrides.yml is rewritten for that tenant.
# A separate Alertmanager instead: README.md, "A separate Alertmanager".
#
# Environment: STRATA_BIN (default bin/strata), STRATA_PORT (9009),
# STRATA_GRPC_PORT (9095), STRATA_GOSSIP_PORT (7946), MODEL_PORT (8080),
# PROM_PORT (9090), LOAD_RATE (20), SCRAPE_INTERVAL (5s),
# RULE_INTERVAL (15s: the rule group's interval), RULES (the rule file to
# upload, default rules.yml), AM_CONFIG (the Alertmanager configuration to
# upload, default alertmanager.yml); TMPDIR says where the temporary directory goes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$root/bin/strata}
STRATA_PORT=${STRATA_PORT:-9009}
STRATA_GRPC_PORT=${STRATA_GRPC_PORT:-9095}
STRATA_GOSSIP_PORT=${STRATA_GOSSIP_PORT:-7946}
MODEL_PORT=${MODEL_PORT:-8080}
PROM_PORT=${PROM_PORT:-9090}
LOAD_RATE=${LOAD_RATE:-20}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-5s}
RULE_INTERVAL=${RULE_INTERVAL:-15s}
RULES=${RULES:-$here/rules.yml}
AM_CONFIG=${AM_CONFIG:-$here/alertmanager.yml}

strata_url=http://127.0.0.1:$STRATA_PORT
model_url=http://127.0.0.1:$MODEL_PORT
prom_url=http://127.0.0.1:$PROM_PORT

[ -x "$STRATA_BIN" ] || { echo "no strata binary at $STRATA_BIN: run make build (or make example-ml)" >&2; exit 1; }
case $("$STRATA_BIN" -help 2>&1 || true) in # -help exits 2
*-alertmanager.web.external-url*) ;;
*) echo "$STRATA_BIN has no Alertmanager (no -alertmanager.web.external-url): rebuild it, make build" >&2; exit 1 ;;
esac
command -v prometheus >/dev/null || { echo "prometheus is not installed: apt-get install prometheus (make test-deps installs it)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-example-ml.XXXXXX")
pids=()
names=()

stop_all() {
	trap - EXIT INT TERM
	local i pid n
	# Newest first: Prometheus flushes its last samples to a Strata that
	# still runs. SIGTERM, then SIGKILL after 15s.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[$i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for ((n = 0; n < 150; n++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	echo "stopped ${names[*]:-nothing}; logs and data are in $work"
}
trap stop_all EXIT
trap 'exit 130' INT # Ctrl-C
trap 'exit 0' TERM  # asked to stop: a clean stop

# Children get SIGTERM when this script dies, however it dies (util-linux's
# setpriv; without it a `kill -9` of the script leaves them running).
reaper=()
if command -v setpriv >/dev/null && setpriv --pdeathsig TERM true 2>/dev/null; then
	reaper=(setpriv --pdeathsig TERM)
fi

# start NAME CMD...: runs CMD in the background, its output in $work/NAME.log.
start() {
	local name=$1
	shift
	"${reaper[@]}" "$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
}

# wait_ready NAME URL: polls URL until it answers 2xx, for at most 60s, and
# fails early when the last process started has exited.
wait_ready() {
	local name=$1 url=$2 pid=${pids[-1]} i
	for i in $(seq 1 300); do
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name exited before $url answered; the end of $work/$name.log:" >&2
			tail -n 20 "$work/$name.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "$name did not answer $url within 60s; the end of $work/$name.log:" >&2
	tail -n 20 "$work/$name.log" >&2
	exit 1
}

strata_args=(
	-target=all
	-data.dir="$work/strata"
	-server.http-listen-address="127.0.0.1:$STRATA_PORT"
	-server.grpc-listen-address="127.0.0.1:$STRATA_GRPC_PORT"
	-memberlist.bind-address="127.0.0.1:$STRATA_GOSSIP_PORT"
	-runtime-config.file="$work/overrides.yml"
)
echo "building the example service"
(cd "$root" && go build -o "$work/ml-model" ./deploy/examples/ml-model)

# The Compose host names of the configs, rewritten to loopback ports, and
# the intervals.
rewrite() {
	sed -e "s#ml-model:8080#127.0.0.1:$MODEL_PORT#g" \
		-e "s#http://strata:9009#$strata_url#g" \
		-e "s#scrape_interval: 5s#scrape_interval: $SCRAPE_INTERVAL#" \
		-e "s#scrape_timeout: 5s#scrape_timeout: $SCRAPE_INTERVAL#" \
		"$1"
}
rewrite "$here/prometheus.yml" >"$work/prometheus.yml"
sed -e "s#interval: 15s#interval: $RULE_INTERVAL#" "$RULES" >"$work/rules.yml"
rewrite "$AM_CONFIG" >"$work/alertmanager.yml"
rewrite "$here/overrides.yml" | sed -e "s#ml-team#anonymous#g" >"$work/overrides.yml"

start strata "$STRATA_BIN" "${strata_args[@]}"
wait_ready strata "$strata_url/ready"
# Before Prometheus writes: the recording rules have data from the start.
if ! "$here/upload-rules.sh" "$work/rules.yml" "$strata_url" >"$work/upload-rules.log" 2>&1; then
	cat "$work/upload-rules.log" >&2
	exit 1
fi
# The tenant's Alertmanager configuration: the ruler's alerts go to
# Strata's own Alertmanager when no Alertmanager URL is configured.
if ! "$here/upload-alertmanager.sh" "$work/alertmanager.yml" "$strata_url" >"$work/upload-alertmanager.log" 2>&1; then
	cat "$work/upload-alertmanager.log" >&2
	exit 1
fi

start ml-model "$work/ml-model" -listen-address="127.0.0.1:$MODEL_PORT" -load.rate="$LOAD_RATE"
wait_ready ml-model "$model_url/healthz"

start prometheus prometheus \
	--config.file="$work/prometheus.yml" \
	--storage.tsdb.path="$work/prometheus" \
	--web.listen-address="127.0.0.1:$PROM_PORT" \
	--storage.remote.flush-deadline=10s
wait_ready prometheus "$prom_url/-/ready"

cat <<EOF

The ML-model quickstart is running; Ctrl-C stops it. Logs and data: $work
  Strata:        $strata_url  (one tenant, "anonymous": Debian's Prometheus sends no X-Scope-OrgID)
                 curl '$strata_url/api/v1/query?query=model_accuracy'
  the service:   $model_url  (curl '$model_url/predict?x1=1&x2=0.5'; $model_url/metrics)
  drift:         curl -X POST '$model_url/drift?level=0.8'   (accuracy falls, latency rises; level=0 undoes it)
  Prometheus:    $prom_url  (scrapes the service every $SCRAPE_INTERVAL, remote-writes to Strata)
  Alertmanager:  Strata's own: $strata_url/alertmanager/ (web UI), running alertmanager.yml
                 (webhook receiver: the service's log; curl $model_url/webhook)
                 after editing its copy: $here/upload-alertmanager.sh $work/alertmanager.yml $strata_url
  rules.yml:     evaluated by Strata's ruler (namespace ml-model): curl $strata_url/api/v1/rules
                 after editing it: $here/upload-rules.sh $here/rules.yml $strata_url
  Grafana:       a Prometheus data source with URL $strata_url (no path, no header),
                 then import $here/grafana/dashboards/ml-model.json
EOF

# Until Ctrl-C, or until one of the processes exits on its own.
set +e
wait -n "${pids[@]}"
echo "a process exited on its own; see the logs in $work" >&2
exit 1
