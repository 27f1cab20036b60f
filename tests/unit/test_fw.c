/*
 * test_fw: smtpwall-firewall's generator (fw/plan.h) as an administrator
 * reads it with -n: for each configuration, the exact commands and the exact
 * nft script up runs (redirect, DNAT to a specific address, tproxy, nfqueue
 * single and range, open and closed, in nft, in iptables, and with the queue
 * rule moved to iptables), the notes, the configuration errors (loopback
 * listen), the down plan, the nft queue probe; and the runner's pieces that
 * need no root (fw/run.h: fw_run(), fw_check_present()).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fw/plan.h"
#include "fw/run.h"
#include "proxy/config.h"

#define TF_PATH	"t.conf"

/* ---- expected text, piece by piece ------------------------------------------ */

#define RM_NFT \
	"while nft list table inet smtpwall >/dev/null 2>&1; do nft delete table inet smtpwall " \
	"|| break; done\n"
#define RM_CHAIN(T, TB) \
	"while " T " -w -t " TB " -C PREROUTING -j SMTPWALL >/dev/null 2>&1; do " T " -w -t " TB \
	" -D PREROUTING -j SMTPWALL || break; done\n" \
	"while " T " -w -t " TB " -S SMTPWALL >/dev/null 2>&1; do " T " -w -t " TB " -F SMTPWALL && " \
	T " -w -t " TB " -X SMTPWALL || break; done\n"
#define RULE_CHECK(IP) \
	IP " -N rule show fwmark 0x2525 lookup 2525 2>/dev/null | grep -Eq " \
	"'^[0-9]+:[[:space:]]+from all fwmark 0x2525 lookup 2525[[:space:]]*$'"
#define RM_ROUTING(IP, ANY) \
	"while " RULE_CHECK(IP) "; do " IP " rule del fwmark 0x2525 lookup 2525 || break; done\n" \
	"while [ -n \"$(" IP " route show table 2525 type local exact " ANY " dev lo 2>/dev/null)\" ]; " \
	"do " IP " route del local " ANY " dev lo table 2525 || break; done\n"
#define ADD_ROUTING(IP, ANY) \
	RULE_CHECK(IP) " || " IP " rule add fwmark 0x2525 lookup 2525\n" \
	IP " route replace local " ANY " dev lo table 2525\n"
#define MK_CHAIN(T, TB) \
	T " -w -t " TB " -S SMTPWALL >/dev/null 2>&1 || " T " -w -t " TB " -N SMTPWALL\n" \
	T " -w -t " TB " -F SMTPWALL\n"
#define JUMP(T, TB) \
	T " -w -t " TB " -C PREROUTING -j SMTPWALL >/dev/null 2>&1 || " T " -w -t " TB \
	" -I PREROUTING 1 -j SMTPWALL\n"

#define RM_ALL_CHAINS \
	RM_CHAIN("iptables", "raw") RM_CHAIN("iptables", "nat") RM_CHAIN("iptables", "mangle") \
	RM_CHAIN("ip6tables", "raw") RM_CHAIN("ip6tables", "nat") RM_CHAIN("ip6tables", "mangle")
#define RM_ALL_ROUTING	RM_ROUTING("ip", "0.0.0.0/0") RM_ROUTING("ip -6", "::/0")

#define NFT_HEAD \
	"nft -f - <<'EOF'\n" \
	"add table inet smtpwall\n" \
	"delete table inet smtpwall\n" \
	"table inet smtpwall {\n"
#define NFT_TAIL	"\t}\n}\nEOF\n"
#define NAT_CHAIN \
	"\tchain redirect25 {\n" \
	"\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
#define TPROXY_CHAIN \
	"\tchain tproxy25 {\n" \
	"\t\ttype filter hook prerouting priority mangle; policy accept;\n" \
	"\t\tmeta l4proto tcp socket transparent 1 meta mark set 0x2525 accept\n"

/* ---- helpers --------------------------------------------------------------- */

static void
tf_config(struct config *cf, const char *text)
{
	char *errs = NULL;
	size_t errlen = 0;
	FILE *f = open_memstream(&errs, &errlen);
	int n;

	assert_non_null(f);
	assert_int_equal(config_init(cf), 0);
	snprintf(cf->path, sizeof cf->path, "%s", TF_PATH);
	n = config_parse(cf, TF_PATH, text, strlen(text), f);
	assert_int_equal(fclose(f), 0);
	if (n != 0)
		fail_msg("config errors for \"%s\":\n%s", text, errs);
	free(errs);
}

static char *
tf_print(const struct fw_plan *p)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	fw_plan_print(p, f);
	assert_int_equal(fclose(f), 0);
	return out;
}

/* The up plan of `text` under backend/queue_via_iptables, printed; the plan in *pp if wanted. */
static char *
tf_up(const char *text, enum fw_backend b, int qvia, struct fw_plan **pp)
{
	struct fw_opts o = { b, qvia };
	struct fw_plan *p = fw_plan_new();
	char err[FW_ERR_LEN] = "";
	struct config cf;
	char *out;

	assert_non_null(p);
	tf_config(&cf, text);
	if (fw_plan_up(p, &cf, &o, err, sizeof err) != 0)
		fail_msg("fw_plan_up failed for \"%s\": %s", text, err);
	config_free(&cf);
	out = tf_print(p);
	if (pp != NULL)
		*pp = p;
	else
		free(p);
	return out;
}

static void
tf_up_eq(const char *text, enum fw_backend b, int qvia, const char *want)
{
	char *got = tf_up(text, b, qvia, NULL);

	if (strcmp(got, want) != 0)
		fail_msg("plan for \"%s\" (%s%s):\n--- got\n%s--- want\n%s", text, fw_backend_name(b),
		    qvia ? ", queue via iptables" : "", got, want);
	free(got);
}

static void
tf_up_err(const char *text, const char *want)
{
	struct fw_opts o = { FW_BACKEND_NFT, 0 };
	struct fw_plan *p = fw_plan_new();
	char err[FW_ERR_LEN] = "";
	struct config cf;

	assert_non_null(p);
	tf_config(&cf, text);
	assert_int_equal(fw_plan_up(p, &cf, &o, err, sizeof err), -1);
	assert_string_equal(err, want);
	config_free(&cf);
	free(p);
}

/* ---- redirect ------------------------------------------------------------------- */

/* The defaults: listen = 0.0.0.0:10025 only, every interface but lo. */
static void
test_fw_redirect_default(void **state)
{
	struct fw_plan *p;
	char *got;

	(void)state;
	tf_up_eq("", FW_BACKEND_NFT, 0,
	    NFT_HEAD NAT_CHAIN
	    "\t\tiifname != \"lo\" meta nfproto ipv4 tcp dport 25 redirect to :10025\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ALL_ROUTING);
	got = tf_up("", FW_BACKEND_NFT, 0, &p);
	assert_int_equal(p->nnotes, 1);
	assert_string_equal(p->notes[0], "no IPv6 listener in listen: IPv6 port 25 is not intercepted");
	free(got);
	free(p);
}

static void
test_fw_redirect_dual_stack(void **state)
{
	struct fw_plan *p;
	char *got;

	(void)state;
	tf_up_eq("listen = 0.0.0.0:10025, [::]:10025\n", FW_BACKEND_NFT, 0,
	    NFT_HEAD NAT_CHAIN
	    "\t\tiifname != \"lo\" meta nfproto ipv4 tcp dport 25 redirect to :10025\n"
	    "\t\tiifname != \"lo\" meta nfproto ipv6 tcp dport 25 redirect to :10025\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ALL_ROUTING);
	got = tf_up("listen = 0.0.0.0:10025, [::]:10025\n", FW_BACKEND_NFT, 0, &p);
	assert_int_equal(p->nnotes, 0);
	free(got);
	free(p);

	tf_up_eq("listen = 0.0.0.0:10025, [::]:10025\n", FW_BACKEND_IPTABLES, 0,
	    MK_CHAIN("iptables", "nat")
	    "iptables -w -t nat -A SMTPWALL ! -i lo -p tcp --dport 25 -j REDIRECT --to-ports 10025\n"
	    JUMP("iptables", "nat")
	    MK_CHAIN("ip6tables", "nat")
	    "ip6tables -w -t nat -A SMTPWALL ! -i lo -p tcp --dport 25 -j REDIRECT --to-ports 10025\n"
	    JUMP("ip6tables", "nat")
	    RM_NFT
	    RM_CHAIN("iptables", "raw") RM_CHAIN("iptables", "mangle")
	    RM_CHAIN("ip6tables", "raw") RM_CHAIN("ip6tables", "mangle")
	    RM_ALL_ROUTING);
}

/* Specific listen addresses: DNAT, not REDIRECT; named interfaces: a set in nft, one rule each in iptables. */
static void
test_fw_redirect_specific_addresses_and_interfaces(void **state)
{
	const char *conf = "listen = 192.0.2.1:10025, [2001:db8::1]:10026\n"
	    "interfaces = eth0, eth1\n";

	(void)state;
	tf_up_eq(conf, FW_BACKEND_NFT, 0,
	    NFT_HEAD NAT_CHAIN
	    "\t\tiifname { \"eth0\", \"eth1\" } meta nfproto ipv4 tcp dport 25 dnat ip to 192.0.2.1:10025\n"
	    "\t\tiifname { \"eth0\", \"eth1\" } meta nfproto ipv6 tcp dport 25 dnat ip6 to [2001:db8::1]:10026\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ALL_ROUTING);
	tf_up_eq(conf, FW_BACKEND_IPTABLES, 0,
	    MK_CHAIN("iptables", "nat")
	    "iptables -w -t nat -A SMTPWALL -i eth0 -p tcp --dport 25 -j DNAT --to-destination 192.0.2.1:10025\n"
	    "iptables -w -t nat -A SMTPWALL -i eth1 -p tcp --dport 25 -j DNAT --to-destination 192.0.2.1:10025\n"
	    JUMP("iptables", "nat")
	    MK_CHAIN("ip6tables", "nat")
	    "ip6tables -w -t nat -A SMTPWALL -i eth0 -p tcp --dport 25 -j DNAT --to-destination '[2001:db8::1]:10026'\n"
	    "ip6tables -w -t nat -A SMTPWALL -i eth1 -p tcp --dport 25 -j DNAT --to-destination '[2001:db8::1]:10026'\n"
	    JUMP("ip6tables", "nat")
	    RM_NFT
	    RM_CHAIN("iptables", "raw") RM_CHAIN("iptables", "mangle")
	    RM_CHAIN("ip6tables", "raw") RM_CHAIN("ip6tables", "mangle")
	    RM_ALL_ROUTING);
	/* One interface: no set. */
	tf_up_eq("interfaces = eth0\n", FW_BACKEND_NFT, 0,
	    NFT_HEAD NAT_CHAIN
	    "\t\tiifname \"eth0\" meta nfproto ipv4 tcp dport 25 redirect to :10025\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ALL_ROUTING);
}

/* The first listener of a family is the one the rules name. */
static void
test_fw_first_listener_of_each_family(void **state)
{
	char *got;

	(void)state;
	got = tf_up("listen = [::]:10027, 192.0.2.1:10025, 0.0.0.0:10026\n", FW_BACKEND_NFT, 0, NULL);
	assert_non_null(strstr(got, "meta nfproto ipv4 tcp dport 25 dnat ip to 192.0.2.1:10025\n"));
	assert_non_null(strstr(got, "meta nfproto ipv6 tcp dport 25 redirect to :10027\n"));
	assert_null(strstr(got, "10026"));
	free(got);
}

/* ---- tproxy ------------------------------------------------------------------- */

static void
test_fw_tproxy(void **state)
{
	const char *conf = "mode = tproxy\nlisten = 0.0.0.0:10025, [2001:db8::1]:10025\n";

	(void)state;
	tf_up_eq(conf, FW_BACKEND_NFT, 0,
	    ADD_ROUTING("ip", "0.0.0.0/0") ADD_ROUTING("ip -6", "::/0")
	    NFT_HEAD TPROXY_CHAIN
	    "\t\tiifname != \"lo\" meta nfproto ipv4 tcp dport 25 tproxy ip to :10025 meta mark set 0x2525 accept\n"
	    "\t\tiifname != \"lo\" meta nfproto ipv6 tcp dport 25 tproxy ip6 to [2001:db8::1]:10025 meta mark set 0x2525 accept\n"
	    NFT_TAIL
	    RM_ALL_CHAINS);
	tf_up_eq(conf, FW_BACKEND_IPTABLES, 0,
	    ADD_ROUTING("ip", "0.0.0.0/0") ADD_ROUTING("ip -6", "::/0")
	    MK_CHAIN("iptables", "mangle")
	    "iptables -w -t mangle -A SMTPWALL -p tcp -m socket --transparent -j MARK --set-mark 0x2525\n"
	    "iptables -w -t mangle -A SMTPWALL -p tcp -m socket --transparent -j ACCEPT\n"
	    "iptables -w -t mangle -A SMTPWALL ! -i lo -p tcp --dport 25 -j TPROXY --on-port 10025 "
	    "--tproxy-mark 0x2525/0xffffffff\n"
	    JUMP("iptables", "mangle")
	    MK_CHAIN("ip6tables", "mangle")
	    "ip6tables -w -t mangle -A SMTPWALL -p tcp -m socket --transparent -j MARK --set-mark 0x2525\n"
	    "ip6tables -w -t mangle -A SMTPWALL -p tcp -m socket --transparent -j ACCEPT\n"
	    "ip6tables -w -t mangle -A SMTPWALL ! -i lo -p tcp --dport 25 -j TPROXY --on-port 10025 "
	    "--on-ip 2001:db8::1 --tproxy-mark 0x2525/0xffffffff\n"
	    JUMP("ip6tables", "mangle")
	    RM_NFT
	    RM_CHAIN("iptables", "raw") RM_CHAIN("iptables", "nat")
	    RM_CHAIN("ip6tables", "raw") RM_CHAIN("ip6tables", "nat"));
}

/* The ip6tables TPROXY rule carries a hint: some kernels' ip6tables lack the target. */
static void
test_fw_tproxy_ip6tables_hint(void **state)
{
	struct fw_plan *p;
	unsigned i, hints = 0;
	char *got;

	(void)state;
	got = tf_up("mode = tproxy\nlisten = 0.0.0.0:10025, [::]:10025\n", FW_BACKEND_IPTABLES, 0, &p);
	for (i = 0; i < p->nsteps; i++) {
		if (p->steps[i].hint == NULL)
			continue;
		hints++;
		assert_string_equal(fw_plan_argv(p, p->steps[i].cmd[0])[0], "ip6tables");
		assert_non_null(strstr(p->steps[i].hint, "--backend nft"));
		assert_non_null(strstr(p->steps[i].what, "TPROXY"));
	}
	assert_int_equal(hints, 1);
	free(got);
	free(p);
}

/* IPv4 only: no IPv6 rule, no IPv6 policy routing (and any left from before is removed). */
static void
test_fw_tproxy_v4_only(void **state)
{
	struct fw_plan *p;
	char *got;

	(void)state;
	tf_up_eq("mode = tproxy\nlisten = 192.0.2.1:10025\ninterfaces = eth0\n", FW_BACKEND_NFT, 0,
	    ADD_ROUTING("ip", "0.0.0.0/0")
	    NFT_HEAD TPROXY_CHAIN
	    "\t\tiifname \"eth0\" meta nfproto ipv4 tcp dport 25 tproxy ip to 192.0.2.1:10025 meta mark set 0x2525 accept\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ROUTING("ip -6", "::/0"));
	got = tf_up("mode = tproxy\nlisten = 192.0.2.1:10025\n", FW_BACKEND_NFT, 0, &p);
	assert_int_equal(p->nnotes, 1);
	assert_string_equal(p->notes[0], "no IPv6 listener in listen: IPv6 port 25 is not intercepted");
	free(got);
	free(p);
}

static void
test_fw_v6_only(void **state)
{
	struct fw_plan *p;
	char *got;

	(void)state;
	tf_up_eq("listen = [::]:10025\n", FW_BACKEND_IPTABLES, 0,
	    MK_CHAIN("ip6tables", "nat")
	    "ip6tables -w -t nat -A SMTPWALL ! -i lo -p tcp --dport 25 -j REDIRECT --to-ports 10025\n"
	    JUMP("ip6tables", "nat")
	    RM_NFT
	    RM_CHAIN("iptables", "raw") RM_CHAIN("iptables", "nat") RM_CHAIN("iptables", "mangle")
	    RM_CHAIN("ip6tables", "raw") RM_CHAIN("ip6tables", "mangle")
	    RM_ALL_ROUTING);
	got = tf_up("listen = [::]:10025\n", FW_BACKEND_NFT, 0, &p);
	assert_int_equal(p->nnotes, 1);
	assert_string_equal(p->notes[0], "no IPv4 listener in listen: IPv4 port 25 is not intercepted");
	free(got);
	free(p);
}

/* ---- nfqueue ------------------------------------------------------------------- */

/* A single queue, fail open: bypass; the redirect takes only the daemon's mark. */
static void
test_fw_nfqueue_single_open(void **state)
{
	const char *conf = "listen = 0.0.0.0:10025, [::]:10025\nnfqueue = 3\nnfqueue_fail = open\n";

	(void)state;
	tf_up_eq(conf, FW_BACKEND_NFT, 0,
	    NFT_HEAD
	    "\tchain syn_queue {\n"
	    "\t\ttype filter hook prerouting priority raw; policy accept;\n"
	    "\t\tiifname != \"lo\" tcp dport 25 tcp flags & (fin|syn|rst|ack) == syn queue num 3 bypass\n"
	    "\t}\n"
	    NAT_CHAIN
	    "\t\tiifname != \"lo\" meta nfproto ipv4 tcp dport 25 meta mark 0x2525 redirect to :10025\n"
	    "\t\tiifname != \"lo\" meta nfproto ipv6 tcp dport 25 meta mark 0x2525 redirect to :10025\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ALL_ROUTING);
	tf_up_eq(conf, FW_BACKEND_IPTABLES, 0,
	    MK_CHAIN("iptables", "raw")
	    "iptables -w -t raw -A SMTPWALL ! -i lo -p tcp --syn --dport 25 -j NFQUEUE --queue-num 3 --queue-bypass\n"
	    JUMP("iptables", "raw")
	    MK_CHAIN("iptables", "nat")
	    "iptables -w -t nat -A SMTPWALL ! -i lo -p tcp --dport 25 -m mark --mark 0x2525 -j REDIRECT --to-ports 10025\n"
	    JUMP("iptables", "nat")
	    MK_CHAIN("ip6tables", "raw")
	    "ip6tables -w -t raw -A SMTPWALL ! -i lo -p tcp --syn --dport 25 -j NFQUEUE --queue-num 3 --queue-bypass\n"
	    JUMP("ip6tables", "raw")
	    MK_CHAIN("ip6tables", "nat")
	    "ip6tables -w -t nat -A SMTPWALL ! -i lo -p tcp --dport 25 -m mark --mark 0x2525 -j REDIRECT --to-ports 10025\n"
	    JUMP("ip6tables", "nat")
	    RM_NFT
	    RM_CHAIN("iptables", "mangle") RM_CHAIN("ip6tables", "mangle")
	    RM_ALL_ROUTING);
}

/* A range, fail closed: no bypass; nft without nft_queue: the queue rule alone goes to iptables. */
static void
test_fw_nfqueue_range_closed(void **state)
{
	const char *conf = "listen = 0.0.0.0:10025, [::]:10025\nnfqueue = 0-1\nnfqueue_fail = closed\n";
	struct fw_plan *p;
	char *got;

	(void)state;
	tf_up_eq(conf, FW_BACKEND_NFT, 0,
	    NFT_HEAD
	    "\tchain syn_queue {\n"
	    "\t\ttype filter hook prerouting priority raw; policy accept;\n"
	    "\t\tiifname != \"lo\" tcp dport 25 tcp flags & (fin|syn|rst|ack) == syn queue num 0-1\n"
	    "\t}\n"
	    NAT_CHAIN
	    "\t\tiifname != \"lo\" meta nfproto ipv4 tcp dport 25 meta mark 0x2525 redirect to :10025\n"
	    "\t\tiifname != \"lo\" meta nfproto ipv6 tcp dport 25 meta mark 0x2525 redirect to :10025\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ALL_ROUTING);
	tf_up_eq(conf, FW_BACKEND_NFT, 1,
	    NFT_HEAD NAT_CHAIN
	    "\t\tiifname != \"lo\" meta nfproto ipv4 tcp dport 25 meta mark 0x2525 redirect to :10025\n"
	    "\t\tiifname != \"lo\" meta nfproto ipv6 tcp dport 25 meta mark 0x2525 redirect to :10025\n"
	    NFT_TAIL
	    MK_CHAIN("iptables", "raw")
	    "iptables -w -t raw -A SMTPWALL ! -i lo -p tcp --syn --dport 25 -j NFQUEUE --queue-balance 0:1\n"
	    JUMP("iptables", "raw")
	    MK_CHAIN("ip6tables", "raw")
	    "ip6tables -w -t raw -A SMTPWALL ! -i lo -p tcp --syn --dport 25 -j NFQUEUE --queue-balance 0:1\n"
	    JUMP("ip6tables", "raw")
	    RM_CHAIN("iptables", "nat") RM_CHAIN("iptables", "mangle")
	    RM_CHAIN("ip6tables", "nat") RM_CHAIN("ip6tables", "mangle")
	    RM_ALL_ROUTING);
	got = tf_up(conf, FW_BACKEND_NFT, 1, &p);
	assert_int_equal(p->nnotes, 1);
	assert_non_null(strstr(p->notes[0], "nft cannot load a queue rule"));
	assert_non_null(strstr(p->notes[0], "iptables (table raw, chain SMTPWALL)"));
	free(got);
	free(p);
}

/* nfqueue with tproxy, IPv4 only, interfaces: queue and TPROXY rules per interface, mark condition. */
static void
test_fw_nfqueue_tproxy_v4_interfaces(void **state)
{
	const char *conf = "mode = tproxy\nlisten = 192.0.2.1:10025\ninterfaces = eth0 eth1\n"
	    "nfqueue = 2-5\n";

	(void)state;
	tf_up_eq(conf, FW_BACKEND_NFT, 0,
	    ADD_ROUTING("ip", "0.0.0.0/0")
	    NFT_HEAD
	    "\tchain syn_queue {\n"
	    "\t\ttype filter hook prerouting priority raw; policy accept;\n"
	    "\t\tiifname { \"eth0\", \"eth1\" } meta nfproto ipv4 tcp dport 25 "
	    "tcp flags & (fin|syn|rst|ack) == syn queue num 2-5 bypass\n"
	    "\t}\n"
	    TPROXY_CHAIN
	    "\t\tiifname { \"eth0\", \"eth1\" } meta nfproto ipv4 tcp dport 25 meta mark 0x2525 "
	    "tproxy ip to 192.0.2.1:10025 meta mark set 0x2525 accept\n"
	    NFT_TAIL
	    RM_ALL_CHAINS RM_ROUTING("ip -6", "::/0"));
	tf_up_eq(conf, FW_BACKEND_IPTABLES, 0,
	    ADD_ROUTING("ip", "0.0.0.0/0")
	    MK_CHAIN("iptables", "raw")
	    "iptables -w -t raw -A SMTPWALL -i eth0 -p tcp --syn --dport 25 -j NFQUEUE --queue-balance 2:5 --queue-bypass\n"
	    "iptables -w -t raw -A SMTPWALL -i eth1 -p tcp --syn --dport 25 -j NFQUEUE --queue-balance 2:5 --queue-bypass\n"
	    JUMP("iptables", "raw")
	    MK_CHAIN("iptables", "mangle")
	    "iptables -w -t mangle -A SMTPWALL -p tcp -m socket --transparent -j MARK --set-mark 0x2525\n"
	    "iptables -w -t mangle -A SMTPWALL -p tcp -m socket --transparent -j ACCEPT\n"
	    "iptables -w -t mangle -A SMTPWALL -i eth0 -p tcp --dport 25 -m mark --mark 0x2525 -j TPROXY "
	    "--on-port 10025 --on-ip 192.0.2.1 --tproxy-mark 0x2525/0xffffffff\n"
	    "iptables -w -t mangle -A SMTPWALL -i eth1 -p tcp --dport 25 -m mark --mark 0x2525 -j TPROXY "
	    "--on-port 10025 --on-ip 192.0.2.1 --tproxy-mark 0x2525/0xffffffff\n"
	    JUMP("iptables", "mangle")
	    RM_NFT
	    RM_CHAIN("iptables", "nat")
	    RM_CHAIN("ip6tables", "raw") RM_CHAIN("ip6tables", "nat") RM_CHAIN("ip6tables", "mangle")
	    RM_ROUTING("ip -6", "::/0"));
}

/* What the runner gets: real argvs, NULL-terminated; the nft script on stdin. */
static void
test_fw_plan_argv(void **state)
{
	static const char *const want[] = { "iptables", "-w", "-t", "raw", "-A", "SMTPWALL", "!", "-i",
	    "lo", "-p", "tcp", "--syn", "--dport", "25", "-j", "NFQUEUE", "--queue-num", "0", NULL };
	struct fw_plan *p;
	char *got;
	unsigned i, j;
	int seen = 0;

	(void)state;
	got = tf_up("nfqueue = 0\nnfqueue_fail = closed\n", FW_BACKEND_IPTABLES, 0, &p);
	for (i = 0; i < p->nsteps; i++) {
		char *const *a;

		if (p->steps[i].kind != FW_STEP_RUN || p->steps[i].cmd[0] == -1)
			continue;
		a = fw_plan_argv(p, p->steps[i].cmd[0]);
		if (strcmp(a[4], "-A") != 0 || strcmp(a[3], "raw") != 0)
			continue;
		for (j = 0; want[j] != NULL; j++)
			assert_string_equal(a[j], want[j]);
		assert_null(a[j]);
		assert_null(p->steps[i].input);
		assert_string_equal(p->steps[i].what, "iptables -t raw: adding the NFQUEUE rule");
		seen++;
	}
	assert_int_equal(seen, 1);
	free(got);
	free(p);

	got = tf_up("", FW_BACKEND_NFT, 0, &p);
	assert_int_equal(p->steps[0].kind, FW_STEP_RUN);
	assert_string_equal(fw_plan_argv(p, p->steps[0].cmd[0])[0], "nft");
	assert_string_equal(fw_plan_argv(p, p->steps[0].cmd[0])[1], "-f");
	assert_string_equal(fw_plan_argv(p, p->steps[0].cmd[0])[2], "-");
	assert_null(fw_plan_argv(p, p->steps[0].cmd[0])[3]);
	assert_non_null(p->steps[0].input);
	assert_true(strncmp(p->steps[0].input, "add table inet smtpwall\ndelete table inet smtpwall\n",
	    51) == 0);
	free(got);
	free(p);
}

/* ---- errors ------------------------------------------------------------------- */

static void
test_fw_loopback_listen_is_an_error(void **state)
{
	(void)state;
	tf_up_err("listen = 127.0.0.1:10025\n",
	    "t.conf: listen = 127.0.0.1:10025: a loopback address cannot receive connections "
	    "redirected from other interfaces: listen on 0.0.0.0:10025 or on an address of this "
	    "host's interfaces");
	tf_up_err("listen = 0.0.0.0:10025, 127.0.0.53:2525\n",
	    "t.conf: listen = 127.0.0.53:2525: a loopback address cannot receive connections "
	    "redirected from other interfaces: listen on 0.0.0.0:2525 or on an address of this "
	    "host's interfaces");
	tf_up_err("mode = tproxy\nlisten = [::1]:10025\n",
	    "t.conf: listen = [::1]:10025: a loopback address cannot receive connections "
	    "redirected from other interfaces: listen on [::]:10025 or on an address of this "
	    "host's interfaces");
	tf_up_err("listen = [::ffff:192.0.2.1]:10025\n",
	    "t.conf: listen = [::ffff:192.0.2.1]:10025: an IPv4-mapped address: write the IPv4 "
	    "address (e.g. 0.0.0.0:10025) so that IPv4 port 25 is sent there");
}

/* ---- down --------------------------------------------------------------------- */

static void
test_fw_down_plan(void **state)
{
	struct fw_plan *p = fw_plan_new();
	const char *want = RM_NFT RM_ALL_CHAINS RM_ALL_ROUTING;
	unsigned i;
	char *got;

	(void)state;
	assert_non_null(p);
	assert_int_equal(fw_plan_down(p), 0);
	got = tf_print(p);
	if (strcmp(got, want) != 0)
		fail_msg("down:\n--- got\n%s--- want\n%s", got, want);
	/* Only removal steps, each guarded by its check: absent pieces are no error. */
	for (i = 0; i < p->nsteps; i++) {
		assert_int_equal(p->steps[i].kind, FW_STEP_REMOVE);
		assert_int_not_equal(p->steps[i].check, -1);
	}
	assert_int_equal(p->nnotes, 0);
	free(got);
	free(p);
}

/* The same plan twice from a reset plan: nothing left over from the first. */
static void
test_fw_plan_reset(void **state)
{
	struct fw_plan *p = fw_plan_new();
	char *a, *b;

	(void)state;
	assert_non_null(p);
	assert_int_equal(fw_plan_down(p), 0);
	a = tf_print(p);
	fw_plan_reset(p);
	assert_int_equal(fw_plan_down(p), 0);
	b = tf_print(p);
	assert_string_equal(a, b);
	free(a);
	free(b);
	free(p);
}

/* ---- probe, backend names ----------------------------------------------------- */

static void
test_fw_probe_script(void **state)
{
	struct config cf;
	char buf[1024];

	(void)state;
	tf_config(&cf, "nfqueue = 0-1\nnfqueue_fail = closed\n");
	assert_int_equal(fw_probe_script(&cf, buf, sizeof buf), 0);
	assert_string_equal(buf,
	    "table inet smtpwall_probe {\n"
	    "\tchain syn_queue {\n"
	    "\t\ttype filter hook prerouting priority raw; policy accept;\n"
	    "\t\ttcp dport 25 tcp flags & (fin|syn|rst|ack) == syn queue num 0-1\n"
	    "\t}\n}\n");
	assert_int_equal(fw_probe_script(&cf, buf, 20), -1);
	config_free(&cf);
	tf_config(&cf, "");
	assert_int_equal(fw_probe_script(&cf, buf, sizeof buf), -1);
	config_free(&cf);
}

static void
test_fw_backend_names(void **state)
{
	enum fw_backend b;

	(void)state;
	assert_int_equal(fw_backend_parse("nft", &b), 0);
	assert_int_equal(b, FW_BACKEND_NFT);
	assert_int_equal(fw_backend_parse("iptables", &b), 0);
	assert_int_equal(b, FW_BACKEND_IPTABLES);
	assert_int_equal(fw_backend_parse("ipchains", &b), -1);
	assert_string_equal(fw_backend_name(FW_BACKEND_NFT), "nft");
	assert_string_equal(fw_backend_name(FW_BACKEND_IPTABLES), "iptables");
}

/* ---- the runner's parts that need no root -------------------------------------- */

static void
test_fw_run(void **state)
{
	char *cat[] = { "cat", NULL };
	char *sh[] = { "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	char *none[] = { "smtpwall-no-such-command-xyz", NULL };
	struct fw_res r;

	(void)state;
	assert_int_equal(fw_run(cat, "table inet x {\n}\n", &r), 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "table inet x {\n}\n");
	assert_string_equal(r.err, "");
	fw_res_free(&r);

	assert_int_equal(fw_run(sh, NULL, &r), 0);
	assert_int_equal(r.status, 3);
	assert_string_equal(r.out, "out\n");
	assert_string_equal(r.err, "err\n");
	fw_res_free(&r);

	assert_int_equal(fw_run(none, NULL, &r), 0);
	assert_int_equal(r.status, -1);
	assert_int_equal(r.exec_errno, ENOENT);
	fw_res_free(&r);
}

static void
test_fw_check_present(void **state)
{
	struct fw_step s = { .check_how = FW_CHECK_LINE,
	    .check_line = "from all fwmark 0x2525 lookup 2525" };
	struct fw_res r = { 0 };
	char out[256];

	(void)state;
	r.out = out;
	snprintf(out, sizeof out, "32765:\tfrom all fwmark 0x2525 lookup 2525 \n");
	r.outlen = strlen(out);
	assert_true(fw_check_present(&s, &r));
	/* ip rule show's filter also lists other masks and negations: not ours. */
	snprintf(out, sizeof out, "32764:\tfrom all fwmark 0x2525/0xff lookup 2525\n"
	    "32763:\tnot from all fwmark 0x2525 lookup 2525\n");
	r.outlen = strlen(out);
	assert_false(fw_check_present(&s, &r));
	r.status = 1;
	snprintf(out, sizeof out, "32765:\tfrom all fwmark 0x2525 lookup 2525\n");
	r.outlen = strlen(out);
	assert_false(fw_check_present(&s, &r));

	r.status = 0;
	s.check_how = FW_CHECK_OUTPUT;
	assert_true(fw_check_present(&s, &r));
	out[0] = '\0';
	r.outlen = 0;
	assert_false(fw_check_present(&s, &r));
	s.check_how = FW_CHECK_STATUS;
	assert_true(fw_check_present(&s, &r));
	r.status = -1;	/* could not run: absent */
	assert_false(fw_check_present(&s, &r));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fw_redirect_default),
		cmocka_unit_test(test_fw_redirect_dual_stack),
		cmocka_unit_test(test_fw_redirect_specific_addresses_and_interfaces),
		cmocka_unit_test(test_fw_first_listener_of_each_family),
		cmocka_unit_test(test_fw_tproxy),
		cmocka_unit_test(test_fw_tproxy_ip6tables_hint),
		cmocka_unit_test(test_fw_tproxy_v4_only),
		cmocka_unit_test(test_fw_v6_only),
		cmocka_unit_test(test_fw_nfqueue_single_open),
		cmocka_unit_test(test_fw_nfqueue_range_closed),
		cmocka_unit_test(test_fw_nfqueue_tproxy_v4_interfaces),
		cmocka_unit_test(test_fw_plan_argv),
		cmocka_unit_test(test_fw_loopback_listen_is_an_error),
		cmocka_unit_test(test_fw_down_plan),
		cmocka_unit_test(test_fw_plan_reset),
		cmocka_unit_test(test_fw_probe_script),
		cmocka_unit_test(test_fw_backend_names),
		cmocka_unit_test(test_fw_run),
		cmocka_unit_test(test_fw_check_present),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
