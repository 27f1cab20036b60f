/*
 * test_config: smtpwall.conf parsing (proxy/config.h): the default of every
 * key, every key with a good value, every kind of error with the exact
 * "FILE:LINE: message" an administrator reads, repeated keys, comments,
 * CRLF, file loading, and the shipped docs/smtpwall.conf.example.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proxy/config.h"

#define TEST_PATH	"t.conf"

/* Parse text over fresh defaults; returns the error count, *errs the messages (caller frees). */
static int
parse(struct config *cf, const char *text, char **errs)
{
	size_t errlen = 0;
	FILE *f;
	int n;

	*errs = NULL;
	f = open_memstream(errs, &errlen);
	assert_non_null(f);
	assert_int_equal(config_init(cf), 0);
	n = config_parse(cf, TEST_PATH, text, strlen(text), f);
	assert_int_equal(fclose(f), 0);
	return n;
}

/* The text must parse with no error at all. */
static void
parse_ok(struct config *cf, const char *text)
{
	char *errs;
	int n = parse(cf, text, &errs);

	if (n != 0)
		fail_msg("unexpected errors for \"%s\":\n%s", text, errs);
	assert_string_equal(errs, "");
	free(errs);
}

/* The text must give exactly one error, this one. */
static void
parse_err(const char *text, const char *want)
{
	struct config cf;
	char *errs;
	int n = parse(&cf, text, &errs);

	if (n != 1 || strcmp(errs, want) != 0)
		fail_msg("for \"%s\"\nwant (1 error): %sgot  (%d errors): %s", text, want, n, errs);
	free(errs);
	config_free(&cf);
}

static const char *
sa_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(sin6->sin6_port));
	}
	return buf;
}

static void
assert_listen(const struct config *cf, unsigned i, const char *want)
{
	char buf[80];

	assert_true(i < cf->nlisten);
	assert_string_equal(sa_text(&cf->listen[i], buf, sizeof(buf)), want);
	assert_int_equal(cf->listen_len[i], cf->listen[i].ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static void
assert_cidr(const struct rules_cidrset *s, size_t i, const char *want)
{
	char buf[64];

	assert_true(i < rules_cidrset_count(s));
	rules_cidr_format(rules_cidrset_get(s, i), buf, sizeof(buf));
	assert_string_equal(buf, want);
}

/* The verbs, space-separated, in order. */
static void
assert_commands(const struct config *cf, const char *want)
{
	char buf[CONFIG_MAX_COMMANDS * CONFIG_VERB_MAX] = "";
	unsigned i;

	for (i = 0; i < cf->ncommands; i++) {
		if (i > 0)
			strcat(buf, " ");
		strcat(buf, cf->commands[i]);
	}
	assert_string_equal(buf, want);
}

static void
assert_defaults(const struct config *cf)
{
	assert_int_equal(cf->nlisten, 1);
	assert_listen(cf, 0, "0.0.0.0:10025");
	assert_int_equal(cf->ninterfaces, 0);
	assert_int_equal(cf->mode, CONFIG_MODE_REDIRECT);
	assert_int_equal(cf->upstream_fixed, 0);
	assert_non_null(cf->local_domains);
	assert_int_equal(rules_domainset_count(cf->local_domains), 0);
	assert_non_null(cf->trusted_networks);
	assert_int_equal(rules_cidrset_count(cf->trusted_networks), 2);
	assert_cidr(cf->trusted_networks, 0, "127.0.0.0/8");
	assert_cidr(cf->trusted_networks, 1, "::1/128");
	assert_int_equal(cf->auth_relay, 1);
	assert_string_equal(cf->rules_file, "/var/lib/smtpwall/rules");
	assert_string_equal(cf->control_socket, "/run/smtpwall/control.sock");
	assert_string_equal(cf->control_group, "");
	assert_int_equal(cf->nfqueue_on, 0);
	assert_int_equal(cf->nfqueue_fail, CONFIG_NFQ_FAIL_OPEN);
	assert_int_equal(cf->client_rate, 0);
	assert_string_equal(cf->capture_dir, "/var/lib/smtpwall/captures");
	assert_string_equal(cf->capture_interface, "any");
	assert_int_equal(cf->capture_buffer, 4 * 1024 * 1024);
	assert_int_equal(cf->capture_max_files, 1000);
	assert_int_equal(cf->capture_max_bytes, 1024ULL * 1024 * 1024);
	assert_int_equal(cf->capture_redact, 1);
	assert_int_equal(cf->starttls, CONFIG_STARTTLS_STRIP);
	assert_int_equal(cf->xclient, 0);
	assert_int_equal(cf->max_sessions, 10000);
	assert_int_equal(cf->max_sessions_per_client, 50);
	assert_int_equal(cf->max_recipients, 100);
	assert_int_equal(cf->max_message_size, 52428800);
	assert_int_equal(cf->max_line_length, 2048);
	assert_commands(cf, "HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
	assert_int_equal(cf->bare_lf, CONFIG_BARE_LF_REJECT);
	assert_int_equal(cf->timeout_connect, 30);
	assert_int_equal(cf->timeout_idle, 300);
	assert_int_equal(cf->timeout_server, 600);
	assert_int_equal(cf->workers, 0);
	assert_int_equal(cf->shutdown_timeout, 30);
	assert_int_equal(cf->log_level, 2);
}

/* ---- defaults and good values ------------------------------------------ */

static void
test_config_defaults(void **state)
{
	struct config cf;

	(void)state;
	assert_int_equal(config_init(&cf), 0);
	assert_defaults(&cf);
	config_free(&cf);
	assert_null(cf.local_domains);
	assert_null(cf.trusted_networks);

	/* an empty file, or only comments, changes nothing */
	parse_ok(&cf, "");
	assert_defaults(&cf);
	config_free(&cf);
	parse_ok(&cf, "# nothing\n\n   \n\t# indented comment\n");
	assert_defaults(&cf);
	config_free(&cf);
}

static void
test_config_every_key_good_value(void **state)
{
	static const char text[] =
	    "listen = 192.0.2.1:25\n"
	    "interfaces = eth0, eth1.100\n"
	    "mode = tproxy\n"
	    "upstream = [2001:db8::25]:2525\n"
	    "local_domains = example.com .example.org [198.51.100.2]\n"
	    "trusted_networks = 192.0.2.0/24\n"
	    "auth_relay = no\n"
	    "rules_file = /etc/smtpwall/rules\n"
	    "control_socket = /run/sw.sock\n"
	    "control_group = smtpwall-adm\n"
	    "nfqueue = 3-7\n"
	    "nfqueue_fail = closed\n"
	    "client_rate = 30/min\n"
	    "capture_dir = /srv/captures\n"
	    "capture_interface = eth0\n"
	    "capture_buffer = 8M\n"
	    "capture_max_files = 20\n"
	    "capture_max_bytes = 2G\n"
	    "capture_redact = no\n"
	    "starttls = allow\n"
	    "xclient = on\n"
	    "max_sessions = 500\n"
	    "max_sessions_per_client = 5\n"
	    "max_recipients = 1\n"
	    "max_message_size = 10M\n"
	    "max_line_length = 512\n"
	    "commands = helo ehlo mail rcpt data quit\n"
	    "bare_lf = normalize\n"
	    "timeout_connect = 10\n"
	    "timeout_idle = 5m\n"
	    "timeout_server = 1h\n"
	    "workers = 4\n"
	    "shutdown_timeout = 45s\n"
	    "log_level = debug\n";
	struct config cf;
	char buf[80];

	(void)state;
	parse_ok(&cf, text);
	assert_int_equal(cf.nlisten, 1);
	assert_listen(&cf, 0, "192.0.2.1:25");
	assert_int_equal(cf.ninterfaces, 2);
	assert_string_equal(cf.interfaces[0], "eth0");
	assert_string_equal(cf.interfaces[1], "eth1.100");
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	assert_int_equal(cf.upstream_fixed, 1);
	assert_string_equal(sa_text(&cf.upstream, buf, sizeof(buf)), "[2001:db8::25]:2525");
	assert_int_equal(cf.upstream_len, sizeof(struct sockaddr_in6));
	assert_int_equal(rules_domainset_count(cf.local_domains), 3);
	assert_string_equal(rules_domainset_get(cf.local_domains, 0), "example.com");
	assert_string_equal(rules_domainset_get(cf.local_domains, 1), ".example.org");
	assert_string_equal(rules_domainset_get(cf.local_domains, 2), "[198.51.100.2]");
	assert_int_equal(rules_cidrset_count(cf.trusted_networks), 1);
	assert_cidr(cf.trusted_networks, 0, "192.0.2.0/24");
	assert_int_equal(cf.auth_relay, 0);
	assert_string_equal(cf.rules_file, "/etc/smtpwall/rules");
	assert_string_equal(cf.control_socket, "/run/sw.sock");
	assert_string_equal(cf.control_group, "smtpwall-adm");
	assert_int_equal(cf.nfqueue_on, 1);
	assert_int_equal(cf.nfqueue_first, 3);
	assert_int_equal(cf.nfqueue_last, 7);
	assert_int_equal(cf.nfqueue_fail, CONFIG_NFQ_FAIL_CLOSED);
	assert_int_equal(cf.client_rate, 30);
	assert_int_equal(cf.client_rate_per_s, 60);
	assert_string_equal(cf.capture_dir, "/srv/captures");
	assert_string_equal(cf.capture_interface, "eth0");
	assert_int_equal(cf.capture_buffer, 8 * 1024 * 1024);
	assert_int_equal(cf.capture_max_files, 20);
	assert_int_equal(cf.capture_max_bytes, 2ULL * 1024 * 1024 * 1024);
	assert_int_equal(cf.capture_redact, 0);
	assert_int_equal(cf.starttls, CONFIG_STARTTLS_ALLOW);
	assert_int_equal(cf.xclient, 1);
	assert_int_equal(cf.max_sessions, 500);
	assert_int_equal(cf.max_sessions_per_client, 5);
	assert_int_equal(cf.max_recipients, 1);
	assert_int_equal(cf.max_message_size, 10 * 1024 * 1024);
	assert_int_equal(cf.max_line_length, 512);
	assert_commands(&cf, "HELO EHLO MAIL RCPT DATA QUIT");
	assert_int_equal(cf.bare_lf, CONFIG_BARE_LF_NORMALIZE);
	assert_int_equal(cf.timeout_connect, 10);
	assert_int_equal(cf.timeout_idle, 300);
	assert_int_equal(cf.timeout_server, 3600);
	assert_int_equal(cf.workers, 4);
	assert_int_equal(cf.shutdown_timeout, 45);
	assert_int_equal(cf.log_level, 3);
	config_free(&cf);
}

static void
test_config_value_forms(void **state)
{
	struct config cf;
	char buf[80];

	(void)state;
	/* IPv4 and IPv6 listeners, commas and spaces mixed */
	parse_ok(&cf, "listen = 0.0.0.0:10025,[::]:10025   127.0.0.1:2525 , [::1]:1\n");
	assert_int_equal(cf.nlisten, 4);
	assert_listen(&cf, 0, "0.0.0.0:10025");
	assert_listen(&cf, 1, "[::]:10025");
	assert_listen(&cf, 2, "127.0.0.1:2525");
	assert_listen(&cf, 3, "[::1]:1");
	config_free(&cf);

	/* word values in any case, spacing around '=' optional */
	parse_ok(&cf, "mode=TProxy\nauth_relay =YES\nxclient= Off\nworkers = AUTO\n"
	    "upstream = 192.0.2.25:25\nnfqueue = 65535\nclient_rate = 5/s\n");
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	assert_int_equal(cf.auth_relay, 1);
	assert_int_equal(cf.xclient, 0);
	assert_int_equal(cf.workers, 0);
	assert_string_equal(sa_text(&cf.upstream, buf, sizeof(buf)), "192.0.2.25:25");
	assert_int_equal(cf.upstream_len, sizeof(struct sockaddr_in));
	assert_int_equal(cf.nfqueue_first, 65535);
	assert_int_equal(cf.nfqueue_last, 65535);
	assert_int_equal(cf.client_rate_per_s, 1);
	config_free(&cf);

	/* sizes: binary suffixes in any case, or plain bytes */
	parse_ok(&cf, "capture_buffer = 65536\ncapture_max_bytes = 1m\nmax_message_size = 4g\n"
	    "nfqueue = 0\nclient_rate = 100/h\n");
	assert_int_equal(cf.capture_buffer, 65536);
	assert_int_equal(cf.capture_max_bytes, 1024 * 1024);
	assert_int_equal(cf.max_message_size, 4ULL * 1024 * 1024 * 1024);
	assert_int_equal(cf.nfqueue_on, 1);
	assert_int_equal(cf.nfqueue_first, 0);
	assert_int_equal(cf.client_rate, 100);
	assert_int_equal(cf.client_rate_per_s, 3600);
	config_free(&cf);

	/* durations: the upper bound is 24h in any unit */
	parse_ok(&cf, "timeout_connect = 1\ntimeout_idle = 86400\ntimeout_server = 1440m\n"
	    "shutdown_timeout = 24h\nupstream = original\nnfqueue = off\nclient_rate = off\n"
	    "control_group = none\n");
	assert_int_equal(cf.timeout_connect, 1);
	assert_int_equal(cf.timeout_idle, 86400);
	assert_int_equal(cf.timeout_server, 86400);
	assert_int_equal(cf.shutdown_timeout, 86400);
	assert_int_equal(cf.upstream_fixed, 0);
	assert_int_equal(cf.nfqueue_on, 0);
	assert_int_equal(cf.client_rate, 0);
	assert_string_equal(cf.control_group, "");
	config_free(&cf);

	/* the longest control socket path that fits sun_path */
	{
		char text[200];
		char path[108];

		memset(path, 'a', sizeof(path) - 1);
		path[0] = '/';
		path[sizeof(path) - 1] = '\0';
		snprintf(text, sizeof(text), "control_socket = %s\n", path);
		parse_ok(&cf, text);
		assert_string_equal(cf.control_socket, path);
		config_free(&cf);
	}
}

/* ---- lists -------------------------------------------------------------- */

static void
test_config_list_keys_repeat(void **state)
{
	struct config cf;

	(void)state;
	/* first line replaces the default, later lines append */
	parse_ok(&cf,
	    "listen = [::]:10025\n"
	    "listen = 192.0.2.1:10025\n"
	    "trusted_networks = 10.0.0.0/8\n"
	    "trusted_networks = 2001:db8::/32, 192.0.2.7\n"
	    "commands = EHLO\n"
	    "commands = mail rcpt, data\n"
	    "local_domains = example.com\n"
	    "local_domains = .example.com\n"
	    "interfaces = eth0\n"
	    "interfaces = eth1 eth0\n");
	assert_int_equal(cf.nlisten, 2);
	assert_listen(&cf, 0, "[::]:10025");
	assert_listen(&cf, 1, "192.0.2.1:10025");
	assert_int_equal(rules_cidrset_count(cf.trusted_networks), 3);
	assert_cidr(cf.trusted_networks, 0, "10.0.0.0/8");
	assert_cidr(cf.trusted_networks, 1, "2001:db8::/32");
	assert_cidr(cf.trusted_networks, 2, "192.0.2.7/32");
	assert_commands(&cf, "EHLO MAIL RCPT DATA");
	assert_int_equal(rules_domainset_count(cf.local_domains), 2);
	assert_int_equal(cf.ninterfaces, 2);	/* eth0 once */
	assert_string_equal(cf.interfaces[1], "eth1");
	config_free(&cf);

	/* a repeated verb is stored once */
	parse_ok(&cf, "commands = QUIT quit Quit\n");
	assert_commands(&cf, "QUIT");
	config_free(&cf);
}

static void
test_config_trusted_networks_none_or_empty(void **state)
{
	struct config cf;

	(void)state;
	parse_ok(&cf, "trusted_networks = none\n");
	assert_int_equal(rules_cidrset_count(cf.trusted_networks), 0);
	config_free(&cf);

	parse_ok(&cf, "trusted_networks =\n");
	assert_int_equal(rules_cidrset_count(cf.trusted_networks), 0);
	config_free(&cf);

	/* "none" then a network: the network only */
	parse_ok(&cf, "trusted_networks = NONE\ntrusted_networks = 192.0.2.0/24\n");
	assert_int_equal(rules_cidrset_count(cf.trusted_networks), 1);
	assert_cidr(cf.trusted_networks, 0, "192.0.2.0/24");
	config_free(&cf);

	/* empty interfaces and local_domains are the empty list too */
	parse_ok(&cf, "interfaces =\nlocal_domains = none\n");
	assert_int_equal(cf.ninterfaces, 0);
	assert_int_equal(rules_domainset_count(cf.local_domains), 0);
	config_free(&cf);
}

static void
test_config_list_limits(void **state)
{
	char text[2048];
	size_t o = 0;
	struct config cf;
	int i;

	(void)state;
	o += (size_t)snprintf(text + o, sizeof(text) - o, "listen =");
	for (i = 0; i < CONFIG_MAX_LISTEN + 1; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, " 127.0.0.1:%d", 1000 + i);
	snprintf(text + o, sizeof(text) - o, "\n");
	parse_err(text, "t.conf:1: listen: more than 16 addresses\n");

	o = (size_t)snprintf(text, sizeof(text), "interfaces =");
	for (i = 0; i < 17; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, " eth%d", i);
	snprintf(text + o, sizeof(text) - o, "\n");
	parse_err(text, "t.conf:1: interfaces: more than 16 names\n");

	o = (size_t)snprintf(text, sizeof(text), "commands =");
	for (i = 0; i < CONFIG_MAX_COMMANDS + 1; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, " X%d", i);
	snprintf(text + o, sizeof(text) - o, "\n");
	parse_err(text, "t.conf:1: commands: more than 32 verbs\n");

	/* exactly the maximum is fine */
	o = (size_t)snprintf(text, sizeof(text), "commands =");
	for (i = 0; i < CONFIG_MAX_COMMANDS; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, " X%d", i);
	snprintf(text + o, sizeof(text) - o, "\n");
	parse_ok(&cf, text);
	assert_int_equal(cf.ncommands, CONFIG_MAX_COMMANDS);
	config_free(&cf);
}

/* ---- errors ------------------------------------------------------------- */

struct err_case {
	const char	*text;
	const char	*msg;		/* after "t.conf:1: " */
};

static const struct err_case err_cases[] = {
	/* the line itself */
	{ "lisen = 1", "unknown key 'lisen'" },
	{ "Listen = 0.0.0.0:25", "unknown key 'Listen'" },
	{ "mode", "missing '=' after key 'mode'" },
	{ "mode tproxy", "missing '=' after key 'mode'" },
	{ "= tproxy", "missing key before '='" },
	{ "mode = tproxy\x01", "control character \\x01 in the line" },
	/* listen, upstream */
	{ "listen = 1.2.3.4", "listen: bad address '1.2.3.4': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = ::1:25", "listen: bad address '::1:25': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = [::1]25", "listen: bad address '[::1]25': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = [192.0.2.1]:25", "listen: bad address '[192.0.2.1]:25': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = localhost:25", "listen: bad address 'localhost:25': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = 1.2.3.4:25x", "listen: bad address '1.2.3.4:25x': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = 1.2.3.4:+25", "listen: bad address '1.2.3.4:+25': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "listen = 0.0.0.0:0", "listen: port out of range in '0.0.0.0:0': expected 1..65535" },
	{ "listen = [::]:65536", "listen: port out of range in '[::]:65536': expected 1..65535" },
	{ "listen = 192.0.2.1:25, 192.0.2.1:25", "listen: '192.0.2.1:25' given twice" },
	{ "listen =", "missing value for listen: expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025" },
	{ "upstream = mail.example.com:25", "bad value 'mail.example.com:25' for upstream: expected original or IP:PORT, e.g. 192.0.2.25:25 or [2001:db8::25]:25 (no host names)" },
	{ "upstream = 192.0.2.25", "bad value '192.0.2.25' for upstream: expected original or IP:PORT, e.g. 192.0.2.25:25 or [2001:db8::25]:25 (no host names)" },
	{ "upstream = 192.0.2.25:70000", "upstream: port out of range in '192.0.2.25:70000': expected 1..65535" },
	/* names */
	{ "interfaces = a-very-long-name0", "interfaces: bad interface name 'a-very-long-name0': expected at most 15 letters, digits, '.', '_' or '-'" },
	{ "interfaces = eth0/1", "interfaces: bad interface name 'eth0/1': expected at most 15 letters, digits, '.', '_' or '-'" },
	{ "capture_interface =", "missing value for capture_interface: expected any or an interface name (at most 15 letters, digits, '.', '_' or '-')" },
	{ "control_group = -wheel", "bad value '-wheel' for control_group: expected none or a group name (letters, digits, '.', '_', '-'; at most 32)" },
	{ "control_group = mail admins", "bad value 'mail admins' for control_group: expected none or a group name (letters, digits, '.', '_', '-'; at most 32)" },
	/* words */
	{ "mode = bridge", "bad value 'bridge' for mode: expected redirect or tproxy" },
	{ "auth_relay = maybe", "bad value 'maybe' for auth_relay: expected yes or no" },
	{ "auth_relay =", "missing value for auth_relay: expected yes or no" },
	{ "capture_redact = 1", "bad value '1' for capture_redact: expected yes or no" },
	{ "nfqueue_fail = maybe", "bad value 'maybe' for nfqueue_fail: expected open or closed" },
	{ "starttls = on", "bad value 'on' for starttls: expected strip or allow" },
	{ "xclient = yes", "bad value 'yes' for xclient: expected on or off" },
	{ "bare_lf = fix", "bad value 'fix' for bare_lf: expected reject or normalize" },
	{ "log_level = verbose", "bad value 'verbose' for log_level: expected error, warning, info or debug" },
	/* paths */
	{ "rules_file = rules", "bad value 'rules' for rules_file: expected an absolute path, e.g. /var/lib/smtpwall/rules" },
	{ "capture_dir = /srv/my captures", "bad value '/srv/my captures' for capture_dir: expected an absolute path without spaces" },
	{ "control_socket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.s",
	    "control_socket: path too long (108 bytes; at most 107)" },
	/* nfqueue, client_rate */
	{ "nfqueue = 70000", "bad value '70000' for nfqueue: out of range, expected queue numbers 0..65535" },
	{ "nfqueue = 1-65536", "bad value '1-65536' for nfqueue: out of range, expected queue numbers 0..65535" },
	{ "nfqueue = 5-3", "nfqueue: range '5-3' is reversed: expected N-M with N <= M" },
	{ "nfqueue = 1-", "bad value '1-' for nfqueue: expected off, a queue number or a range N-M (0..65535)" },
	{ "nfqueue = on", "bad value 'on' for nfqueue: expected off, a queue number or a range N-M (0..65535)" },
	{ "nfqueue = -1", "bad value '-1' for nfqueue: expected off, a queue number or a range N-M (0..65535)" },
	{ "nfqueue = 0\nclient_rate = 30", "bad value '30' for client_rate: expected off or N/s, N/min or N/h, e.g. 30/min" },
	{ "nfqueue = 0\nclient_rate = 30/day", "bad value '30/day' for client_rate: expected off or N/s, N/min or N/h, e.g. 30/min" },
	{ "nfqueue = 0\nclient_rate = 0/min", "bad value '0/min' for client_rate: out of range, expected 1..1000000 connections per s, min or h" },
	/* sizes */
	{ "capture_buffer = 1K", "bad value '1K' for capture_buffer: out of range, expected 64K..1G" },
	{ "capture_buffer = 2G", "bad value '2G' for capture_buffer: out of range, expected 64K..1G" },
	{ "capture_buffer = 4X", "bad value '4X' for capture_buffer: expected a size in bytes with an optional K, M or G suffix, e.g. 4M" },
	{ "capture_buffer = 4MB", "bad value '4MB' for capture_buffer: expected a size in bytes with an optional K, M or G suffix, e.g. 4M" },
	{ "capture_buffer = -4M", "bad value '-4M' for capture_buffer: expected a size in bytes with an optional K, M or G suffix, e.g. 4M" },
	{ "capture_max_bytes = 99999999999999999999G", "bad value '99999999999999999999G' for capture_max_bytes: out of range, expected 1M..65536G" },
	{ "capture_max_bytes = 17179869184G", "bad value '17179869184G' for capture_max_bytes: out of range, expected 1M..65536G" },
	{ "max_message_size = 1K", "bad value '1K' for max_message_size: out of range, expected 64K..4G" },
	/* whole numbers */
	{ "capture_max_files = 0", "bad value '0' for capture_max_files: out of range, expected 1..1000000" },
	{ "max_sessions = 10k", "bad value '10k' for max_sessions: expected a whole number from 1 to 1000000" },
	{ "max_sessions = +5", "bad value '+5' for max_sessions: expected a whole number from 1 to 1000000" },
	{ "max_sessions = 0x10", "bad value '0x10' for max_sessions: expected a whole number from 1 to 1000000" },
	{ "max_sessions = 1 000", "bad value '1 000' for max_sessions: expected a whole number from 1 to 1000000" },
	{ "max_sessions =", "missing value for max_sessions: expected a whole number from 1 to 1000000" },
	{ "max_sessions_per_client = 0", "bad value '0' for max_sessions_per_client: out of range, expected 1..1000000" },
	{ "max_recipients = 0", "bad value '0' for max_recipients: out of range, expected 1..100000" },
	{ "max_recipients = 18446744073709551616", "bad value '18446744073709551616' for max_recipients: out of range, expected 1..100000" },
	{ "max_line_length = 511", "bad value '511' for max_line_length: out of range, expected 512..65536" },
	{ "max_line_length = 65537", "bad value '65537' for max_line_length: out of range, expected 512..65536" },
	{ "workers = 0", "bad value '0' for workers: out of range, expected auto or 1..64" },
	{ "workers = 65", "bad value '65' for workers: out of range, expected auto or 1..64" },
	{ "workers = many", "bad value 'many' for workers: expected auto or a number of threads from 1 to 64" },
	/* durations */
	{ "timeout_idle = 0", "bad value '0' for timeout_idle: out of range, expected 1..86400 seconds (24h)" },
	{ "timeout_server = 25h", "bad value '25h' for timeout_server: out of range, expected 1..86400 seconds (24h)" },
	{ "timeout_connect = 2d", "bad value '2d' for timeout_connect: expected seconds with an optional s, m or h suffix, e.g. 30, 5m or 1h" },
	{ "shutdown_timeout = -1", "bad value '-1' for shutdown_timeout: expected seconds with an optional s, m or h suffix, e.g. 30, 5m or 1h" },
	{ "shutdown_timeout = 30 s", "bad value '30 s' for shutdown_timeout: expected seconds with an optional s, m or h suffix, e.g. 30, 5m or 1h" },
	/* commands */
	{ "commands = EHLO XCLIENT", "commands: XCLIENT is never forwarded from clients; smtpwall speaks it to the server itself (see xclient)" },
	{ "commands = xforward", "commands: XFORWARD is never forwarded from clients; smtpwall speaks it to the server itself (see xclient)" },
	{ "commands = EHLO bdat", "commands: BDAT is not supported yet: CHUNKING is removed from the EHLO reply" },
	{ "commands = MAIL_FROM", "commands: bad verb 'MAIL_FROM': expected letters, digits or '-', at most 15" },
	{ "commands = ABCDEFGHIJKLMNOP", "commands: bad verb 'ABCDEFGHIJKLMNOP': expected letters, digits or '-', at most 15" },
	{ "commands =", "missing value for commands: expected SMTP verbs, e.g. HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH" },
	/* settings that conflict */
	{ "client_rate = 30/min", "client_rate needs nfqueue: connections are counted and dropped at their first packet in the queue" },
	/* repeated scalar */
	{ "mode = tproxy\nmode = tproxy", "'mode' given twice (first on line 1)" },
};

static void
test_config_error_messages(void **state)
{
	char text[512], want[512];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *c = &err_cases[i];
		unsigned line = 1;

		/* the error is on the last line of the case */
		for (n = 0; c->text[n] != '\0'; n++)
			line += c->text[n] == '\n';
		snprintf(text, sizeof(text), "%s\n", c->text);
		snprintf(want, sizeof(want), "t.conf:%u: %s\n", line, c->msg);
		parse_err(text, want);
	}
}

/* A NUL byte in the file: the parser takes a length, never stops at it. */
static void
test_config_nul_byte_is_an_error(void **state)
{
	static const char text[] = "mode = tp\0roxy\nauth_relay = no\n";
	struct config cf;
	char *errs;
	size_t errlen = 0;
	FILE *f = open_memstream(&errs, &errlen);
	int n;

	(void)state;
	assert_non_null(f);
	assert_int_equal(config_init(&cf), 0);
	n = config_parse(&cf, TEST_PATH, text, sizeof(text) - 1, f);
	fclose(f);
	assert_int_equal(n, 1);
	assert_string_equal(errs, "t.conf:1: control character \\x00 in the line\n");
	assert_int_equal(cf.auth_relay, 0);	/* the next line still counts */
	free(errs);
	config_free(&cf);
}

static void
test_config_messages_escape_file_bytes(void **state)
{
	char text[256], want[256];

	(void)state;
	snprintf(text, sizeof(text), "mode = \xc3\xa9t\xc3\xa9\n");
	snprintf(want, sizeof(want),
	    "t.conf:1: bad value '\\xc3\\xa9t\\xc3\\xa9' for mode: expected redirect or tproxy\n");
	parse_err(text, want);

	/* a long value is cut in the message */
	memset(want, 0, sizeof(want));
	snprintf(text, sizeof(text), "mode = %0200d\n", 0);
	{
		struct config cf;
		char *errs;

		assert_int_equal(parse(&cf, text, &errs), 1);
		assert_true(strlen(errs) < 200);
		assert_non_null(strstr(errs, "000...' for mode"));
		free(errs);
		config_free(&cf);
	}
}

static void
test_config_rules_errors_are_passed_on(void **state)
{
	struct config cf;
	char *errs;

	(void)state;
	/* the text after the key is the rules module's; check the frame and the value */
	assert_int_equal(parse(&cf, "trusted_networks = 10.0.0.1/8\n", &errs), 1);
	assert_true(strncmp(errs, "t.conf:1: trusted_networks: ", 28) == 0);
	assert_non_null(strstr(errs, "10.0.0.1/8"));
	free(errs);
	config_free(&cf);

	assert_int_equal(parse(&cf, "trusted_networks = 192.0.2.0/24 example.com\n", &errs), 1);
	assert_true(strncmp(errs, "t.conf:1: trusted_networks: ", 28) == 0);
	assert_non_null(strstr(errs, "example.com"));
	free(errs);
	config_free(&cf);

	assert_int_equal(parse(&cf, "local_domains = example.com, *.example.org\n", &errs), 1);
	assert_true(strncmp(errs, "t.conf:1: local_domains: ", 25) == 0);
	assert_non_null(strstr(errs, "*.example.org"));
	assert_int_equal(rules_domainset_count(cf.local_domains), 1);
	free(errs);
	config_free(&cf);
}

static void
test_config_several_errors_with_their_lines(void **state)
{
	static const char text[] =
	    "# smtpwall\n"					/* 1 */
	    "lisen = 0.0.0.0:25\n"				/* 2 */
	    "mode = tproxy\n"					/* 3 */
	    "\n"						/* 4 */
	    "auth_relay = maybe\n"				/* 5 */
	    "mode = redirect\n"					/* 6 */
	    "listen = 1.2.3.4, 0.0.0.0:10025, [::]:99999\n"	/* 7 */
	    "max_recipients = 0   # none at all?\n"		/* 8 */
	    "commands = EHLO XCLIENT BDAT\n"			/* 9 */
	    "timeout_idle\n";					/* 10 */
	static const char want[] =
	    "t.conf:2: unknown key 'lisen'\n"
	    "t.conf:5: bad value 'maybe' for auth_relay: expected yes or no\n"
	    "t.conf:6: 'mode' given twice (first on line 3)\n"
	    "t.conf:7: listen: bad address '1.2.3.4': expected IP:PORT, e.g. 0.0.0.0:10025 or [::]:10025\n"
	    "t.conf:7: listen: port out of range in '[::]:99999': expected 1..65535\n"
	    "t.conf:8: bad value '0' for max_recipients: out of range, expected 1..100000\n"
	    "t.conf:9: commands: XCLIENT is never forwarded from clients; smtpwall speaks it to the server itself (see xclient)\n"
	    "t.conf:9: commands: BDAT is not supported yet: CHUNKING is removed from the EHLO reply\n"
	    "t.conf:10: missing '=' after key 'timeout_idle'\n";
	struct config cf;
	char *errs;
	int n;

	(void)state;
	n = parse(&cf, text, &errs);
	assert_string_equal(errs, want);
	assert_int_equal(n, 9);
	/* the first value of a repeated scalar stands */
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	free(errs);
	config_free(&cf);
}

static void
test_config_comments_blank_lines_and_whitespace(void **state)
{
	static const char text[] =
	    "\n"
	    "# a comment line\n"
	    "   # an indented one\n"
	    "\t\n"
	    "mode = tproxy # trailing comment\n"
	    "\tauth_relay\t=\tno\t\n"
	    "local_domains = example.com# no space before it\n"
	    "max_recipients=7";		/* no final newline */
	struct config cf;

	(void)state;
	parse_ok(&cf, text);
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	assert_int_equal(cf.auth_relay, 0);
	assert_int_equal(rules_domainset_count(cf.local_domains), 1);
	assert_string_equal(rules_domainset_get(cf.local_domains, 0), "example.com");
	assert_int_equal(cf.max_recipients, 7);
	config_free(&cf);
}

static void
test_config_crlf_and_bom_tolerated(void **state)
{
	static const char text[] =
	    "\xef\xbb\xbf# written on Windows\r\n"
	    "mode = tproxy\r\n"
	    "\r\n"
	    "listen = [::]:10025, 0.0.0.0:10025\r\n"
	    "commands = EHLO MAIL RCPT DATA QUIT\r\n"
	    "auth_relay = no   # comment\r\n"
	    "bogus\r\n";
	struct config cf;
	char *errs;

	(void)state;
	assert_int_equal(parse(&cf, text, &errs), 1);
	assert_string_equal(errs, "t.conf:7: missing '=' after key 'bogus'\n");
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	assert_int_equal(cf.nlisten, 2);
	assert_listen(&cf, 1, "0.0.0.0:10025");
	assert_commands(&cf, "EHLO MAIL RCPT DATA QUIT");
	assert_int_equal(cf.auth_relay, 0);
	free(errs);
	config_free(&cf);
}

static void
test_config_realistic_file(void **state)
{
	static const char text[] =
	    "# /etc/smtpwall/smtpwall.conf on gw1.example.com\n"
	    "\n"
	    "listen = 0.0.0.0:10025, [::]:10025\n"
	    "interfaces = wan0 lan0\n"
	    "mode = tproxy\n"
	    "\n"
	    "# our domains and the office networks\n"
	    "local_domains = example.com, .example.com\n"
	    "local_domains = example.net [198.51.100.2]\n"
	    "trusted_networks = 127.0.0.0/8, ::1/128\n"
	    "trusted_networks = 192.0.2.0/24 2001:db8:10::/48\n"
	    "auth_relay = yes\n"
	    "control_group = mailadm\n"
	    "\n"
	    "nfqueue = 0-3\n"
	    "nfqueue_fail = open\n"
	    "client_rate = 60/min\n"
	    "\n"
	    "capture_dir = /var/lib/smtpwall/captures\n"
	    "capture_max_bytes = 512M\n"
	    "\n"
	    "starttls = strip\n"
	    "xclient = on\n"
	    "max_sessions = 20000\n"
	    "max_message_size = 25M\n"
	    "commands = HELO EHLO MAIL RCPT DATA RSET NOOP QUIT\n"
	    "commands = STARTTLS AUTH\n"
	    "bare_lf = normalize\n"
	    "timeout_server = 10m\n"
	    "workers = auto\n"
	    "log_level = info\n";
	struct config cf;

	(void)state;
	parse_ok(&cf, text);
	assert_int_equal(cf.nlisten, 2);
	assert_listen(&cf, 1, "[::]:10025");
	assert_int_equal(cf.ninterfaces, 2);
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	assert_int_equal(rules_domainset_count(cf.local_domains), 4);
	assert_int_equal(rules_cidrset_count(cf.trusted_networks), 4);
	assert_cidr(cf.trusted_networks, 3, "2001:db8:10::/48");
	assert_string_equal(cf.control_group, "mailadm");
	assert_int_equal(cf.nfqueue_first, 0);
	assert_int_equal(cf.nfqueue_last, 3);
	assert_int_equal(cf.client_rate, 60);
	assert_int_equal(cf.capture_max_bytes, 512ULL * 1024 * 1024);
	assert_int_equal(cf.xclient, 1);
	assert_int_equal(cf.max_sessions, 20000);
	assert_int_equal(cf.max_message_size, 25ULL * 1024 * 1024);
	assert_commands(&cf, "HELO EHLO MAIL RCPT DATA RSET NOOP QUIT STARTTLS AUTH");
	assert_int_equal(cf.bare_lf, CONFIG_BARE_LF_NORMALIZE);
	assert_int_equal(cf.timeout_server, 600);
	assert_int_equal(cf.workers, 0);
	/* untouched keys keep their defaults */
	assert_int_equal(cf.max_recipients, 100);
	assert_int_equal(cf.timeout_idle, 300);
	assert_string_equal(cf.rules_file, "/var/lib/smtpwall/rules");
	config_free(&cf);
}

static void
test_config_command_allowed_any_case(void **state)
{
	struct config cf;

	(void)state;
	assert_int_equal(config_init(&cf), 0);
	assert_int_equal(config_command_allowed(&cf, "RCPT", 4), 1);
	assert_int_equal(config_command_allowed(&cf, "rcpt", 4), 1);
	assert_int_equal(config_command_allowed(&cf, "StartTLS", 8), 1);
	assert_int_equal(config_command_allowed(&cf, "RCPT TO", 4), 1);	/* only len counts */
	assert_int_equal(config_command_allowed(&cf, "RCP", 3), 0);
	assert_int_equal(config_command_allowed(&cf, "RCPTX", 5), 0);
	assert_int_equal(config_command_allowed(&cf, "EXPN", 4), 0);
	assert_int_equal(config_command_allowed(&cf, "XCLIENT", 7), 0);
	assert_int_equal(config_command_allowed(&cf, "BDAT", 4), 0);
	assert_int_equal(config_command_allowed(&cf, "", 0), 0);
	config_free(&cf);

	parse_ok(&cf, "commands = ehlo etrn\n");
	assert_int_equal(config_command_allowed(&cf, "ETRN", 4), 1);
	assert_int_equal(config_command_allowed(&cf, "HELO", 4), 0);
	config_free(&cf);
}

/* ---- files -------------------------------------------------------------- */

static char test_dir[64];

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(test_dir, sizeof(test_dir), "/tmp/test_config.XXXXXX");
	return mkdtemp(test_dir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
	char p[128];

	(void)state;
	snprintf(p, sizeof(p), "%s/good.conf", test_dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/big.conf", test_dir);
	unlink(p);
	return rmdir(test_dir);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* config_load, its output captured; returns the error count. */
static int
load(struct config *cf, const char *path, char **errs)
{
	size_t errlen = 0;
	FILE *f = open_memstream(errs, &errlen);
	int n;

	assert_non_null(f);
	n = config_load(cf, path, f);
	assert_int_equal(fclose(f), 0);
	return n;
}

static void
test_config_load_files(void **state)
{
	char path[128], want[256];
	struct config cf;
	char *errs, *big;
	const size_t bigsz = 1024 * 1024 + 1;

	(void)state;
	snprintf(path, sizeof(path), "%s/good.conf", test_dir);
	write_file(path, "mode = tproxy\nbogus = 1\n", 24);
	assert_int_equal(load(&cf, path, &errs), 1);
	snprintf(want, sizeof(want), "%s:2: unknown key 'bogus'\n", path);
	assert_string_equal(errs, want);
	assert_string_equal(cf.path, path);
	assert_int_equal(cf.mode, CONFIG_MODE_TPROXY);
	free(errs);
	config_free(&cf);

	snprintf(path, sizeof(path), "%s/missing.conf", test_dir);
	assert_int_equal(load(&cf, path, &errs), 1);
	snprintf(want, sizeof(want), "%s: No such file or directory\n", path);
	assert_string_equal(errs, want);
	free(errs);
	config_free(&cf);

	assert_int_equal(load(&cf, test_dir, &errs), 1);
	snprintf(want, sizeof(want), "%s: Is a directory\n", test_dir);
	assert_string_equal(errs, want);
	free(errs);
	config_free(&cf);

	/* 1 MiB is the limit; one byte more is refused, whatever it holds */
	big = malloc(bigsz);
	assert_non_null(big);
	memset(big, '\n', bigsz);
	snprintf(path, sizeof(path), "%s/big.conf", test_dir);
	write_file(path, big, bigsz - 1);
	assert_int_equal(load(&cf, path, &errs), 0);
	free(errs);
	config_free(&cf);
	write_file(path, big, bigsz);
	assert_int_equal(load(&cf, path, &errs), 1);
	snprintf(want, sizeof(want), "%s: larger than 1 MiB: not a configuration file?\n", path);
	assert_string_equal(errs, want);
	free(errs);
	config_free(&cf);
	free(big);
}

/* docs/smtpwall.conf.example, found from this file's own path. */
static char *
read_example(void)
{
	static const char me[] = "tests/unit/test_config.c";
	const char *src = __FILE__;
	size_t n = strlen(src), cap = 65536, len;
	char path[4096], *text;
	FILE *f;

	assert_true(n >= strlen(me) && strcmp(src + n - strlen(me), me) == 0);
	snprintf(path, sizeof(path), "%.*sdocs/smtpwall.conf.example", (int)(n - strlen(me)), src);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("%s: %s (run the test from the top of the source tree)", path,
		    strerror(errno));
	text = malloc(cap);
	assert_non_null(text);
	len = fread(text, 1, cap - 1, f);
	assert_true(len < cap - 1);
	text[len] = '\0';
	fclose(f);
	return text;
}

static void
test_config_example_file_shows_every_default(void **state)
{
	static const char *const keys[] = {
		"listen", "interfaces", "mode", "upstream", "local_domains",
		"trusted_networks", "auth_relay", "rules_file", "control_socket",
		"control_group", "nfqueue", "nfqueue_fail", "client_rate", "capture_dir",
		"capture_interface", "capture_buffer", "capture_max_files",
		"capture_max_bytes", "capture_redact", "starttls", "xclient",
		"max_sessions", "max_sessions_per_client", "max_recipients",
		"max_message_size", "max_line_length", "commands", "bare_lf",
		"timeout_connect", "timeout_idle", "timeout_server", "workers",
		"shutdown_timeout", "log_level",
	};
	char *text = read_example(), *un, *p, *o;
	struct config cf;
	char needle[64];
	size_t i;

	(void)state;
	/* as shipped, everything commented out: the defaults */
	parse_ok(&cf, text);
	assert_defaults(&cf);
	config_free(&cf);

	/* each key appears once as a commented "#key = default" line */
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(needle, sizeof(needle), "\n#%s =", keys[i]);
		if (strstr(text, needle) == NULL)
			fail_msg("docs/smtpwall.conf.example lacks \"#%s = DEFAULT\"", keys[i]);
	}

	/* uncommented, those lines must give exactly the defaults again */
	un = malloc(strlen(text) + 1);
	assert_non_null(un);
	for (p = text, o = un; *p != '\0'; p++) {
		if (*p == '#' && (p == text || p[-1] == '\n') && p[1] >= 'a' && p[1] <= 'z')
			continue;
		*o++ = *p;
	}
	*o = '\0';
	parse_ok(&cf, un);
	assert_defaults(&cf);
	config_free(&cf);
	free(un);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_every_key_good_value),
		cmocka_unit_test(test_config_value_forms),
		cmocka_unit_test(test_config_list_keys_repeat),
		cmocka_unit_test(test_config_trusted_networks_none_or_empty),
		cmocka_unit_test(test_config_list_limits),
		cmocka_unit_test(test_config_error_messages),
		cmocka_unit_test(test_config_nul_byte_is_an_error),
		cmocka_unit_test(test_config_messages_escape_file_bytes),
		cmocka_unit_test(test_config_rules_errors_are_passed_on),
		cmocka_unit_test(test_config_several_errors_with_their_lines),
		cmocka_unit_test(test_config_comments_blank_lines_and_whitespace),
		cmocka_unit_test(test_config_crlf_and_bom_tolerated),
		cmocka_unit_test(test_config_realistic_file),
		cmocka_unit_test(test_config_command_allowed_any_case),
		cmocka_unit_test_setup_teardown(test_config_load_files, setup_dir, teardown_dir),
		cmocka_unit_test(test_config_example_file_shows_every_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
