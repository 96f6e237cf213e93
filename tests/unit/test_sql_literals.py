"""pyprof.strip_sql_literals: what an instrumented query's text keeps.

Run by `make unit` (pytest with the system's python3; the package is
imported from the build tree, so no Apache is involved).  Each case is a
query as an application would send it and the text a profile page may
show: literals of every dialect become '?', comments go, names and
placeholders stay.
"""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "pyext"))
from pyprof import strip_sql_literals  # noqa: E402


def strips(sql, want):
    assert strip_sql_literals(sql) == want


# -- strings ------------------------------------------------------------------

def test_standard_strings_with_doubled_quotes():
    strips("SELECT * FROM t WHERE name = 'secret' AND note = 'it''s'",
           "SELECT * FROM t WHERE name = ? AND note = ?")


def test_mysql_double_quoted_strings():
    strips('SELECT id FROM users WHERE pw = "hunter2" OR pw = "say ""hi"""',
           "SELECT id FROM users WHERE pw = ? OR pw = ?")


def test_mysql_backslash_escapes():
    strips(r"SELECT 1 FROM t WHERE a = 'O\'Brien secret' AND b = " + r'"x\"y secret"',
           "SELECT ? FROM t WHERE a = ? AND b = ?")


def test_postgresql_escape_strings():
    strips(r"SELECT E'line\nsecret\'s' || e'x\\' , E'\'' FROM t",
           "SELECT ? || ? , ? FROM t")


def test_postgresql_standard_string_ending_in_a_backslash():
    # PostgreSQL's default: a backslash is an ordinary character, so 'C:\'
    # ends there; read as MySQL would, the next literal's content would
    # come out as words
    strips(r"SELECT 1 FROM f WHERE path = 'C:\' AND owner = 'alice-secret'",
           "SELECT ? FROM f WHERE path = ? AND owner = ?")


def test_a_backslash_that_fits_neither_reading_strips_the_rest():
    # read with escapes, one string is left open; read without, another
    out = strip_sql_literals(r"SELECT a FROM t WHERE x = 'p\' secret1 \' secret2")
    assert out == "SELECT a FROM t WHERE x = ?"


def test_prefixed_strings():
    strips("SELECT X'DEADBEEF', x'00', B'0101', N'nom secret', U&'d\\0061t' UESCAPE '\\'",
           "SELECT ?, ?, ?, ?, ? UESCAPE ?")


def test_dollar_quoting():
    strips("SELECT $$it's a secret$$, $fn$ body $x$ 'not the end' $fn$, $a$$a$",
           "SELECT ?, ?, ?")


def test_unterminated_strings_are_stripped_to_the_end():
    strips("SELECT 'abc secret", "SELECT ?")
    strips('SELECT "abc secret', "SELECT ?")
    strips("SELECT $tag$ secret $tag", "SELECT ?")
    strips("SELECT E'abc\\' secret", "SELECT ?")


# -- names stay -----------------------------------------------------------------

def test_quoted_names_where_only_a_name_can_be():
    strips('SELECT "u"."Name", `order`.`total` FROM "Users" AS "u" '
           'JOIN `order` ON u.id = `order`.uid WHERE "u"."Name" = "bob"',
           'SELECT "u"."Name", `order`.`total` FROM "Users" AS "u" '
           'JOIN `order` ON u.id = `order`.uid WHERE "u"."Name" = ?')


def test_a_backtick_name_never_swallows_a_string():
    strips(r"SELECT `a\` FROM t WHERE b = 'secret'", r"SELECT `a\` FROM t WHERE b = ?")


def test_identifiers_with_digits_and_dollars():
    strips("SELECT t1.col2, tbl_3.x$y, 1st_table.c FROM t1, 1st_table",
           "SELECT t1.col2, tbl_3.x$y, 1st_table.c FROM t1, 1st_table")


def test_placeholders():
    strips("SELECT a FROM t WHERE b = %s AND c = %(name)s AND d = ? AND e = ?1 "
           "AND f = :name AND g = :1 AND h = $1 AND i = @v AND j = k::int",
           "SELECT a FROM t WHERE b = %s AND c = %(name)s AND d = ? AND e = ?1 "
           "AND f = :name AND g = :1 AND h = $1 AND i = @v AND j = k::int")


def test_keywords_and_unicode_names():
    strips("SELECT NULL, TRUE, größe FROM tabelle WHERE größe IS NOT NULL",
           "SELECT NULL, TRUE, größe FROM tabelle WHERE größe IS NOT NULL")


# -- numbers ----------------------------------------------------------------------

def test_numbers():
    strips("SELECT 42, 3.14, .5, 6., 1e-3, 2E+10, 1_000_000 FROM t",
           "SELECT ?, ?, ?, ?, ?, ?, ? FROM t")


def test_hex_binary_and_octal_numbers():
    strips("SELECT 0x1F, 0XdeadBEEF, 0b1010, 0o17 FROM t", "SELECT ?, ?, ?, ? FROM t")


def test_signs_belong_to_the_number_unless_the_minus_is_binary():
    strips("SELECT a FROM t WHERE x > -3.5 AND y IN (-1, -.5) AND z = b-1 AND w = c - 2",
           "SELECT a FROM t WHERE x > ? AND y IN (?, ?) AND z = b-? AND w = c - ?")


# -- comments ----------------------------------------------------------------------

def test_line_comments():
    strips("SELECT a -- user=alice token=secret\nFROM t -- trailing secret",
           "SELECT a \nFROM t ")


def test_block_comments_nest():
    strips("SELECT /* app:secret */ a FROM /* a /* nested secret */ still secret */ t",
           "SELECT   a FROM   t")


def test_unterminated_block_comment_is_stripped_to_the_end():
    strips("SELECT a FROM t /* secret", "SELECT a FROM t  ")


def test_comment_markers_inside_strings_are_data():
    strips("SELECT '-- not a comment', '/* nor this', \"*/\" FROM t",
           "SELECT ?, ?, ? FROM t")


# -- the whole thing ---------------------------------------------------------------------

def test_no_secret_survives_a_mixed_query():
    secrets = ["S1secret", "S2secret", "S3secret", "S4secret", "S5secret", "S6secret"]
    sql = ("/* %s */ INSERT INTO `log` (\"who\", what) VALUES ('%s', \"%s\", "
           "E'%s\\n', $q$%s$q$) -- %s" % tuple(secrets))
    out = strip_sql_literals(sql)
    assert not [s for s in secrets if s in out], out
    assert out == '  INSERT INTO `log` (?, what) VALUES (?, ?, ?, ?) '


@pytest.mark.parametrize("unit", ["'", "\\'", "/*", "*/", "$a$", "$", "-", "\"", "E'\\",
                                  "0x", "1.", "--\n", "'a' ", "\"x\".", "`"])
def test_linear_time_on_hostile_input(unit):
    # 200 kB of one token start: linear work is milliseconds, anything
    # quadratic would be minutes.  A bound, not a benchmark.
    sql = "SELECT " + unit * (200000 // len(unit))
    started = time.process_time()
    out = strip_sql_literals(sql)
    took = time.process_time() - started
    assert took < 5.0, "%r x %d took %.1f s" % (unit, len(sql) // len(unit), took)
    assert len(out) <= len(sql) + 1


# -- random queries of one dialect -----------------------------------------------

def _literal(rng, dialect, n):
    """A literal of `dialect` whose data is the marker SECRETn, with the
    characters that make tokenizing hard around it."""
    data = rng.choice(["", "it", "a\\", "--", "/*", "*/", "$$", "\"", "x y"]) + \
        "SECRET%d" % n + rng.choice(["", "\\", " ", "''", "--", "*/", "$1"])
    if dialect == "mysql":
        kind = rng.choice(["single", "double", "number"])
        if kind == "single":
            return "'%s'" % data.replace("\\", "\\\\").replace("'", "\\'")
        if kind == "double":
            return '"%s"' % data.replace("\\", "\\\\").replace('"', '\\"')
    else:
        kind = rng.choice(["standard", "escape", "dollar", "number"])
        if kind == "standard":                 # backslashes are plain here
            return "'%s'" % data.replace("'", "''")
        if kind == "escape":
            return "E'%s'" % data.replace("\\", "\\\\").replace("'", "\\'")
        if kind == "dollar":
            return "$q$%s$q$" % data.replace("$q$", "")
    return "-%d" % (900000 + n) if rng.random() < 0.3 else "%d.5" % (900000 + n)


def test_random_queries_of_one_dialect_leak_no_literal():
    import random
    rng = random.Random(20261204)
    for _ in range(3000):
        dialect = rng.choice(["mysql", "postgresql"])
        parts, n = ["SELECT"], 0
        for _ in range(rng.randint(1, 8)):
            n += 1
            piece = rng.choice(["lit", "lit", "name", "op", "comment", "placeholder"])
            if piece == "lit":
                parts.append(_literal(rng, dialect, n))
            elif piece == "name":
                parts.append(rng.choice(["t1.col2", "`odd name`" if dialect == "mysql"
                                         else '"Odd"."Name"', "x$1", "col"]))
            elif piece == "op":
                parts.append(rng.choice(["=", ",", "||", "-", "AND", "(", ")"]))
            elif piece == "comment":
                parts.append(rng.choice(["/* SECRET%d */" % n, "-- SECRET%d\n" % n]))
            else:
                parts.append(rng.choice(["%s", "?", ":name", "$1"]))
        sql = " ".join(parts)
        out = strip_sql_literals(sql)
        assert "SECRET" not in out and "90000" not in out, (dialect, sql, out)
