# shellcheck shell=bash
#
# A local Redis Cluster for the demo (`scripts/run --cluster`): three masters with a replica
# each, on free loopback ports, made the way its users make one (`redis-server
# --cluster-enabled yes` per node, then `redis-cli --cluster create`). Sourced after
# scripts/lib.sh, whose exit trap stops these servers with the fleet. Nothing is kept on disk:
# the nodes' folders live under .run/cluster/ and are made anew each time.

# Starts the cluster and sets REDIS_URL to its seed nodes (redis+cluster://...).
start_local_cluster() {
	ensure_redis_server_binary
	jf_have redis-cli || _jf_apt_install redis-tools
	local dir="$JF_RUN_DIR/cluster" ports=() addrs=() port _
	rm -rf "$dir"
	mkdir -p "$dir"
	while [ "${#ports[@]}" -lt 6 ]; do
		port="$(_jf_pick_port)" || jf_die "found no free port for a cluster node"
		# A node also listens on port + 10000 for the cluster bus.
		if (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null; then continue; fi
		[[ " ${ports[*]} " == *" $port "* ]] && continue
		ports+=("$port")
	done
	for port in "${ports[@]}"; do
		mkdir -p "$dir/$port"
		jf_start_service "redis-cluster-$port" "$port" "$REDIS_SERVER" --port "$port" \
			--bind 127.0.0.1 --save "" --appendonly no --daemonize no --dir "$dir/$port" \
			--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
			--repl-diskless-sync-delay 0
		addrs+=("127.0.0.1:$port")
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
		>"$dir/create.log" 2>&1 || jf_die "redis-cli --cluster create failed; see $dir/create.log"
	for _ in $(seq 1 100); do
		if redis-cli -p "${ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
			local seeds
			seeds="$(IFS=,; echo "${addrs[*]}")"
			export REDIS_URL="redis+cluster://$seeds"
			jf_log "started a local Redis Cluster (3 masters, 3 replicas): $REDIS_URL"
			return 0
		fi
		sleep 0.1
	done
	jf_die "the local cluster did not reach cluster_state:ok in 10s; see $dir/create.log"
}
