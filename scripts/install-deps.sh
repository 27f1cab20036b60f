#!/bin/sh
# Install the Debian packages smtpwall needs to build and test, only those
# that are missing. Safe to run again. Needs root only when something is missing.
set -eu

PKGS="build-essential pkg-config libmnl-dev libnetfilter-queue-dev libpcap-dev libsystemd-dev
libcmocka-dev python3 python3-pytest python3-aiosmtpd swaks socat iproute2
iptables nftables tshark tcpdump postfix procps clang libclang-rt-14-dev openssl libnet-ssleay-perl
systemd man-db groff-base haproxy valgrind"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root (sudo make ...) to install them" >&2
	exit 1
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions at install time; answer them: no mail configuration,
# we only use its smtp-sink/smtp-source tools and our own per-test instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
# Packages with a daemon (postfix, haproxy) must not start one on this machine:
# the tests run their own instances in namespaces. Unless the machine already
# has a policy, deny service starts (policy-rc.d exit 101) for the install only.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\n# smtpwall install-deps: no service starts during the install\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
