/* _pyprof.c: the C half of the "pyprof" package.
 *
 * Finds mod_pyprof's table of functions (pp_api.h) in the process with
 * dlsym(RTLD_DEFAULT, "pyprof_api").  Inside Apache (an embedded child or
 * a mod_wsgi daemon, both of which have the module loaded) that gives the
 * shared store and the C sampler; anywhere else (plain python3) it finds
 * nothing and every function is a harmless no-op.
 *
 * segment is a C type so that `with pyprof.segment(...)` costs two C calls
 * and no Python frames.  Nothing here keeps a reference to a request
 * across calls: the handle is (slot, serial, segment), checked by the
 * store on every use.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <string.h>

#include "pp_api.h"

static const pp_api_t *api;
static int api_missing; /* looked once and found nothing: stay quiet */

static const pp_api_t *find_api(void)
{
    const pp_api_t *(*get)(void);
    const pp_api_t *t;

    if (api || api_missing) {
        return api;
    }
    api_missing = 1;
    *(void **)&get = dlsym(RTLD_DEFAULT, PP_API_SYMBOL);
    if (!get) {
        return NULL;
    }
    t = get();
    if (!t || t->version != PP_API_VERSION || t->size < sizeof(pp_api_t)) {
        return NULL;
    }
    api = t;
    api_missing = 0;
    return api;
}

static PyObject *py_attached(PyObject *self, PyObject *noargs)
{
    const pp_api_t *a = find_api();
    return PyBool_FromLong(a && a->attached());
}

static PyObject *py_start(PyObject *self, PyObject *noargs)
{
    const pp_api_t *a = find_api();
    return PyBool_FromLong(a && a->attached() && a->sampler_start() == 0);
}

static PyObject *py_running(PyObject *self, PyObject *noargs)
{
    const pp_api_t *a = find_api();
    return PyBool_FromLong(a && a->sampler_running());
}

static PyObject *py_stop(PyObject *self, PyObject *args)
{
    const pp_api_t *a = find_api();
    int timeout_ms = 5000, rc = 0;

    if (!PyArg_ParseTuple(args, "|i", &timeout_ms)) {
        return NULL;
    }
    if (a) {
        /* the sampler may be waiting for the GIL we hold */
        Py_BEGIN_ALLOW_THREADS rc = a->sampler_stop(timeout_ms);
        Py_END_ALLOW_THREADS
    }
    return PyBool_FromLong(rc == 0);
}

static PyObject *py_daemon_begin(PyObject *self, PyObject *args)
{
    const pp_api_t *a = find_api();
    const char *id, *pgroup, *agroup;

    if (!PyArg_ParseTuple(args, "sss", &id, &pgroup, &agroup)) {
        return NULL;
    }
    return PyLong_FromLong(a ? a->daemon_begin(id, pgroup, agroup) : -1);
}

static PyObject *py_daemon_end(PyObject *self, PyObject *args)
{
    const pp_api_t *a = find_api();
    int slot;

    if (!PyArg_ParseTuple(args, "i", &slot)) {
        return NULL;
    }
    if (a && slot >= 0) {
        a->daemon_end(slot);
    }
    Py_RETURN_NONE;
}

static PyObject *py_current_request_id(PyObject *self, PyObject *noargs)
{
    const pp_api_t *a = find_api();
    int slot;
    uint64_t serial;
    char id[64];

    if (a && a->current(&slot, &serial, id, sizeof(id))) {
        return PyUnicode_DecodeLatin1(id, (Py_ssize_t)strlen(id), NULL);
    }
    Py_RETURN_NONE;
}

/* ---- segment ---- */

typedef struct {
    PyObject_HEAD PyObject *name; /* str */
    PyObject *detail;             /* str or None */
    int slot;
    uint64_t serial;
    uint32_t handle;
} SegmentObject;

static int segment_init(SegmentObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "detail", NULL};
    PyObject *name, *detail = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|O", kwlist, &name, &detail)) {
        return -1;
    }
    if (detail != Py_None && !PyUnicode_Check(detail)) {
        detail = PyObject_Str(detail);
        if (!detail) {
            return -1;
        }
    }
    else {
        Py_INCREF(detail);
    }
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    Py_XSETREF(self->detail, detail);
    self->handle = 0;
    return 0;
}

static void segment_dealloc(SegmentObject *self)
{
    Py_XDECREF(self->name);
    Py_XDECREF(self->detail);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* UTF-8 of a str cut at `cap` bytes on a character boundary. */
static void utf8_copy(PyObject *s, char *buf, size_t cap)
{
    Py_ssize_t n;
    const char *u;
    size_t len;

    buf[0] = '\0';
    if (!s || s == Py_None) {
        return;
    }
    u = PyUnicode_AsUTF8AndSize(s, &n);
    if (!u) {
        PyErr_Clear();
        return;
    }
    len = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
    while (len > 0 && len < (size_t)n &&
           ((unsigned char)u[len] & 0xc0) == 0x80) {
        len--;
    }
    memcpy(buf, u, len);
    buf[len] = '\0';
}

static PyObject *segment_enter(SegmentObject *self, PyObject *noargs)
{
    const pp_api_t *a = find_api();

    self->handle = 0;
    if (a && a->current(&self->slot, &self->serial, NULL, 0)) {
        char name[64], detail[256];
        utf8_copy(self->name, name, sizeof(name));
        utf8_copy(self->detail, detail, sizeof(detail));
        self->handle = a->segment_begin(self->slot, self->serial, name, detail);
    }
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *segment_exit(SegmentObject *self, PyObject *args)
{
    const pp_api_t *a = find_api();

    if (a && self->handle) {
        a->segment_end(self->slot, self->serial, self->handle);
    }
    self->handle = 0;
    Py_RETURN_FALSE; /* never swallows the exception */
}

static PyMethodDef segment_methods[] = {
    {"__enter__", (PyCFunction)segment_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)segment_exit, METH_VARARGS, NULL},
    {NULL}};

static PyTypeObject SegmentType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyprof._pyprof.segment",
    .tp_basicsize = sizeof(SegmentObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "segment(name, detail=None): time a block exactly inside the "
              "current request's profile",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)segment_init,
    .tp_dealloc = (destructor)segment_dealloc,
    .tp_methods = segment_methods,
};

static PyMethodDef methods[] = {
    {"attached", py_attached, METH_NOARGS,
     "attached() -> bool: is mod_pyprof's store in this process?"},
    {"start", py_start, METH_NOARGS,
     "start() -> bool: start this process' sampler (daemon mode)"},
    {"running", py_running, METH_NOARGS, "running() -> bool"},
    {"stop", py_stop, METH_VARARGS, "stop(timeout_ms=5000) -> bool"},
    {"daemon_begin", py_daemon_begin, METH_VARARGS,
     "daemon_begin(request_id, process_group, application_group) -> slot"},
    {"daemon_end", py_daemon_end, METH_VARARGS, "daemon_end(slot)"},
    {"current_request_id", py_current_request_id, METH_NOARGS,
     "current_request_id() -> str or None"},
    {NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_pyprof", NULL,
                                       -1, methods};

PyMODINIT_FUNC PyInit__pyprof(void)
{
    PyObject *m;

    if (PyType_Ready(&SegmentType) < 0) {
        return NULL;
    }
    m = PyModule_Create(&moduledef);
    if (!m) {
        return NULL;
    }
    Py_INCREF(&SegmentType);
    if (PyModule_AddObject(m, "segment", (PyObject *)&SegmentType) < 0) {
        Py_DECREF(&SegmentType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
