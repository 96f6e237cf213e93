"""`apache2 -t` validates every PyProf* directive: a bad value fails the
config test and the message names the directive; good values pass."""

import re

import pytest


@pytest.fixture(scope="module")
def cfg(module_servers, pyprof_module):
    # Configured, never started: `apache2 -t` needs only the files.
    srv = module_servers.create(name="configtest", mpm="event")
    rc, out = srv.configtest("")
    if rc != 0:
        # Otherwise every "bad value" case would pass or fail for this reason.
        pytest.fail("the module does not load: %s" % out, pytrace=False)
    return srv


BAD = [
    # From the brief.
    ("PyProfSample /app 10parsecs", "PyProfSample"),
    ("PyProfSample /app -5ms", "PyProfSample"),
    ("PyProfSample /app 0", "PyProfSample"),
    ("PyProfSample app 10ms", "PyProfSample"),
    ("PyProfSlowThreshold abc", "PyProfSlowThreshold"),
    ("PyProfKeep 0", "PyProfKeep"),
    ("PyProfMemory 1K", "PyProfMemory"),
    ("PyProfRecordQuery Maybe", "PyProfRecordQuery"),
    # From the contract's ranges (interval 1ms..10s, keep 1..10000, depth 1..1024).
    ("PyProfSample /app 20s", "PyProfSample"),
    ("PyProfSample /app", "PyProfSample"),
    ("PyProfKeep 10001", "PyProfKeep"),
    ("PyProfKeep lots", "PyProfKeep"),
    ("PyProfMaxDepth 0", "PyProfMaxDepth"),
    ("PyProfMaxDepth 1025", "PyProfMaxDepth"),
    ("PyProfMemory lots", "PyProfMemory"),
]


@pytest.mark.parametrize("directive,name", BAD, ids=[b[0] for b in BAD])
def test_configtest_rejects_bad_value_naming_the_directive(cfg, directive, name):
    rc, out = cfg.configtest(directive)
    assert rc != 0, "apache2 -t accepted %r:\n%s" % (directive, out)
    assert "Syntax OK" not in out
    # Apache prints "Syntax error on line N of FILE:" and then the module's
    # message; the directive's name must be in that message.
    message = out.split("Syntax error", 1)[-1]
    assert name in message, "message for %r does not name %s:\n%s" % (directive, name, out)


GOOD = {
    "typical": """\
PyProfSample /app 10ms
PyProfSlowThreshold 200ms
""",
    "every-directive-low": """\
PyProfSample /app 1ms
PyProfSample /app/cpu 1000us
PyProfSlowThreshold 1ms
PyProfKeep 1
PyProfMaxDepth 1
PyProfMemory 16M
PyProfRecordQuery On
""",
    "every-directive-high": """\
PyProfSample / 10s
PyProfSample /app 1s
PyProfSlowThreshold 2s
PyProfKeep 10000
PyProfMaxDepth 1024
PyProfMemory 1G
PyProfRecordQuery Off
""",
    "virtual-host": """\
<VirtualHost 127.0.0.1:80>
    ServerName vhost.test
    PyProfSample /app 10ms
    PyProfSlowThreshold 300ms
    PyProfRecordQuery On
</VirtualHost>
""",
    "module-loaded-no-directives": "",
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_configtest_accepts_good_values(cfg, name):
    rc, out = cfg.configtest(GOOD[name])
    assert rc == 0 and "Syntax OK" in out, out


def test_too_small_memory_names_the_size_it_needs(cfg):
    """Soak finding 4: the message printed a literal '%luK' (APR's
    formatter has no %llu) instead of the minimum size."""
    rc, out = cfg.configtest("PyProfMemory 1K")
    assert rc != 0
    m = re.search(r"too small to hold the store; it needs at least (\d+)K", out)
    assert m, out
    assert "%" not in out.split("Syntax error", 1)[-1], out
    need = int(m.group(1))
    assert 64 <= need <= 64 * 1024, need
    # and that size is indeed enough
    rc, out = cfg.configtest("PyProfMemory %dK" % need)
    assert rc == 0, out
