"""tests/pyhttpd: the test tree's one httpd harness (httpd.py, class Httpd)
and what runs next to it: pytest_sanitizer_env.py, the pytest plugin that
puts the sanitizer runtime into every httpd of an ASan run, and apphelp.py,
the helpers the WSGI test apps share.  Users put tests/ on sys.path and
import pyhttpd.httpd."""
