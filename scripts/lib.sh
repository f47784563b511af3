# shellcheck shell=bash
#
# Helpers shared by scripts/test, scripts/run and .ci/run. Source this file;
# it is not meant to be executed. It installs missing tools from Debian's
# packages, so each entry script can be the one command a fresh machine needs,
# and it can start a private Redis that is stopped again when the sourcing
# script exits.
#
# Every ensure_* function is idempotent and prints nothing when the thing it
# ensures is already present, so the entry scripts stay quiet on a set-up
# machine.

JF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Logs, pidfiles and the working directories of private Redis servers live
# here, inside the repository so they are easy to find after a failed run.
JF_RUN_DIR="${JF_RUN_DIR:-$JF_ROOT/.run}"

jf_log() { printf '==> %s\n' "$*" >&2; }
jf_warn() { printf 'warning: %s\n' "$*" >&2; }
jf_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}
jf_have() { command -v "$1" >/dev/null 2>&1; }

# Prefix for long-running background children: `"${JF_DETACH[@]}" cmd &`.
# setsid puts the child in its own session, so a Ctrl-C in the terminal
# reaches only the script, which then stops its children in order (workers
# first, Redis last) instead of everything dying at once; redis-server in
# particular would otherwise shut down on the terminal's SIGINT right away.
# A `&` child of a script is not a process-group leader, so setsid execs
# without forking and `$!` stays the pid of the command itself.
JF_DETACH=()
if jf_have setsid; then JF_DETACH=(setsid); fi

# ---------------------------------------------------------------------------
# Installing packages
# ---------------------------------------------------------------------------

# Runs a command as root: directly when we are root (CI and containers),
# through sudo otherwise. Without a terminal sudo must not prompt, or an
# unattended run would hang, hence -n there.
_jf_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif jf_have sudo; then
		if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
	else
		jf_die "need root to run '$*', and sudo is not installed"
	fi
}

_JF_APT_UPDATED=
# Installs Debian packages. The package lists are refreshed once per run,
# because on a fresh machine they are empty and every install would fail.
_jf_apt_install() {
	jf_have apt-get || jf_die "apt-get is not available; install these packages yourself: $*"
	jf_log "installing Debian packages: $*"
	if [ -z "$_JF_APT_UPDATED" ]; then
		_jf_as_root apt-get update -qq || jf_warn "apt-get update failed; trying the install anyway"
		_JF_APT_UPDATED=1
	fi
	# env is needed because sudo drops DEBIAN_FRONTEND from the environment.
	_jf_as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@"
}

# A C compiler and pkg-config, which crates with build scripts may need.
ensure_build_deps() {
	jf_have cc && return 0
	_jf_apt_install build-essential pkg-config
}

# The version in Cargo.toml's rust-version, e.g. "1.85", or nothing.
_jf_required_rust() {
	sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$JF_ROOT/Cargo.toml" 2>/dev/null | head -n 1
}

ensure_rust() {
	# rustup installs into ~/.cargo/bin, which non-login shells (CI, cron,
	# editors) often do not have on PATH even though Rust is installed.
	local cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
	if ! jf_have cargo && [ -x "$cargo_bin/cargo" ]; then
		export PATH="$cargo_bin:$PATH"
	fi
	if ! jf_have cargo; then
		jf_warn "cargo not found; trying Debian's cargo package. It is probably older" \
			"than this crate needs (edition 2024); if so, install Rust via rustup (https://rustup.rs)."
		_jf_apt_install cargo || true
	fi
	jf_have cargo || jf_die "cargo not found; install Rust via rustup (https://rustup.rs) and re-run"
	cargo --version >/dev/null 2>&1 ||
		jf_die "'cargo --version' fails (no default toolchain?); install Rust via rustup (https://rustup.rs)"

	# An old compiler fails on edition 2024 with a confusing message about
	# unstable features, so say plainly what is wrong instead.
	local need have
	need="$(_jf_required_rust)"
	have="$(rustc --version 2>/dev/null | awk '{print $2}')"
	if [ -n "$need" ] && [ -n "$have" ] &&
		[ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -n 1)" != "$need" ]; then
		jf_die "rustc $have is older than $need (rust-version in Cargo.toml); install a current toolchain via rustup (https://rustup.rs)"
	fi
}

# The integration tests start their own redis-server processes, so they need
# the binary but no running server. REDIS_SERVER is what they look for first.
ensure_redis_server_binary() {
	if [ -n "${REDIS_SERVER:-}" ] && [ -x "$REDIS_SERVER" ]; then
		return 0
	fi
	if ! jf_have redis-server; then
		# Debian's redis-server package also brings redis-tools (redis-cli).
		_jf_apt_install redis-server
	fi
	jf_have redis-server || jf_die "redis-server is still not on PATH after installing it"
	REDIS_SERVER="$(command -v redis-server)"
	export REDIS_SERVER
}

# The TLS connection test makes a self-signed certificate with the openssl command.
ensure_openssl() {
	jf_have openssl || _jf_apt_install openssl
	jf_have openssl || jf_die "openssl is still not on PATH after installing it"
}

# The local EVM node (anvil) and the Solidity compiler come from the npm registry, pinned in
# package.json and package-lock.json; the chain tests and the demo run anvil from node_modules.
ensure_node() {
	if ! jf_have node || ! jf_have npm; then
		_jf_apt_install nodejs npm
	fi
	jf_have npm || jf_die "npm is still not on PATH after installing it"
}

# Prints the anvil binary of node_modules (the npm package ships one per platform), or fails.
_jf_anvil_path() {
	local f
	for f in "$JF_ROOT"/node_modules/@foundry-rs/anvil-*/bin/anvil; do
		if [ -x "$f" ]; then
			printf '%s\n' "$f"
			return 0
		fi
	done
	return 1
}

# Sets ANVIL_BIN (which the tests read) to the anvil of node_modules, running `npm ci` first
# when it is missing.
# The board's browser tests: Debian's chromium (playwright-core drives it; no chromedriver is
# needed) and playwright-core from package-lock.json.
ensure_browser() {
	CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
	if [ ! -x "$CHROMIUM" ]; then
		jf_log "installing chromium (Debian's) for the board's browser tests"
		_jf_apt_install chromium
		[ -x "$CHROMIUM" ] || jf_die "no $CHROMIUM after installing chromium; set CHROMIUM to its path"
	fi
	export CHROMIUM
	if [ ! -d "$JF_ROOT/node_modules/playwright-core" ]; then
		ensure_node
		jf_log "installing playwright-core from the npm registry (package-lock.json)"
		(cd "$JF_ROOT" && npm ci --ignore-scripts --no-audit --no-fund) >&2 || jf_die "npm ci failed"
	fi
}

ensure_anvil() {
	if ! ANVIL_BIN="$(_jf_anvil_path)"; then
		ensure_node
		jf_log "installing anvil and solc from the npm registry (package-lock.json)"
		(cd "$JF_ROOT" && npm ci --ignore-scripts --no-audit --no-fund) >&2 || jf_die "npm ci failed"
		ANVIL_BIN="$(_jf_anvil_path)" || jf_die "no anvil binary in node_modules/@foundry-rs after npm ci"
	fi
	export ANVIL_BIN
}

# ---------------------------------------------------------------------------
# Talking to Redis
# ---------------------------------------------------------------------------

# Prints "host port" for a redis:// URL, defaulting the port to 6379.
_jf_url_host_port() {
	local rest="${1#*://}"
	rest="${rest%%/*}"
	rest="${rest%%\?*}"
	rest="${rest##*@}"
	local host="$rest" port=6379
	if [[ $rest =~ ^\[(.*)\]:([0-9]+)$ ]]; then
		host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[2]}"
	elif [[ $rest =~ ^([^:]*):([0-9]+)$ ]]; then
		host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[2]}"
	fi
	printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# Sentinel, for the failover tests: Debian's redis-sentinel package. Its install would start
# a system sentinel on 26379 that nobody asked for, so service starts are refused while it
# installs (policy-rc.d exit 101, as in container images); the tests start their own.
ensure_redis_sentinel() {
	jf_have redis-sentinel && return 0
	local policy=/usr/sbin/policy-rc.d made_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | _jf_as_root tee "$policy" >/dev/null
		_jf_as_root chmod +x "$policy"
		made_policy=1
	fi
	_jf_apt_install redis-sentinel || true
	[ -n "$made_policy" ] && _jf_as_root rm -f "$policy"
	jf_have redis-sentinel || jf_die "redis-sentinel is still not on PATH after installing it"
}

# Sends a raw RESP PING over bash's /dev/tcp, for machines without redis-cli.
# A NOAUTH reply counts as alive: the server is there, and the URL the
# application uses carries the password. timeout bounds a connect to a host
# that drops packets.
_jf_tcp_ping() {
	# shellcheck disable=SC2016 # expanded by the inner bash, on purpose
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "*1\r\n\$4\r\nPING\r\n" >&3
		IFS= read -r -t 2 line <&3 || exit 1
		case "$line" in "+PONG"* | "-NOAUTH"*) exit 0 ;; *) exit 1 ;; esac
	' _ "$1" "$2" 2>/dev/null
}

# Succeeds if a Redis answers at the URL. redis-cli is preferred because it
# understands passwords, database numbers and TLS in the URL.
redis_ping() {
	local url="$1"
	if jf_have redis-cli; then
		[ "$(timeout 5 redis-cli -u "$url" ping 2>/dev/null)" = PONG ]
	else
		local host port
		read -r host port < <(_jf_url_host_port "$url")
		_jf_tcp_ping "$host" "$port"
	fi
}

# Prints the process_id that the Redis on 127.0.0.1:PORT reports, so we can
# tell our own server from one that grabbed the same port first.
_jf_redis_process_id() {
	# shellcheck disable=SC2016 # expanded by the inner bash, on purpose
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "*2\r\n\$4\r\nINFO\r\n\$6\r\nserver\r\n" >&3
		while IFS= read -r -t 2 line <&3; do
			case "$line" in process_id:*) printf "%s\n" "${line//[!0-9]/}"; exit 0 ;; esac
		done
		exit 1
	' _ "$1" 2>/dev/null
}

# Hides the password in a URL before it is printed.
_jf_redact() { sed -E 's#//[^@/]*@#//***@#' <<<"$1"; }

# ---------------------------------------------------------------------------
# Cleaning up on exit
# ---------------------------------------------------------------------------

_JF_TRAPS_INSTALLED=
_JF_KILL_ON_EXIT=()
_JF_SERVICES=()
_JF_REDIS_PID=
_JF_REDIS_PIDFILE=
_JF_REDIS_DIR=
_JF_REDIS_LOG=

# One EXIT trap does all cleanup, so helpers and scripts never overwrite each
# other's traps. INT, TERM and HUP just exit, which runs the EXIT trap.
_jf_install_traps() {
	[ -n "$_JF_TRAPS_INSTALLED" ] && return 0
	_JF_TRAPS_INSTALLED=1
	trap _jf_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

# Registers child pids to be stopped (SIGTERM, then SIGKILL after a grace
# period) when the script exits. They are stopped before the private Redis,
# so workers can finish their shutdown while Redis is still there.
jf_kill_on_exit() {
	_JF_KILL_ON_EXIT+=("$@")
	_jf_install_traps
}

# Registers local services (anvil, the stand-ins) to be stopped after the processes of
# jf_kill_on_exit, so workers finish their jobs while the services still answer.
jf_stop_service_on_exit() {
	_JF_SERVICES+=("$@")
	_jf_install_traps
}

_jf_alive() { kill -0 "$1" 2>/dev/null; }

# Sends SIGTERM to exactly the given pids, waits up to JF_STOP_TIMEOUT
# seconds for all of them, then sends SIGKILL to those still running.
_jf_stop_pids() {
	local grace="${JF_STOP_TIMEOUT:-15}" pid deadline alive
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	deadline=$((SECONDS + grace))
	while :; do
		alive=()
		for pid in "$@"; do _jf_alive "$pid" && alive+=("$pid"); done
		[ "${#alive[@]}" -eq 0 ] && break
		if [ "$SECONDS" -ge "$deadline" ]; then
			jf_warn "still running after ${grace}s, sending SIGKILL to: ${alive[*]}"
			for pid in "${alive[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
			break
		fi
		sleep 0.1
	done
	for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

_jf_on_exit() {
	local rc=$?
	set +e
	if [ "${#_JF_KILL_ON_EXIT[@]}" -gt 0 ]; then
		_jf_stop_pids "${_JF_KILL_ON_EXIT[@]}"
		_JF_KILL_ON_EXIT=()
	fi
	if [ "${#_JF_SERVICES[@]}" -gt 0 ]; then
		_jf_stop_pids "${_JF_SERVICES[@]}"
		_JF_SERVICES=()
	fi
	if [ -n "$_JF_REDIS_PID" ]; then
		_jf_stop_pids "$_JF_REDIS_PID"
		jf_log "stopped private redis-server (pid $_JF_REDIS_PID)"
		rm -f "$_JF_REDIS_PIDFILE"
		rm -rf "$_JF_REDIS_DIR"
		# The server log only matters when something went wrong; exits by
		# Ctrl-C (130) or SIGTERM (143) are the normal way to stop a demo.
		case "$rc" in 0 | 130 | 143) rm -f "$_JF_REDIS_LOG" ;; esac
		_JF_REDIS_PID=
	fi
	exit "$rc"
}

# ---------------------------------------------------------------------------
# A private Redis
# ---------------------------------------------------------------------------

# Picks a port below Linux's ephemeral range (32768+), so outgoing
# connections are unlikely to take it, that nothing answers on right now.
# Someone may still take it before redis-server binds; the caller retries.
_jf_pick_port() {
	local port _
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	return 1
}

# Waits up to 10 s until the redis-server with PID answers on PORT.
# Fails early if the process exits (usually: port already in use).
_jf_wait_for_redis() {
	local pid="$1" port="$2" _
	for _ in $(seq 1 100); do
		_jf_alive "$pid" || return 1
		[ "$(_jf_redis_process_id "$port")" = "$pid" ] && return 0
		sleep 0.1
	done
	return 1
}

_jf_start_private_redis() {
	ensure_redis_server_binary
	mkdir -p "$JF_RUN_DIR"
	local attempt port pid log
	for attempt in 1 2 3 4 5; do
		port="$(_jf_pick_port)" || jf_die "found no free port for a private redis-server"
		log="$JF_RUN_DIR/redis-$port.log"
		_JF_REDIS_LOG="$log"
		_JF_REDIS_DIR="$JF_RUN_DIR/redis-$port"
		_JF_REDIS_PIDFILE="$JF_RUN_DIR/redis-$port.pid"
		mkdir -p "$_JF_REDIS_DIR"
		"${JF_DETACH[@]}" "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--daemonize no --dir "$_JF_REDIS_DIR" </dev/null >"$log" 2>&1 &
		pid=$!
		# Registered before waiting, so an interrupt during start-up still
		# stops this server, and only this one.
		_JF_REDIS_PID="$pid"
		printf '%s\n' "$pid" >"$_JF_REDIS_PIDFILE"
		_jf_install_traps
		if _jf_wait_for_redis "$pid" "$port"; then
			export REDIS_URL="redis://127.0.0.1:$port/"
			jf_log "started private redis-server (pid $pid) at $REDIS_URL, log: $log"
			return 0
		fi
		if _jf_alive "$pid"; then
			jf_die "private redis-server (pid $pid) did not answer on port $port within 10s; see $log"
		fi
		wait "$pid" 2>/dev/null || true
		_JF_REDIS_PID=
		rm -f "$_JF_REDIS_PIDFILE"
		rm -rf "$_JF_REDIS_DIR"
		jf_warn "redis-server failed to start on port $port (attempt $attempt): $(tail -n 1 "$log")"
		rm -f "$log"
	done
	jf_die "could not start a private redis-server; see the logs in $JF_RUN_DIR"
}

# Makes sure REDIS_URL points at a Redis that answers: the given URL, else
# $REDIS_URL, else 127.0.0.1:6379, else a private redis-server started on a
# free port and stopped when the calling script exits. The existing server is
# only PINGed, never written to.
ensure_redis() {
	local url="${1:-${REDIS_URL:-}}"
	if [ -n "$url" ]; then
		if redis_ping "$url"; then
			export REDIS_URL="$url"
			jf_log "using Redis at $(_jf_redact "$url")"
			return 0
		fi
		jf_warn "no Redis answers at $(_jf_redact "$url"); starting a private one instead"
	elif redis_ping "redis://127.0.0.1:6379/"; then
		export REDIS_URL="redis://127.0.0.1:6379/"
		jf_log "using Redis at $REDIS_URL"
		return 0
	fi
	_jf_start_private_redis
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Succeeds if PostgreSQL accepts the URL (psql when installed, else a TCP check of the port).
_jf_pg_ok() {
	local url="$1"
	if jf_have psql; then
		PGCONNECT_TIMEOUT=3 psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1
	else
		local rest="${url#*://}"
		rest="${rest#*@}"
		rest="${rest%%/*}"
		# shellcheck disable=SC2016 # expanded by the inner bash, on purpose
		timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${rest%%:*}" "${rest##*:}" 2>/dev/null
	fi
}

# Makes sure DATABASE_URL points at a PostgreSQL server whose role can create databases
# (the tests create one per test; `jobfleet migrate` creates the app's).
# - A DATABASE_URL that is set is used as it is, and must answer.
# - Else 127.0.0.1:5432, with trust or the password `postgres`, as the `postgres` role; the
#   URL then names the maintenance database `postgres`, and JF_DATABASE_FOUND=1 tells
#   callers that they may choose their own database on that server.
# - Else, when nothing listens on 5432, a local server installed with apt if needed and
#   started; its `postgres` role gets the password `postgres`. A server that listens but
#   refuses both logins is left alone: its owner has to say how to log in (DATABASE_URL).
ensure_postgres() {
	export JF_DATABASE_FOUND=
	jf_have psql || _jf_apt_install postgresql-client
	if [ -n "${DATABASE_URL:-}" ]; then
		_jf_pg_ok "$DATABASE_URL" || jf_die "PostgreSQL does not accept DATABASE_URL=$(_jf_redact "$DATABASE_URL")"
		jf_log "using PostgreSQL at $(_jf_redact "$DATABASE_URL")"
		return 0
	fi
	local url
	for url in "postgres://postgres@127.0.0.1:5432/postgres" "postgres://postgres:postgres@127.0.0.1:5432/postgres"; do
		if _jf_pg_ok "$url"; then
			export DATABASE_URL="$url" JF_DATABASE_FOUND=1
			jf_log "using PostgreSQL at $(_jf_redact "$url")"
			return 0
		fi
	done
	if timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432' 2>/dev/null; then
		jf_die "a PostgreSQL on 127.0.0.1:5432 refuses the postgres role without or with the password 'postgres'; set DATABASE_URL"
	fi
	if ! jf_have pg_ctlcluster; then
		jf_log "installing PostgreSQL"
		_jf_apt_install postgresql
	fi
	local version
	version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
	[ -n "$version" ] || jf_die "PostgreSQL is installed but has no cluster in /etc/postgresql"
	_jf_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
	local _
	for _ in $(seq 1 30); do
		_jf_as_root su postgres -c "psql -Atqc 'SELECT 1'" >/dev/null 2>&1 && break
		sleep 1
	done
	_jf_as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null ||
		jf_die "cannot set the password of the postgres role"
	export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres" JF_DATABASE_FOUND=1
	_jf_pg_ok "$DATABASE_URL" || jf_die "PostgreSQL does not accept $(_jf_redact "$DATABASE_URL")"
	jf_log "started PostgreSQL $version at $(_jf_redact "$DATABASE_URL")"
}

# ---------------------------------------------------------------------------
# Local services for the demo
# ---------------------------------------------------------------------------

# Starts a local service in the background, its output in $JF_RUN_DIR/NAME.log, stopped when
# the calling script exits, and waits up to 15 s until it accepts connections on PORT.
# Usage: jf_start_service NAME PORT COMMAND [ARG...]
jf_start_service() {
	local name="$1" port="$2" pid log _
	shift 2
	mkdir -p "$JF_RUN_DIR"
	log="$JF_RUN_DIR/$name.log"
	"${JF_DETACH[@]}" "$@" </dev/null >"$log" 2>&1 &
	pid=$!
	jf_stop_service_on_exit "$pid"
	for _ in $(seq 1 150); do
		_jf_alive "$pid" || jf_die "$name exited at start; see $log: $(tail -n 3 "$log")"
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			jf_log "started $name (pid $pid) on 127.0.0.1:$port, log: $log"
			return 0
		fi
		sleep 0.1
	done
	jf_die "$name (pid $pid) did not listen on 127.0.0.1:$port within 15s; see $log"
}
