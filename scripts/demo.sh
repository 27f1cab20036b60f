#!/bin/bash
# demo.sh BUILD_DIR: smtpwall in a namespace lab, narrated.
#
# Builds a client, a gateway running BUILD_DIR/smtpwalld behind the netfilter
# rules BUILD_DIR/smtpwall-firewall installs (NFQUEUE admission of each SYN,
# REDIRECT of port 25), and a mail server (the aiosmtpd recorder of the
# integration tests); then sends mail with swaks, showing each SMTP dialog,
# what smtpwalld logged and what the server received. Exits non-zero if any step
# did not behave as described. Everything it created is removed on exit, also
# on Ctrl-C. Must run as root (namespaces, netfilter).
set -u

BUILD=${1:-}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "$BUILD" ]; then
	echo "usage: $0 BUILD_DIR   (the directory holding smtpwalld, e.g. build)" >&2
	exit 2
fi
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "demo: no such directory: $1" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then
	echo "demo: this demo must run as root: it creates network namespaces and netfilter rules." >&2
	echo "demo: run it as: sudo make demo   (or: sudo $0 $1)" >&2
	exit 1
fi
if [ ! -x "$BUILD/smtpwalld" ]; then
	echo "demo: $BUILD/smtpwalld not found; run make first" >&2
	exit 1
fi
for t in ip nft ss swaks tshark /usr/bin/python3; do
	command -v "$t" >/dev/null || { echo "demo: missing $t; run: sudo make deps" >&2; exit 1; }
done

# shellcheck source=scripts/lab.sh
. "$HERE/lab.sh"

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'; else B='' G='' R='' D='' N=''; fi
say()  { printf '\n%s%s%s\n' "$B" "$*" "$N"; }
note() { printf '%s\n' "$*" | fold -s -w 78 | sed 's/^/  /'; }
indent() { sed "s/^/    $D|$N /"; }

RESULTS=()
FAILED=0
verdict() {	# verdict OK|FAIL "what"
	if [ "$1" = OK ]; then
		printf '  %s=> as expected:%s %s\n' "$G" "$N" "$2"
		RESULTS+=("${G}ok  ${N} $2")
	else
		printf '  %s=> NOT as expected:%s %s\n' "$R" "$N" "$2"
		RESULTS+=("${R}FAIL${N} $2")
		FAILED=$((FAILED + 1))
	fi
}

# shellcheck disable=SC2317  # called through the trap
cleanup() {
	trap - EXIT INT TERM HUP PIPE
	# Whoever reads our output may be gone (a closed pipe, a closed
	# terminal): never let a failed write stop the clean-up.
	trap '' PIPE
	{ echo; echo "cleaning up: stopping what the demo started, deleting its namespaces"; } 2>/dev/null || true
	lab_down >/dev/null 2>&1 || lab_down
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM HUP
trap 'exit 141' PIPE

# --- the lab -----------------------------------------------------------------------

say "Building the lab: three network namespaces, nothing touches this machine's own network."
lab_up || { echo "demo: could not build the namespaces" >&2; exit 1; }
note "client   $LAB_CLI: 203.0.113.10 is a host on the Internet; 203.0.113.50 is a trusted internal host"
note "gateway  $LAB_GW: routes between them; netfilter sends every TCP connection to port 25 to smtpwalld on :10025"
note "server   $LAB_SRV: the real mail server of example.net at 198.51.100.25"
lab_start_server || { echo "demo: the mail server did not start:" >&2; cat "$LAB_DIR/server.err" >&2; exit 1; }
SERVER_LOG=$LAB_DIR/server/commands.log
touch "$SERVER_LOG"

CONF=$LAB_DIR/smtpwall.conf
cat >"$CONF" <<EOF
listen = 0.0.0.0:10025, [::]:10025
mode = redirect
upstream = original
local_domains = example.net
trusted_networks = 127.0.0.0/8, 203.0.113.50/32
rules_file = $LAB_DIR/rules
control_socket = $LAB_DIR/control.sock
capture_dir = $LAB_DIR/captures
log_level = info
nfqueue = 0
nfqueue_fail = open
EOF
echo "block sender *@spam.example" >"$LAB_DIR/rules"
say "Starting smtpwalld on the gateway with this configuration:"
grep -v '^#' "$CONF" | indent
echo "  and this rule file:"
indent <"$LAB_DIR/rules"
if ! lab_start_proxy "$BUILD" "$CONF"; then
	echo "demo: smtpwalld did not start listening within 10 s; its log:" >&2
	cat "$LAB_DIR/smtpwalld.log" >&2
	exit 1
fi
say "Sending port 25 to it: smtpwall-firewall up, from the same configuration file."
if ! lab_in "$LAB_GW" "$BUILD/smtpwall-firewall" up -c "$CONF" 2>&1 | indent; then
	echo "demo: smtpwall-firewall up failed" >&2
	exit 1
fi
note "What it installed (the queue rule goes through iptables where the kernel lacks nft_queue):"
lab_in "$LAB_GW" "$BUILD/smtpwall-firewall" show -c "$CONF" 2>&1 |
	grep -E 'queue|redirect|NFQUEUE|REDIRECT' | sed 's/^[[:space:]]*//' | indent
note "smtpwalld is listening. The client knows nothing about it: it connects to 198.51.100.25 port 25."

# --- the steps -------------------------------------------------------------------------

LOG_MARK=0 SRV_MARK=0
mark() { LOG_MARK=$(wc -l <"$LAB_DIR/smtpwalld.log"); SRV_MARK=$(wc -l <"$SERVER_LOG"); }
new_proxy_log() { tail -n +$((LOG_MARK + 1)) "$LAB_DIR/smtpwalld.log"; }
new_server_log() { tail -n +$((SRV_MARK + 1)) "$SERVER_LOG"; }

# run_swaks HELO FROM TO SRC: one SMTP session from the client namespace.
run_swaks() {
	mark
	OUT=$(lab_in "$LAB_CLI" swaks --server 198.51.100.25 --port 25 --local-interface "$4" --helo "$1" \
		--from "$2" --to "$3" --header "Subject: smtpwall demo" --body "Hello from the smtpwall demo." \
		--suppress-data --timeout 10 2>&1)
	RC=$?
	echo "  the SMTP dialog as the client saw it (swaks, exit status $RC):"
	printf '%s\n' "$OUT" | grep -E '^ *(<-|->|<\*\*|\*\*\*)' | indent
	# swaks returns only after the server's 221 to QUIT: the server has logged it all.
	lab_wait 5 grep -q "QUIT" <(new_server_log)
	echo "  smtpwalld's log:"
	new_proxy_log | grep -vE 'debug:' | indent
	echo "  the mail server's log (every command it received):"
	new_server_log | indent
}

say "(a) The outside host sends mail to user@example.net, a domain this gateway serves."
note "Mail to our own domains is welcome from anyone: smtpwalld passes the whole dialog through unchanged."
run_swaks demo-a.example.org alice@example.org user@example.net 203.0.113.10
if [ $RC = 0 ] && new_server_log | grep -q "RCPT TO:<user@example.net>" &&
	new_server_log | grep -q "message stored"; then
	verdict OK "(a) local delivery went through and the server stored the message"
else
	verdict FAIL "(a) local delivery (swaks exit $RC)"
fi

say "(b) The outside host tries to use us as an open relay: mail to someone@elsewhere.example."
note "elsewhere.example is not ours and 203.0.113.10 is not trusted: smtpwalld answers the RCPT itself, and the server never hears of it."
run_swaks demo-b.example.org spammer@example.org someone@elsewhere.example 203.0.113.10
if printf '%s\n' "$OUT" | grep -q '550 5.7.1 <someone@elsewhere.example>: Relay access denied' &&
	! new_server_log | grep -qi "elsewhere.example" &&
	new_proxy_log | grep -q 'refuse rcpt=<someone@elsewhere.example> reason=relay'; then
	verdict OK "(b) relay attempt refused with 550 5.7.1 Relay access denied; the server never saw that RCPT"
else
	verdict FAIL "(b) relay attempt (swaks exit $RC; see the dialog and logs above)"
fi

say "(c) The trusted internal host 203.0.113.50 sends the same mail to someone@elsewhere.example."
note "It is in trusted_networks, so it may relay anywhere: the RCPT goes to the server."
run_swaks demo-c.example.net bob@example.net someone@elsewhere.example 203.0.113.50
if [ $RC = 0 ] && new_server_log | grep -q "RCPT TO:<someone@elsewhere.example>" &&
	new_server_log | grep -q "message stored"; then
	verdict OK "(c) the trusted host relayed to elsewhere.example"
else
	verdict FAIL "(c) trusted relay (swaks exit $RC)"
fi

say "(d) A sender on the block list: bad@spam.example writes to user@example.net."
note "The rule 'block sender *@spam.example' makes smtpwalld refuse the MAIL FROM; the server never sees it."
run_swaks demo-d.example.org bad@spam.example user@example.net 203.0.113.10
if printf '%s\n' "$OUT" | grep -q '550 5.7.1 <bad@spam.example>: Sender address rejected: blocked by policy' &&
	! new_server_log | grep -qi "spam.example"; then
	verdict OK "(d) blocked sender refused with 550 5.7.1; the server never saw it"
else
	verdict FAIL "(d) blocked sender (swaks exit $RC)"
fi

CTL=("$BUILD/smtpwallctl" -s "$LAB_DIR/control.sock")
ctl() {	# show and run one smtpwallctl command
	echo "  \$ smtpwallctl$(printf ' %q' "$@")"
	CTL_OUT=$("${CTL[@]}" "$@" 2>&1)
	CTL_RC=$?
	printf '%s\n' "$CTL_OUT" | indent
}
lab_in "$LAB_CLI" ip addr add 203.0.113.60/24 dev "${LAB_PREFIX}c"

say "(e) The network monitor at 203.0.113.60 relays an alert to the admins' phones: 5550100@sms.carrier.example."
note "It is not in trusted_networks, so its alert is refused like any relay attempt: the mail that silently never arrives."
run_swaks monitor.example.net alert@monitor.example.net 5550100@sms.carrier.example 203.0.113.60
E_REFUSED=0
printf '%s\n' "$OUT" | grep -q '550 5.7.1 <5550100@sms.carrier.example>: Relay access denied' &&
	! new_server_log | grep -q "sms.carrier.example" && E_REFUSED=1
note "The administrator asks the running smtpwalld why, without sending any mail:"
ctl check --client 203.0.113.60 --from alert@monitor.example.net --to 5550100@sms.carrier.example
E_EXPLAINED=0
printf '%s\n' "$CTL_OUT" | grep -q 'refused 550 5.7.1 (reason=relay: 203.0.113.60 is not in trusted_networks' &&
	E_EXPLAINED=1
note "To see that exact session on the wire, both legs, the administrator arms a capture for the monitor's next session:"
ctl capture client 203.0.113.60/32 --sessions 1
CAP_ID=$CTL_OUT
run_swaks monitor.example.net alert@monitor.example.net 5550100@sms.carrier.example 203.0.113.60 >/dev/null
# The file is complete 2 s after the session (its TCP teardown); smtpwalld logs it.
lab_wait 10 grep -q "capture id=$CAP_ID session=.* file=" "$LAB_DIR/smtpwalld.log"
ctl capture list
CAP_FILE=$(printf '%s\n' "$CTL_OUT" | sed -n 's/^file id=[0-9]* .* \(\/.*\.pcap\)$/\1/p' | head -1)
E_CAPTURED=0
if [ -n "$CAP_FILE" ] && [ -f "$CAP_FILE" ]; then
	echo "  \$ tshark -r $(basename "$CAP_FILE") -Y smtp"
	tshark -n -r "$CAP_FILE" -Y smtp 2>/dev/null | sed 's/^ *//' | indent
	tshark -n -r "$CAP_FILE" -Y smtp 2>/dev/null | grep -q "550 5.7.1 <5550100@sms.carrier.example>: Relay access denied" &&
		[ "$(tshark -n -r "$CAP_FILE" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' 2>/dev/null | wc -l)" = 2 ] &&
		E_CAPTURED=1
fi
note "...and lets the monitor relay to the SMS gateway, and nowhere else, live (no restart, on disk before ok):"
ctl allow relay 203.0.113.60/32 to sms.carrier.example --comment "network monitor alerts"
run_swaks monitor.example.net alert@monitor.example.net 5550100@sms.carrier.example 203.0.113.60
if [ $E_REFUSED = 1 ] && [ $E_EXPLAINED = 1 ] && [ $E_CAPTURED = 1 ] && [ $RC = 0 ] &&
	new_server_log | grep -q "RCPT TO:<5550100@sms.carrier.example>" &&
	new_server_log | grep -q "message stored"; then
	verdict OK "(e) the monitor's alert: refused, explained by smtpwallctl check, captured (both legs, read by tshark), delivered after allow relay"
else
	verdict FAIL "(e) the monitor's alert (refused=$E_REFUSED explained=$E_EXPLAINED captured=$E_CAPTURED swaks exit $RC)"
fi

say "(f) A spam wave from *@wave.example: the administrator blocks it while smtpwalld runs."
ctl block sender '*@wave.example' --for 2h --comment "spam wave"
run_swaks demo-f.example.org promo@wave.example user@example.net 203.0.113.10
F_BLOCKED=0
printf '%s\n' "$OUT" | grep -q '550 5.7.1 <promo@wave.example>: Sender address rejected: blocked by policy' &&
	! new_server_log | grep -qi "wave.example" && F_BLOCKED=1
note "The live rules, with their hits and the time left before they expire:"
ctl rules
if [ $F_BLOCKED = 1 ] && printf '%s\n' "$CTL_OUT" | grep -q 'block sender \*@wave.example .*hits=1'; then
	verdict OK "(f) a sender blocked live with smtpwallctl is refused at once; its rule counts the hit"
else
	verdict FAIL "(f) live block (blocked=$F_BLOCKED)"
fi

say "(g) An abusive host at 203.0.113.70: the administrator blocks it; its SYNs are dropped at the gateway."
lab_in "$LAB_CLI" ip addr add 203.0.113.70/24 dev "${LAB_PREFIX}c"
ctl block client 203.0.113.70/32 --comment "abuse report"
note "The host tries to connect (3 s timeout): no SYN-ACK ever comes back, no session exists."
G_TIMEOUT=0
if lab_in "$LAB_CLI" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(3); s.bind(("203.0.113.70", 0))
try:
    s.connect(("198.51.100.25", 25))
except socket.timeout:
    print("connect to 198.51.100.25:25 from 203.0.113.70: timed out"); sys.exit(0)
print("connect to 198.51.100.25:25 from 203.0.113.70: connected"); sys.exit(1)' | indent; then
	G_TIMEOUT=1
fi
ctl stats
G_COUNTED=0
printf '%s\n' "$CTL_OUT" | grep -Eq '^nfq_syn_dropped_client=[1-9]' &&
	printf '%s\n' "$CTL_OUT" | grep -q 'client_rule hits=[1-9][0-9]* rule="block client 203.0.113.70/32"' &&
	G_COUNTED=1
note "smtpwalld's log of the drop:"
grep 'nfq drop' "$LAB_DIR/smtpwalld.log" | head -2 | indent
ctl unblock client 203.0.113.70/32
run_swaks demo-g.example.org someone@example.org user@example.net 203.0.113.70
if [ $G_TIMEOUT = 1 ] && [ $G_COUNTED = 1 ] && [ $RC = 0 ]; then
	verdict OK "(g) a client blocked live is dropped at its first packet (NFQUEUE), counted per rule; unblocked, it delivers"
else
	verdict FAIL "(g) NFQUEUE block (timed out=$G_TIMEOUT counted=$G_COUNTED swaks after unblock exit $RC)"
fi

if ! kill -0 "$LAB_PROXY_PID" 2>/dev/null; then
	verdict FAIL "smtpwalld is no longer running"
fi

say "Summary"
for r in "${RESULTS[@]}"; do printf '  %s\n' "$r"; done
if [ "$FAILED" -gt 0 ]; then
	printf '\n%s%d step(s) did not behave as shown.%s\n' "$R" "$FAILED" "$N"
	exit 1
fi
printf '\n%sEvery step behaved as shown.%s\n' "$G" "$N"
exit 0
