"""tests/pyhttpd/source.py: a Python file loaded as a module by its path, for
the tests and the soak that check what an app file defines (its names, its
templates) without it being on sys.path."""

import importlib.util


def load_source(name, path):
    """The module `name` made by running the file at `path`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
