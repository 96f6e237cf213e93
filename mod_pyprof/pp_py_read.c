/* pp_py_read.c: how the stack reader copies memory, and the one object
 * it decodes itself, str.  Sampler thread only: every function here is
 * called by the walk or its set-up (pp_py_walk.c, pp_py_frames.c, pp_py_code.c,
 * pp_py_gil.c) on the sampler thread, and the state is plain globals of
 * that thread.
 *
 * Three readers, one chosen at set-up (pp_py_read_select):
 *   guarded   GIL-free default: memcpy() under the SIGSEGV/SIGBUS guard
 *             of pp_py_guard.c, a fault on a page freed meanwhile turned
 *             into a failed read;
 *   vm        GIL-free: process_vm_readv() on our own pid (PyProfSampler
 *             nogil syscall, sanitizer builds, and from the tick another
 *             SIGSEGV handler replaced the guard's on: checked once a walk
 *             by pp_py_read_check_guard);
 *   local     GIL mode: plain memcpy(), nothing moves while the sampler
 *             holds the GIL.
 * A read never faults and never blocks: a bad address is a failed read
 * (-1), which the caller takes for a torn chain.  Nothing here creates a
 * Python object, takes a reference or runs Python code; a str is copied
 * out as UTF-8 and checked to be still the same object afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pp_log.h"
#include "pp_py_int.h"

#define NAME_MAX_CHARS 1024 /* characters read of a name */
/* The kernel reads at most IOV_BATCH pieces a call (UIO_MAXIOV). */
#define IOV_BATCH 1024

const pp_py_reader_t *pp_py_R;
static pid_t own_pid;
/* guarded copies: faults already added to the store's count, the signal
 * whose handler the next walk checks, and whether the guard's loss was
 * logged (once a process) */
static uint64_t faults_counted;
static int check_signal;
static int loss_logged;

/* ---------------------------------------------------------------- reads */

static int vm_read(void *dst, const void *src, size_t n)
{
    struct iovec l, r;

    if (!src || !n) {
        return -1;
    }
    l.iov_base = dst;
    l.iov_len = n;
    r.iov_base = (void *)src;
    r.iov_len = n;
    return process_vm_readv(own_pid, &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

static int vm_readv(void *const *dst, const void *const *src, const size_t *len,
                    size_t n)
{
    static struct iovec l[IOV_BATCH], r[IOV_BATCH];
    size_t i, at, k;

    for (at = 0; at < n; at += k) {
        size_t want = 0;

        for (k = 0; k < IOV_BATCH && at + k < n; k++) {
            i = at + k;
            if (!src[i]) {
                return -1;
            }
            l[k].iov_base = dst[i];
            l[k].iov_len = len[i];
            r[k].iov_base = (void *)src[i];
            r[k].iov_len = len[i];
            want += len[i];
        }
        if (process_vm_readv(own_pid, l, k, r, k, 0) != (ssize_t)want) {
            return -1;
        }
    }
    return 0;
}

static const pp_py_reader_t vm_reader = {vm_read, vm_readv};

/* With the GIL held nothing the chain points to can change or be freed;
 * NULL is the only bad pointer a consistent chain holds. */
static int local_read(void *dst, const void *src, size_t n)
{
    if (!src || !n) {
        return -1;
    }
    memcpy(dst, src, n);
    return 0;
}

static int local_readv(void *const *dst, const void *const *src,
                       const size_t *len, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (local_read(dst[i], src[i], len[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static const pp_py_reader_t local_reader = {local_read, local_readv};

/* Plain copies, a fault on a page freed meanwhile turned into -1 (see
 * pp_py_guard.c). */
static int guarded_read(void *dst, const void *src, size_t n)
{
    if (!src || !n) {
        return -1;
    }
    return pp_py_guard_copy(dst, src, n);
}

static int guarded_readv(void *const *dst, const void *const *src,
                         const size_t *len, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!src[i]) {
            return -1;
        }
    }
    return pp_py_guard_copyv(dst, src, len, n);
}

static const pp_py_reader_t guarded_reader = {guarded_read, guarded_readv};

/* ---------------------------------------------------------------- names */

/* UTF-8 of n code points of a PEP 393 buffer (kind 1, 2 or 4), cut at
 * cap - 1 bytes on a character boundary; lone surrogates become U+FFFD. */
size_t pp_py_ucs_to_utf8(unsigned kind, const uint8_t *data, size_t n,
                         char *buf, size_t cap)
{
    size_t i, w = 0;

    for (i = 0; i < n; i++) {
        uint32_t c;
        if (kind == 1) {
            c = data[i];
        }
        else if (kind == 2) {
            uint16_t u;
            memcpy(&u, data + 2 * i, 2);
            c = u;
        }
        else {
            memcpy(&c, data + 4 * i, 4);
        }
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            c = 0xfffd;
        }
        if (c < 0x80) {
            if (w + 1 >= cap)
                break;
            buf[w++] = (char)c;
        }
        else if (c < 0x800) {
            if (w + 2 >= cap)
                break;
            buf[w++] = (char)(0xc0 | (c >> 6));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
        else if (c < 0x10000) {
            if (w + 3 >= cap)
                break;
            buf[w++] = (char)(0xe0 | (c >> 12));
            buf[w++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
        else {
            if (w + 4 >= cap)
                break;
            buf[w++] = (char)(0xf0 | (c >> 18));
            buf[w++] = (char)(0x80 | ((c >> 12) & 0x3f));
            buf[w++] = (char)(0x80 | ((c >> 6) & 0x3f));
            buf[w++] = (char)(0x80 | (c & 0x3f));
        }
    }
    buf[w] = '\0';
    return w;
}

/* A str, copied out as UTF-8 (at most NAME_MAX_CHARS characters); 0 if
 * it is not a live str. */
size_t pp_py_read_str(const void *obj, char *out, size_t cap,
                      pp_py_str_tail_t *tail)
{
    static uint8_t buf[NAME_MAX_CHARS * 4];
    uint8_t head[PP_PY_STR_HDR_MAX], again[PP_PY_STR_HDR_MAX];
    const size_t skip = pp_py_L->obj_type; /* the count may move */
    pp_py_str_t s;
    size_t n, bytes;

    out[0] = '\0';
    if (pp_py_R->read(head, obj, pp_py_L->str_header) != 0 ||
        pp_py_ptr_at(head, pp_py_L->obj_type) != pp_py_L->str_type ||
        !pp_py_L->live(head) || pp_py_L->str_decode(head, &s) != 0 ||
        s.hdr_len > pp_py_L->str_header || s.hdr_len < skip) {
        return 0;
    }
    n = s.length < NAME_MAX_CHARS ? s.length : NAME_MAX_CHARS;
    bytes = n * s.kind;
    if (bytes &&
        pp_py_R->read(buf, (const uint8_t *)obj + s.data_off, bytes) != 0) {
        return 0;
    }
    /* the str may have been freed and its block handed to a new object
     * between the two reads (pymalloc reuses the last freed block first):
     * the characters count only if the header is still the one they were
     * read under */
    if (pp_py_R->read(again, obj, pp_py_L->str_header) != 0 ||
        !pp_py_L->live(again) ||
        memcmp(again + skip, head + skip, s.hdr_len - skip) != 0) {
        return 0;
    }
    if (tail) {
        size_t t = bytes < PP_PY_STR_TAIL ? bytes : PP_PY_STR_TAIL;
        tail->at = t ? (const uint8_t *)obj + s.data_off + bytes - t : NULL;
        tail->len = (uint8_t)t;
        if (t) {
            memcpy(tail->bytes, buf + bytes - t, t);
        }
    }
    return pp_py_ucs_to_utf8(s.kind, buf, n, out, cap);
}

/* -------------------------------------------------- choosing the reader */

int pp_py_nogil_copy(void)
{
    return pp_py_R == &guarded_reader ? PP_PY_COPY_GUARDED : PP_PY_COPY_SYSCALL;
}

void pp_py_nogil_fini(void)
{
    if (pp_py_R == &guarded_reader) {
        pp_py_R = &vm_reader;
    }
    pp_py_guard_remove();
}

/* Guarded copies need our handler to be the one the kernel calls: one
 * signal's disposition is looked at a walk (a system call a tick, not a
 * sample), SIGSEGV and SIGBUS in turn.  Somebody who installed another
 * (faulthandler.enable(), a C extension) takes the faults from then on,
 * so copies go through process_vm_readv for the rest of the process. */
void pp_py_read_check_guard(pp_store_t *st)
{
    if (pp_py_R != &guarded_reader) {
        return;
    }
    check_signal ^= 1;
    if (pp_py_guard_intact(check_signal)) {
        return;
    }
    pp_py_R = &vm_reader;
    atomic_fetch_add_explicit(&st->c.guard_replaced, 1, memory_order_relaxed);
    if (!loss_logged) {
        loss_logged = 1;
        pp_log(PP_LOG_NOTICE,
               "pid %d: another %s handler replaced the sampler's (an "
               "application calling faulthandler.enable(), say); copying "
               "Python stacks with process_vm_readv from now on",
               (int)getpid(), check_signal ? "SIGBUS" : "SIGSEGV");
    }
}

int pp_py_read_select(int gil_free, int copy)
{
    own_pid = getpid();
    if (gil_free) {
        /* can we read ourselves at all (a seccomp filter or a hardened
         * kernel may say no)? */
        int probe = 42, got = 0;
        if (vm_read(&got, &probe, sizeof(got)) != 0 || got != 42) {
            return -1;
        }
        pp_py_R = &vm_reader;
        if (copy == PP_PY_COPY_GUARDED) {
            const char *no = NULL;

            if (pp_py_guard_install(&no) == 0) {
                pp_py_R = &guarded_reader;
                faults_counted = pp_py_guard_faults();
            }
            else {
                pp_log(PP_LOG_INFO,
                       "pid %d copies Python stacks with process_vm_readv "
                       "(no guarded copies: %s)",
                       (int)getpid(), no ? no : "unknown");
            }
        }
    }
    else {
        pp_py_R = &local_reader;
    }
    return 0;
}

int pp_py_read_plain(void)
{
    return pp_py_R == &local_reader;
}

void pp_py_read_count_faults(pp_store_t *st)
{
    /* pages that went away under a guarded copy (each a torn try) */
    uint64_t faults = pp_py_guard_faults();

    if (faults != faults_counted) {
        atomic_fetch_add_explicit(&st->c.copy_faults, faults - faults_counted,
                                  memory_order_relaxed);
        faults_counted = faults;
    }
}
