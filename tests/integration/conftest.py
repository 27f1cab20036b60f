"""pytest wiring for the namespace lab (see lab.py).

- Without root, or without the tools the lab needs, every test here is skipped
  with a loud reason (and a banner at the end of the run), never silently passed.
- `lab` is one lab per test module; a module lists the servers it needs in
  LAB_SERVERS. smtpwalld is (re)started per configuration, not per test.
- After every test, a smtpwalld that died (or reported a sanitizer error) fails
  that test's teardown, and a failing test gets the daemon's log tail attached.
"""
import os
import shutil

import pytest

import lab as labmod

TOOLS = ["ip", "nft", "iptables", "ip6tables", "swaks", "smtp-sink", "smtp-source", "postfix", "postcat",
         "openssl", labmod.PYTHON]
_active_labs = []


def _skip_reason():
    if os.geteuid() != 0:
        return ("INTEGRATION TESTS SKIPPED: they need root (network namespaces, netfilter); "
                "run `sudo make check-integration`")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    # The recorder runs under /usr/bin/python3, whatever runs pytest.
    if not os.path.isdir("/usr/lib/python3/dist-packages/aiosmtpd"):
        missing.append("python3-aiosmtpd")
    if missing:
        return "INTEGRATION TESTS SKIPPED: missing tools %s; run `sudo make deps`" % ", ".join(missing)
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: thousands of connections, a minute or so "
                            "(test_faults.py); run by make check, deselect with -m 'not slow'")


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    reason = _skip_reason()
    if reason:
        terminalreporter.write_sep("!", reason, red=True, bold=True)
    elif not labmod.daemon_path().exists():
        terminalreporter.write_sep("!", "smtpwalld not found at %s: proxy tests were SKIPPED"
                                   % labmod.daemon_path(), red=True, bold=True)


@pytest.fixture(scope="session")
def smtpwalld():
    path = labmod.daemon_path()
    if not os.access(path, os.X_OK):
        pytest.skip("SMTPWALLD NOT BUILT: %s does not exist (run `make`, or set SMTPWALL_BUILD)" % path)
    return path


@pytest.fixture(scope="session")
def firewall_tool():
    """build/smtpwall-firewall, for the modules that install real rules with it."""
    path = labmod.build_dir() / "smtpwall-firewall"
    if not os.access(path, os.X_OK):
        pytest.skip("SMTPWALL-FIREWALL NOT BUILT: %s (run `make`)" % path)
    return path


@pytest.fixture(scope="module")
def lab(request):
    servers = getattr(request.module, "LAB_SERVERS", ("recorder",))
    lb = labmod.Lab()
    _active_labs.append(lb)
    try:
        lb.setup()
        lb.redirect(getattr(request.module, "LAB_REDIRECT", "nft"))
        if "recorder" in servers:
            lb.recorder = lb.start_recorder(extra_ehlo=getattr(request.module, "RECORDER_EHLO", ["PIPELINING"]),
                                            tls=getattr(request.module, "RECORDER_TLS", False))
        if "sink" in servers:
            lb.sink = lb.start_sink()
        if "postfix" in servers:
            lb.postfix = lb.start_postfix()
        yield lb
    finally:
        _active_labs.remove(lb)
        lb.teardown()


@pytest.fixture(scope="module")
def proxy(lab, smtpwalld):
    """smtpwalld with the base configuration (lab.BASE_CONFIG, lab.BASE_RULES)."""
    p = lab.start_proxy()
    yield p
    if lab.proxy is p:
        lab.stop_proxy()


@pytest.fixture(autouse=True)
def _daemon_health():
    yield
    for lb in _active_labs:
        p = lb.proxy
        if p is None:
            continue
        problems = []
        if not p.alive():
            problems.append("smtpwalld exited with status %s during this test" % p.proc.returncode)
        problems += p.sanitizer_reports()
        if problems:
            lb.stop_proxy(check=False)   # the next test starts a fresh one instead of cascading
            pytest.fail("; ".join(problems) + "\nlog tail:\n" + p.log_tail(60), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for lb in _active_labs:
            if lb.proxy is not None:
                rep.sections.append(("smtpwalld log (%s)" % lb.proxy.dir.name, lb.proxy.log_tail(40)))
