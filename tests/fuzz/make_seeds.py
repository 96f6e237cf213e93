#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are committed; this script documents how they were made and can
remake them (`/usr/bin/python3 tests/fuzz/make_seeds.py`).  The byte layout
of the store targets' input follows fz_world_build() in fuzz_store.h and
read_opts() in fuzz_render.c; keep them in step.
"""

import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

HOSTILE = [
    b"<script>alert(1)</script>",
    b"\"'><img src=x onerror=alert(1)>",
    b"a;b;c d\ne\r\tf",
    b"x\x00hidden-after-nul",
    b"\xff\xfe\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80 bad utf-8",
    b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    b"&amp;&lt;&#39;&#x3c;\\\\\"\\n",
    b"]]></title><!-- --> {{x}} ${y} %s %n",
    b"\x7f\x01\x1b[31m\x85\xc2\x85",
    b"</script><script>x</script>",
    b"%2F%00%3C/request/../../etc/passwd?a=b#c",
    b"\xe2\x80\xa6" * 40,
]


def s(b, cap=None):
    """A string as fz_str reads it: one length byte, or two with 0x80; cut
    at the reader's cap (fz_str reads no more than that)."""
    if cap is not None:
        b = b[:cap]
    if len(b) < 0x80:
        return bytes([len(b)]) + b
    assert len(b) < 0x8000
    return bytes([0x80 | (len(b) >> 8), len(b) & 0xFF]) + b


def u8(v):
    return bytes([v & 0xFF])


def u32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def world(paths, frames, stacks, reqs, sampler=0):
    """paths: [bytes]; frames: [(func, file, line)]; stacks: [[frame idx]]
    or ('deep', extra, pattern); reqs: dicts (see below)."""
    out = u8(sampler) + u8(len(paths) - 1)
    for i, p in enumerate(paths):
        out += s(p, 300) + u32(10000)
        out += u8(1) if i % 2 == 0 else u8(0) + s(b"/srv/" + p, 300)
    out += u8(len(frames) - 1)
    for fn, file, line in frames:
        out += s(fn, 1100) + s(file, 1100) + u32(line)
    out += u8(len(stacks) - 1)
    for st in stacks:
        if st[0] == "deep":
            _, extra, pattern = st
            out += u8(0xFF) + u8(extra) + b"".join(u8(x) for x in pattern)
        else:
            assert 1 <= len(st) <= 12
            out += u8(len(st) - 1)
            pattern = (st + [0, 0, 0, 0])[:4]
            out += b"".join(u8(x) for x in pattern)
            out += b"".join(u8(x) for x in st[4:])
    out += u8(len(reqs) - 1)
    for r in reqs:
        sel = r.get("sel", 0)
        out += u8(sel) + s(r.get("id", b"r"), 80) + s(r.get("method", b"GET"), 24)
        out += s(r.get("uri", b"/app/x"), 700) + s(r.get("vhost", b"localhost:80"), 140)
        if sel & 1:
            out += s(r.get("trace", b"4bf92f3577b34da6a3ce929d0e0e4736"), 40)
            out += s(r.get("parent", b"00f067aa0ba902b7"), 24)
        out += u8(r.get("capture", 0)) + u8(r.get("loc", 0))
        out += u32(1234) + u32(9000) + u32(r.get("start", 5000))
        if sel & 0x10:
            out += s(r.get("pg", b"dm"), 80) + s(r.get("ag", b"%{GLOBAL}"), 120)
        if sel & 0x20:
            out += s(r.get("uid", b"Zm9v"), 60) + u8(3)
        samples = r.get("samples", [])
        out += u8(len(samples))
        for stack, reps, weight, how, segs in samples:
            out += u8(stack) + u8(reps - 1) + u32(weight) + u8(how)
            out += u8(len(segs))
            for name, detail, end in segs:
                out += s(name, 40) + s(detail, 140) + u8(end)
        fate = r.get("fate", 1)
        out += u8(fate)
        if fate:
            out += u32(r.get("status", 300)) + u32(r.get("dur", 1500000))
    return out


def render_opts(base=b"/server-profile", sel=0, extra=b""):
    return u8(sel) + s(base, 200) + extra


def seeds_store():
    frames = [
        (b"main", b"/srv/app/app.py", 1),
        (b"handler", b"/srv/app/views.py", 20),
        (b"query", b"/usr/lib/python3.11/sqlite3/dbapi2.py", 7),
        (b"render", b"/usr/lib/python3/dist-packages/jinja2/env.py", 99),
    ]
    benign = world(
        [b"/app"], frames, [[0, 1, 2], [0, 1, 3], [0, 1]],
        [{"id": b"req-1", "uri": b"/app/slow", "samples": [
            (0, 3, 10000, 0, [(b"db", b"SELECT ?", 1)]),
            (1, 1, 5000, 1, []), (2, 2, 7000, 2, [])]},
         {"id": b"live", "uri": b"/app/live", "fate": 0,
          "samples": [(0, 1, 10000, 0, [])]}])
    hostile_frames = [(h, HOSTILE[(i + 3) % len(HOSTILE)], i * 1000003)
                      for i, h in enumerate(HOSTILE)]
    hostile = world(
        [b"/app\"x\\y\nz", b"/<b>", b"/ok"], hostile_frames,
        [[0, 1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8],
         [11]],
        [{"sel": 0x1 | 0x2 | 0x10 | 0x20 | 0x40, "id": HOSTILE[1],
          "method": b"G<E>T", "uri": HOSTILE[0] + HOSTILE[2],
          "vhost": HOSTILE[4], "trace": HOSTILE[6], "parent": HOSTILE[3],
          "pg": HOSTILE[0], "ag": HOSTILE[4], "uid": HOSTILE[1], "loc": 1,
          "samples": [(0, 4, 999999, 2, [(HOSTILE[0], HOSTILE[4], 0)]),
                      (1, 2, 1, 0, [(HOSTILE[2], HOSTILE[8], 1)]),
                      (2, 1, 0, 1, []), (3, 3, 123456, 2, [])],
          "fate": 1, "status": 600},
         {"sel": 0x4, "id": HOSTILE[3], "uri": HOSTILE[10], "loc": 3,
          "samples": [(1, 1, 5, 0, [])], "fate": 2},
         {"id": HOSTILE[7], "uri": HOSTILE[11] * 3, "loc": 2,
          "samples": [(3, 2, 50, 1, [])], "fate": 0},
         {"id": b"gone", "uri": b"/ok/x", "loc": 2,
          "samples": [(0, 1, 50, 1, [])], "fate": 3}])
    long_names = world(
        [b"/" + b"p" * 254, b"/" + b"\xc3\xa9" * 200],
        [(b"f" * 1100, b"g" * 1100, 1),
         (b"\xe2\x82\xac" * 400, b"\xf0\x9f\x98\x80" * 300, 2),
         (b"<" * 1100, b"\"" * 1100, 3)],
        [[0, 1, 2], [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]],
        [{"id": b"\xe2\x82\xac" * 30, "uri": b"/" + b"\xe2\x82\xac" * 250,
          "vhost": b"v" * 140, "method": b"M" * 24, "loc": 1,
          "samples": [(0, 1, 1000, 0, []), (1, 4, 1000, 1, [])]}])
    deep = world(
        [b"/app"], frames, [("deep", 30, [0, 1, 2, 3]), [0, 1]],
        [{"id": b"deep", "uri": b"/app/deep",
          "samples": [(0, 2, 1000, 0, []), (1, 1, 1000, 0, [])]}])
    return [benign, hostile, long_names, deep]


def seeds_render():
    out = []
    for i, w in enumerate(seeds_store()):
        if i == 1:
            extra = (u8(5) + u8(2) + u8(0) + u32(404) + u32(1000) + u32(9000000)
                     + s(HOSTILE[0]) + s(HOSTILE[4]) + u8(9) + u8(1) + u8(1))
            out.append(w + render_opts(HOSTILE[1], 0xFF, extra)
                       + s(HOSTILE[0]) + s(HOSTILE[1] + HOSTILE[4]))
        else:
            out.append(w + render_opts() + u8(0) + u8(0) + u8(0)
                       + s(b"Not found") + s(b"No such request."))
    return out


def seeds_export():
    out = []
    for i, w in enumerate(seeds_store()):
        labels = [(b"request_id", b"req-1"), (b"status", 200),
                  (b"location", HOSTILE[i % len(HOSTILE)])]
        tail = s(b"GET /app/slow (req-1)" if i == 0 else HOSTILE[i]) + u8(len(labels))
        for k, v in labels:
            tail += s(k)
            if isinstance(v, int):
                tail += u8(1) + u32(v + 1000)
            else:
                tail += u8(0) + s(v)
        out.append(w + tail)
    return out


def seeds_escape():
    return HOSTILE + [b"", b"plain ascii", bytes(range(256)),
                      b"a" * 91, b"x" * 40 + b"\xe2\x82\xac" * 20 + b"y" * 40,
                      b"/usr/lib/python3.11/json/decoder.py",
                      b"/srv/app/site-packages/x.py"]


def seeds_parse():
    def p(sel, text, a=0, b=0):
        return u8(sel) + u32(a) + u32(b) + text
    out = []
    for t in [b"10ms", b"500us", b"1s", b"2.5s", b".5s", b"10", b"-1ms",
              b"+1ms", b"1e3ms", b"99999999999999999999s", b"0ms",
              b"1.0000001s", b"9223372036854us", b"10 ms"]:
        out.append(p(0, t))
    for t in [b"16M", b"1G", b"512K", b"1048576", b"16MB", b"16mb", b"1T",
              b"18446744073709551615", b"18446744073709551616", b"0x10"]:
        out.append(p(1, t))
    for t in [b"1", b"10000", b"0", b"-5", b"9223372036854775807",
              b"9223372036854775808", b"07"]:
        out.append(p(2, t))
    for t in [b"/app", b"/", b"app", b"/a b", b"/a?b", b"/a#b", b"/\x7f",
              b"/" + b"x" * 255, b"/" + b"x" * 254]:
        out.append(p(3, t))
    for pre, uri in [(b"/app", b"/app"), (b"/app", b"/app/x"),
                     (b"/app", b"/apple"), (b"/", b"/anything"),
                     (b"/app/", b"/app/x"), (b"", b"/x")]:
        out.append(p(4, pre + b"\x00" + uri))
    return out


def seeds_linetable():
    """Real 3.11 location tables (firstlineno, then co_linetable) of a few
    functions of different shapes, and two hand-made hostile ones."""
    import sys
    assert sys.version_info[:2] == (3, 11), "run with /usr/bin/python3 (3.11)"
    src = "\n" * 3000 + '''
def f(x):
    return [i
            for i in range(x)
            if i % 3]


async def g(a):
    async with a as z:
        try:
            yield z
        except Exception:
            pass
'''
    out = []
    mod = compile(src, "<seed>", "exec")
    for co in [mod] + [c for c in mod.co_consts if hasattr(c, "co_linetable")]:
        out.append(struct.pack("<i", co.co_firstlineno) + co.co_linetable)
    out.append(struct.pack("<i", 1) + (b"\xe8\x7e\x7f\x7f\x7f\x3f" * 6))
    out.append(struct.pack("<i", -5) + b"\x05\x80\xf8\xe8\x7f")
    return out


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for data in seeds:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    write("parse", seeds_parse())
    write("escape", seeds_escape())
    write("render", seeds_render())
    write("export", seeds_export())
    write("linetable", seeds_linetable())


if __name__ == "__main__":
    main()
