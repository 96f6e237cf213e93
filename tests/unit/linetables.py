#!/usr/bin/python3
"""Location tables from CPython itself, for tests/unit/test_linetable.c.

For every code object (nested ones included) compiled from a few stdlib
modules and from a synthetic source with large and backward line jumps,
prints one line:

    firstlineno <hex co_linetable> <line of code unit 0> <line of unit 1> ...

where each line is what co_lines() says for that code unit (-1 for no
location), i.e. what PyCode_Addr2Line() answers.  Runs on the versions the
module supports, whose table format is the same (3.10's was another; 3.12
was not tested).
"""

import importlib.util
import sys

assert sys.version_info[:2] in ((3, 11), (3, 13), (3, 14), (3, 15)), sys.version

MODULES = ["json.decoder", "argparse", "asyncio.base_events", "typing",
           "email._header_value_parser", "dataclasses"]

SYNTHETIC = "\n" * 70000 + '''
def far(x):
    y = [i
         for i in range(x)
         if i % 3]
    try:
        return sum(y) / x
    except ZeroDivisionError:
        return (
            0
        )


@staticmethod
def decorated(a,
              b=1,
              *c, **d):
    async def inner():
        async with a as z:
            yield z
    return lambda q: (q +
                      1)
''' + "\n" * 5000 + '''
class Late:
    x = 1
    def m(self): return [
        k for k in
        range(3)]
'''


def codes(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_linetable"):
            yield from codes(c)


def lines_by_unit(co):
    units = len(co.co_code) // 2
    out = [-1] * units
    for start, end, line in co.co_lines():
        for b in range(start, end, 2):
            if b // 2 < units:
                out[b // 2] = -1 if line is None else line
    return out


def main():
    sources = [(SYNTHETIC, "<synthetic>")]
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        with open(spec.origin, encoding="utf-8") as f:
            sources.append((f.read(), spec.origin))
    for text, filename in sources:
        for co in codes(compile(text, filename, "exec")):
            print(co.co_firstlineno, co.co_linetable.hex() or "-",
                  " ".join(map(str, lines_by_unit(co))))


if __name__ == "__main__":
    main()
