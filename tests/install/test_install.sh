#!/bin/bash
# make install / make uninstall into scratch DESTDIRs, and the systemd units
# through systemd-analyze. No root needed (one tmpfiles step runs only as
# root). Run by `make check-install`; MAKE and BUILD come from the Makefile.
#
# systemd-analyze verify checks that the ExecStart= binaries exist, and
# --root= would need a whole systemd tree (sysinit.target, ...) in DESTDIR.
# So verify runs on copies of the INSTALLED units whose Exec*= paths alone
# point into DESTDIR (the test asserts that nothing else differs), with
# MANPATH at DESTDIR's man pages, so Documentation=man:...(N) is checked
# against the pages `make install` put there.
# `A && ok ... || bad ...`: ok only echoes, so bad runs exactly when A fails.
# shellcheck disable=SC2015
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
MAX_EXPOSURE=25          # systemd-analyze security --threshold: 10 x "Overall exposure level"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/smtpwall-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
nfail=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; nfail=$((nfail + 1)); }
skip() { echo "SKIP - $*"; }
mk()   { $MAKE -C "$top" --no-print-directory "$@"; }
pcvar() { pkg-config --variable="$1" systemd 2>/dev/null || true; }
files() { (cd "$1" && find . \( -type f -o -type l \) -printf '%P\n' | LC_ALL=C sort); }

unitdir=$(pcvar systemdsystemunitdir); unitdir=${unitdir:-/usr/lib/systemd/system}
tmpfilesdir=$(pcvar tmpfilesdir); tmpfilesdir=${tmpfilesdir:-/usr/lib/tmpfiles.d}
sysusersdir=$(pcvar sysusersdir); sysusersdir=${sysusersdir:-/usr/lib/sysusers.d}
unitdir=${unitdir#/}; tmpfilesdir=${tmpfilesdir#/}; sysusersdir=${sysusersdir#/}

# path mode [source to compare with]
declare -a expect=(
	"usr/sbin/smtpwalld 755 $BUILD/smtpwalld"
	"usr/sbin/smtpwallctl 755 $BUILD/smtpwallctl"
	"usr/sbin/smtpwall-firewall 755 $BUILD/smtpwall-firewall"
	"$unitdir/smtpwalld.service 644 systemd/smtpwalld.service"
	"$unitdir/smtpwall-firewall.service 644 systemd/smtpwall-firewall.service"
	"$tmpfilesdir/smtpwall.conf 644 systemd/smtpwall.tmpfiles"
	"$sysusersdir/smtpwall.conf 644 systemd/smtpwall.sysusers"
	"usr/share/doc/smtpwall/smtpwall.conf.example 644 docs/smtpwall.conf.example"
	"etc/smtpwall/smtpwall.conf 644 docs/smtpwall.conf.example"
)
for m in "$top"/docs/*.5 "$top"/docs/*.8; do
	[ -f "$m" ] || continue
	n=${m##*/}
	expect+=("usr/share/man/man${n##*.}/$n 644 docs/$n")
done

# ---- 1. install into an empty DESTDIR: exactly the expected files, modes, contents
D=$tmp/dest
mk install DESTDIR="$D" PREFIX=/usr >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; bad "make install DESTDIR PREFIX=/usr"; exit 1; }
ok "make install DESTDIR=... PREFIX=/usr"
printf '%s\n' "${expect[@]}" | cut -d' ' -f1 | LC_ALL=C sort >"$tmp/want"
files "$D" >"$tmp/got"
if diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
	ok "installed files are exactly the $(wc -l <"$tmp/want") expected ones"
else
	cat "$tmp/diff"; bad "installed files differ from the expected list (- expected, + installed)"
fi
for e in "${expect[@]}"; do
	read -r path mode src <<<"$e"
	[ -f "$D/$path" ] || continue
	got=$(stat -c %a "$D/$path")
	[ "$got" = "$mode" ] && ok "$path mode $mode" || bad "$path mode $got, want $mode"
	cmp -s "$D/$path" "$top/$src" && ok "$path = $src" || bad "$path differs from $src"
done
# Directories the admin sees: /etc/smtpwall 0755; /var/lib/smtpwall is not
# make's business (tmpfiles.d and StateDirectory= make it, owned by smtpwall).
[ "$(stat -c %a "$D/etc/smtpwall")" = 755 ] && ok "etc/smtpwall mode 755" || bad "etc/smtpwall mode"
[ ! -e "$D/var/lib/smtpwall" ] && ok "var/lib/smtpwall not made by make" || bad "var/lib/smtpwall made by make"

# The units and the tmpfiles/sysusers files agree with each other and with the
# daemon's defaults (smtpwall.conf.example).
U=$D/$unitdir/smtpwalld.service
F=$D/$unitdir/smtpwall-firewall.service
user=$(awk '$1 == "u" { print $2 }' "$D/$sysusersdir/smtpwall.conf")
grep -qx "User=$user" "$U" && grep -qx "Group=$user" "$U" && ok "unit User=/Group= = sysusers user $user" || bad "unit User= vs sysusers"
for k in rules_file capture_dir control_socket; do
	v=$(sed -n "s/^#$k = //p" "$top/docs/smtpwall.conf.example")
	case $k in
	rules_file)     want=$(dirname "$v"); grep -Eq "^d $want +0750 $user $user" "$D/$tmpfilesdir/smtpwall.conf" ;;
	capture_dir)    want=$v;              grep -Eq "^d $want +0750 $user $user" "$D/$tmpfilesdir/smtpwall.conf" ;;
	control_socket) want=$(dirname "$v"); [ "/run/$(sed -n 's/^RuntimeDirectory=//p' "$U")" = "$want" ] ;;
	esac && ok "$k default $v: $want provided" || bad "$k default $v: $want not provided by tmpfiles/RuntimeDirectory"
done
grep -qx 'Type=notify' "$U" && grep -qx 'Wants=smtpwall-firewall.service' "$U" &&
	grep -Eq '^After=.*smtpwall-firewall\.service' "$U" && ok "smtpwalld: Type=notify, Wants/After firewall" || bad "smtpwalld unit basics"
grep -qx 'Type=oneshot' "$F" && grep -qx 'RemainAfterExit=yes' "$F" && grep -Eq '^Before=.*smtpwalld\.service' "$F" &&
	ok "smtpwall-firewall: oneshot, RemainAfterExit, Before smtpwalld" || bad "smtpwall-firewall unit basics"

# ---- 2. a second install keeps the admin's configuration; uninstall leaves only it
echo "log_level = debug" >>"$D/etc/smtpwall/smtpwall.conf"
cp "$D/etc/smtpwall/smtpwall.conf" "$tmp/admin.conf"
mk install DESTDIR="$D" PREFIX=/usr >"$tmp/install2.log" 2>&1 || { cat "$tmp/install2.log"; bad "second make install"; }
cmp -s "$D/etc/smtpwall/smtpwall.conf" "$tmp/admin.conf" && grep -q 'exists: left as it is' "$tmp/install2.log" &&
	ok "second install keeps an existing smtpwall.conf, and says so" || bad "second install touched smtpwall.conf"
mk uninstall DESTDIR="$D" PREFIX=/usr >"$tmp/uninstall.log" 2>&1 || { cat "$tmp/uninstall.log"; bad "make uninstall"; }
if [ "$(files "$D")" = "etc/smtpwall/smtpwall.conf" ] && grep -q 'differs from the example: left in place' "$tmp/uninstall.log"; then
	ok "uninstall removes everything but the changed smtpwall.conf, and says so"
else
	files "$D"; bad "uninstall with a changed smtpwall.conf"
fi

# ---- 3. install + uninstall with the shipped configuration: nothing left but empty dirs
rm -f "$D/etc/smtpwall/smtpwall.conf"
mk install DESTDIR="$D" PREFIX=/usr >/dev/null 2>&1 && mk uninstall DESTDIR="$D" PREFIX=/usr >/dev/null 2>&1 ||
	bad "install + uninstall cycle"
if [ -z "$(files "$D")" ]; then ok "uninstall leaves no file behind"; else files "$D"; bad "uninstall left files"; fi
[ ! -e "$D/etc/smtpwall" ] && ok "uninstall removes the empty etc/smtpwall" || bad "etc/smtpwall still there"

# ---- 4. PREFIX=/usr/local: everything under it, and the units point there
L=$tmp/local
mk install DESTDIR="$L" PREFIX=/usr/local >/dev/null 2>&1 || bad "make install PREFIX=/usr/local"
lu=$L/usr/local/lib/systemd/system
if grep -qx 'ExecStart=/usr/local/sbin/smtpwalld -c /etc/smtpwall/smtpwall.conf' "$lu/smtpwalld.service" &&
   grep -qx 'ExecStart=/usr/local/sbin/smtpwall-firewall up -c /etc/smtpwall/smtpwall.conf' "$lu/smtpwall-firewall.service" &&
   ! grep -q '/usr/sbin/' "$lu/smtpwalld.service" "$lu/smtpwall-firewall.service" &&
   [ -x "$L/usr/local/sbin/smtpwalld" ] && [ -f "$L/usr/local/lib/tmpfiles.d/smtpwall.conf" ] &&
   [ -f "$L/usr/local/lib/sysusers.d/smtpwall.conf" ] && [ -f "$L/usr/local/share/man/man8/smtpwall-firewall.8" ] &&
   ! files "$L" | grep -q -v -e '^usr/local/' -e '^etc/smtpwall/smtpwall.conf$'; then
	ok "PREFIX=/usr/local: files under it, units' Exec paths rewritten"
else
	files "$L"; bad "PREFIX=/usr/local install"
fi
mk uninstall DESTDIR="$L" PREFIX=/usr/local >/dev/null 2>&1 || bad "make uninstall PREFIX=/usr/local"
[ -z "$(files "$L")" ] && ok "PREFIX=/usr/local: uninstall leaves no file behind" || { files "$L"; bad "PREFIX=/usr/local uninstall left files"; }

# ---- 5. systemd-analyze verify and security, on freshly installed units
mk install DESTDIR="$D" PREFIX=/usr >/dev/null 2>&1 || bad "make install (for systemd-analyze)"
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze not installed (apt-get install systemd): units not verified"
else
	V=$tmp/verify; mkdir -p "$V"
	for u in smtpwalld smtpwall-firewall; do
		sed -E "s#^(Exec[A-Za-z]*=[-@:+!]*)/usr/sbin/#\1$D/usr/sbin/#" "$D/$unitdir/$u.service" >"$V/$u.service"
		# The copy differs in Exec*= paths only.
		if diff "$D/$unitdir/$u.service" "$V/$u.service" | grep '^[<>]' | grep -Ev "^[<>] Exec[A-Za-z]*=" | grep -q .; then
			bad "$u.service: the verify copy differs beyond Exec*= lines"
		fi
	done
	if MANPATH=$D/usr/share/man systemd-analyze verify "$V/smtpwalld.service" "$V/smtpwall-firewall.service" \
	    >"$tmp/verify.log" 2>&1 && [ ! -s "$tmp/verify.log" ]; then
		ok "systemd-analyze verify: both units clean (binaries and man pages from DESTDIR)"
	else
		sed 's/^/    /' "$tmp/verify.log"; bad "systemd-analyze verify"
	fi
	for u in smtpwalld smtpwall-firewall; do
		out=$(systemd-analyze security --offline=yes --no-pager --threshold=$MAX_EXPOSURE \
		    "$D/$unitdir/$u.service" 2>&1) && rc=0 || rc=$?
		line=$(printf '%s\n' "$out" | grep 'Overall exposure level' || true)
		if [ "$rc" = 0 ] && [ -n "$line" ]; then
			ok "security: ${line#→ }"
		else
			printf '%s\n' "$out" | grep -F '✗' | sed 's/^/    /'
			bad "security: $u.service: ${line:-no score} (threshold $MAX_EXPOSURE/10)"
		fi
	done
	# sysusers.d and tmpfiles.d, applied to a scratch root.
	R=$tmp/root; mkdir -p "$R/etc"
	if systemd-sysusers --root="$R" "$D/$sysusersdir/smtpwall.conf" >/dev/null 2>&1 &&
	   grep -q "^$user:x:[0-9]*:[0-9]*:smtpwall SMTP proxy:/var/lib/smtpwall:" "$R/etc/passwd" &&
	   grep -q "^$user:x:" "$R/etc/group"; then
		ok "systemd-sysusers --root: user and group $user created"
	else
		bad "systemd-sysusers --root"
	fi
	if [ "$(id -u)" != 0 ]; then
		skip "systemd-tmpfiles --root (chown needs root)"
	elif systemd-tmpfiles --root="$R" --create "$D/$tmpfilesdir/smtpwall.conf" >"$tmp/tmpfiles.log" 2>&1 &&
	     uid=$(awk -F: -v u="$user" '$1 == u { print $3 }' "$R/etc/passwd") &&
	     [ "$(stat -c '%a %u' "$R/var/lib/smtpwall")" = "750 $uid" ] &&
	     [ "$(stat -c '%a %u' "$R/var/lib/smtpwall/captures")" = "750 $uid" ]; then
		ok "systemd-tmpfiles --root: var/lib/smtpwall and captures/ 0750 $user"
	else
		cat "$tmp/tmpfiles.log"; bad "systemd-tmpfiles --root"
	fi
fi
mk uninstall DESTDIR="$D" PREFIX=/usr >/dev/null 2>&1 || bad "final make uninstall"

# The man pages render without a warning (groff through man-db).
for page in "$top"/docs/*.[58]; do
	w=$(man --warnings -l "$page" 2>&1 >/dev/null || echo "man failed")
	[ -z "$w" ] && ok "man --warnings: $(basename "$page") clean" || { echo "$w"; bad "man --warnings: $(basename "$page")"; }
done

if [ $nfail -ne 0 ]; then
	echo "test_install: $nfail FAILED"
	exit 1
fi
echo "test_install: all passed"
