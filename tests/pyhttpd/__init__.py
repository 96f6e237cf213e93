"""tests/pyhttpd: the test tree's one httpd harness (httpd.py, class Httpd),
source.py (load_source: a Python file as a module, by its path) and
pytest_sanitizer_env.py, the plugin that puts the sanitizer runtime
into every httpd of an ASan run.  Users put tests/ on sys.path and import
pyhttpd.httpd."""
