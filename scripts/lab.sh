# shellcheck shell=bash
# lab.sh: the smtpwall namespace lab in shell, sourced by scripts/demo.sh.
#
# Owns three network namespaces named after LAB_PREFIX (client, gateway,
# server), the veth links between them (the gateway's netfilter rules are
# smtpwall-firewall's, run by demo.sh inside the gateway namespace), and
# the processes it starts there (recorded by PID in LAB_PIDS). lab_down removes
# exactly those and nothing else. Addresses are documentation ranges only:
#
#   client  203.0.113.10 (outside), 203.0.113.50 (trusted)   2001:db8:c::10
#   gateway 203.0.113.1 | 198.51.100.1                       2001:db8:c::1 | 2001:db8:5::1
#   server  198.51.100.25 (mail server)                      2001:db8:5::25
#
# Same topology as tests/integration/lab.py.

LAB_PREFIX=${LAB_PREFIX:-swd$$-}
LAB_CLI=${LAB_PREFIX}cli
LAB_GW=${LAB_PREFIX}gw
LAB_SRV=${LAB_PREFIX}srv
LAB_DIR=
LAB_PIDS=
LAB_NS=
LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

lab_in() { ns=$1; shift; ip netns exec "$ns" "$@"; }

# lab_wait SECONDS CMD...: run CMD every 0.1 s until it succeeds; fail after SECONDS.
lab_wait() {
	n=$(( $1 * 10 )); shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

lab_up() {
	LAB_DIR=$(mktemp -d "/tmp/${LAB_PREFIX}XXXXXX") || return 1
	chmod 755 "$LAB_DIR"
	for ns in "$LAB_CLI" "$LAB_GW" "$LAB_SRV"; do
		ip netns add "$ns" || return 1
		LAB_NS="$LAB_NS $ns"
		lab_in "$ns" ip link set lo up
	done
	ip link add "${LAB_PREFIX}c" netns "$LAB_CLI" type veth peer name "${LAB_PREFIX}gc" netns "$LAB_GW" || return 1
	ip link add "${LAB_PREFIX}s" netns "$LAB_SRV" type veth peer name "${LAB_PREFIX}gs" netns "$LAB_GW" || return 1
	lab_in "$LAB_CLI" ip addr add 203.0.113.10/24 dev "${LAB_PREFIX}c"
	lab_in "$LAB_CLI" ip addr add 203.0.113.50/24 dev "${LAB_PREFIX}c"
	lab_in "$LAB_CLI" ip addr add 2001:db8:c::10/64 dev "${LAB_PREFIX}c" nodad
	lab_in "$LAB_GW" ip addr add 203.0.113.1/24 dev "${LAB_PREFIX}gc"
	lab_in "$LAB_GW" ip addr add 2001:db8:c::1/64 dev "${LAB_PREFIX}gc" nodad
	lab_in "$LAB_GW" ip addr add 198.51.100.1/24 dev "${LAB_PREFIX}gs"
	lab_in "$LAB_GW" ip addr add 2001:db8:5::1/64 dev "${LAB_PREFIX}gs" nodad
	lab_in "$LAB_SRV" ip addr add 198.51.100.25/24 dev "${LAB_PREFIX}s"
	lab_in "$LAB_SRV" ip addr add 2001:db8:5::25/64 dev "${LAB_PREFIX}s" nodad
	for l in "$LAB_CLI ${LAB_PREFIX}c" "$LAB_GW ${LAB_PREFIX}gc" "$LAB_GW ${LAB_PREFIX}gs" "$LAB_SRV ${LAB_PREFIX}s"; do
		# shellcheck disable=SC2086
		set -- $l
		lab_in "$1" ip link set "$2" up || return 1
	done
	lab_in "$LAB_CLI" ip route add default via 203.0.113.1 || return 1
	lab_in "$LAB_CLI" ip -6 route add default via 2001:db8:c::1 || return 1
	lab_in "$LAB_SRV" ip route add default via 198.51.100.1 || return 1
	lab_in "$LAB_SRV" ip -6 route add default via 2001:db8:5::1 || return 1
	lab_in "$LAB_GW" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || return 1
}

lab_spawn() {	# lab_spawn NS LOGFILE CMD...: start CMD in NS in the background, remember its PID
	ns=$1 log=$2; shift 2
	setsid ip netns exec "$ns" "$@" </dev/null >>"$log" 2>&1 &
	LAB_LAST_PID=$!
	LAB_PIDS="$LAB_PIDS $LAB_LAST_PID"
}

# The mail server: the aiosmtpd recorder of the integration tests; its log of
# received commands is $LAB_DIR/server/commands.log.
lab_start_server() {
	lab_spawn "$LAB_SRV" "$LAB_DIR/server.err" /usr/bin/python3 "$LAB_REPO/tests/integration/recorder.py" \
		--dir "$LAB_DIR/server" --listen 198.51.100.25 --listen 2001:db8:5::25 \
		--ehlo PIPELINING --ready-file "$LAB_DIR/server.ready"
	lab_wait 10 test -e "$LAB_DIR/server.ready"
}

lab_listening() { lab_in "$LAB_GW" ss -Hltn "sport = :$1" | grep -q .; }

# lab_start_proxy BUILD_DIR CONFIG: smtpwalld in the gateway; its log is $LAB_DIR/smtpwalld.log.
lab_start_proxy() {
	lab_spawn "$LAB_GW" "$LAB_DIR/smtpwalld.log" "$1/smtpwalld" -c "$2" -d
	LAB_PROXY_PID=$LAB_LAST_PID
	lab_wait 10 lab_listening 10025
}

lab_down() {
	for pid in $LAB_PIDS; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in $LAB_PIDS; do
		n=50
		while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
		kill -KILL "$pid" 2>/dev/null
	done
	LAB_PIDS=
	for ns in $LAB_NS; do
		ip netns del "$ns" 2>/dev/null
	done
	LAB_NS=
	[ -n "$LAB_DIR" ] && [ -z "${SMTPWALL_KEEP_LAB:-}" ] && rm -rf "$LAB_DIR"
	LAB_DIR=
}
