/* `assemble` (the re-assembly of the Python path) and the helpers the lane flushes and prices with. */
#include "_wirescan.h"

/* ---------------------------------------------------------------------------------------------
 * assemble(data, resources, additions): pipeline._assemble in one pass over the modified spans
 * (the same bytes: untouched runs copied, length prefixes of modified ResourceSpans, ScopeSpans
 * and Span messages rewritten, each addition appended to its span).
 */

/* The new payload size of one scope (or -1 when it has no addition); *ok = 0 on a bad entry. */
Py_ssize_t
scope_size(PyObject *scope, PyObject *additions, int *ok)
{
    PyObject *spans = PyTuple_GET_ITEM(scope, 4);
    Py_ssize_t payload = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 1));
    Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 2));
    Py_ssize_t size = end - payload;
    int touched = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spans); i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        PyObject *added = PyDict_GetItemWithError(additions, PyTuple_GET_ITEM(span, 0));
        if (added == NULL) {
            if (PyErr_Occurred())
                *ok = 0;
            continue;
        }
        Py_ssize_t span_start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 0));
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 1));
        Py_ssize_t stop = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 2));
        Py_ssize_t length = stop - start + PyBytes_GET_SIZE(added);
        size += 1 + varint_size((uint64_t)length) + PyBytes_GET_SIZE(added) - (start - span_start);
        touched = 1;
    }
    return touched ? size : -1;
}

/* The new payload size of one ResourceSpans (or -1 when none of its scopes has an addition). */
static Py_ssize_t
resource_size(PyObject *rs, PyObject *additions, int *ok)
{
    PyObject *scopes = PyTuple_GET_ITEM(rs, 4);
    Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 2)) - PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 1));
    int touched = 0;
    for (Py_ssize_t s = 0; s < PyList_GET_SIZE(scopes); s++) {
        PyObject *scope = PyList_GET_ITEM(scopes, s);
        Py_ssize_t scope_new = scope_size(scope, additions, ok);
        if (scope_new < 0)
            continue;
        Py_ssize_t sc_start = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 0));
        Py_ssize_t sc_end = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 2));
        size += 1 + varint_size((uint64_t)scope_new) + scope_new - (sc_end - sc_start);
        touched = 1;
    }
    return touched ? size : -1;
}

PyObject *
wirescan_assemble(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyList_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "assemble(data, resources, additions)");
        return NULL;
    }
    PyObject *data = args[0], *resources = args[1], *additions = args[2];
    const uint8_t *d = (const uint8_t *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    int ok = 1;
    /* Pass 1: sizes. */
    Py_ssize_t total = n;
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(resources); r++) {
        PyObject *rs = PyList_GET_ITEM(resources, r);
        Py_ssize_t rs_size = resource_size(rs, additions, &ok);
        if (rs_size >= 0)
            total += 1 + varint_size((uint64_t)rs_size) + rs_size -
                     (PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 2)) - PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 0)));
    }
    if (!ok || PyErr_Occurred())
        return NULL;
    PyObject *result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL)
        return NULL;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    Py_ssize_t w = 0, copy_from = 0;
#define COPY(from, to)                                                                             \
    do {                                                                                           \
        memcpy(out + w, d + (from), (size_t)((to) - (from)));                                      \
        w += (to) - (from);                                                                        \
    } while (0)
    /* Pass 2: bytes. */
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(resources); r++) {
        PyObject *rs = PyList_GET_ITEM(resources, r);
        Py_ssize_t rs_size = resource_size(rs, additions, &ok);
        if (rs_size < 0)
            continue;
        PyObject *scopes = PyTuple_GET_ITEM(rs, 4);
        Py_ssize_t rs_start = PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 0));
        Py_ssize_t rs_payload = PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 1));
        Py_ssize_t rs_end = PyLong_AsSsize_t(PyTuple_GET_ITEM(rs, 2));
        COPY(copy_from, rs_start);
        out[w++] = 0x0A;
        w += put_varint(out + w, (uint64_t)rs_size);
        Py_ssize_t pos = rs_payload;
        for (Py_ssize_t s = 0; s < PyList_GET_SIZE(scopes); s++) {
            PyObject *scope = PyList_GET_ITEM(scopes, s);
            Py_ssize_t size = scope_size(scope, additions, &ok);
            if (size < 0)
                continue;
            Py_ssize_t sc_start = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 0));
            Py_ssize_t sc_payload = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 1));
            Py_ssize_t sc_end = PyLong_AsSsize_t(PyTuple_GET_ITEM(scope, 2));
            COPY(pos, sc_start);
            out[w++] = 0x12;
            w += put_varint(out + w, (uint64_t)size);
            Py_ssize_t scope_pos = sc_payload;
            PyObject *spans = PyTuple_GET_ITEM(scope, 4);
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spans); i++) {
                PyObject *span = PyList_GET_ITEM(spans, i);
                PyObject *added = PyDict_GetItem(additions, PyTuple_GET_ITEM(span, 0));
                if (added == NULL)
                    continue;
                Py_ssize_t span_start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 0));
                Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 1));
                Py_ssize_t stop = PyLong_AsSsize_t(PyTuple_GET_ITEM(span, 2));
                COPY(scope_pos, span_start);
                out[w++] = 0x12;
                w += put_varint(out + w, (uint64_t)(stop - start + PyBytes_GET_SIZE(added)));
                COPY(start, stop);
                memcpy(out + w, PyBytes_AS_STRING(added), (size_t)PyBytes_GET_SIZE(added));
                w += PyBytes_GET_SIZE(added);
                scope_pos = stop;
            }
            COPY(scope_pos, sc_end);
            pos = sc_end;
        }
        COPY(pos, rs_end);
        copy_from = rs_end;
    }
    COPY(copy_from, n);
#undef COPY
    if (w != total) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_SystemError, "assemble: size mismatch");
        return NULL;
    }
    return result;
}

typedef struct HistObject HistObject;

/* ---------------------------------------------------------------------------------------------
 * What the lane's flush adds to the registry's Python objects (public attribute protocol).
 */
/* dict[key] += amount; a new key of a metrics.Counts table is stamped created first. */
int
add_to_item(WsState *st, PyObject *dict, PyObject *key, PyObject *amount)
{
    PyObject *old = PyDict_GetItemWithError(dict, key), *admitted = NULL; /* borrowed */
    if (old == NULL) {
        if (PyErr_Occurred())
            return -1;
        if (!PyDict_CheckExact(dict)) {
            /* Counts.admit: stamps a new key, or names the key a full table counts it under */
            if ((admitted = PyObject_CallMethodOneArg(dict, st->a_admit, key)) == NULL)
                return -1;
            if (admitted != key) {
                key = admitted;
                if ((old = PyDict_GetItemWithError(dict, key)) == NULL && PyErr_Occurred()) {
                    Py_DECREF(admitted);
                    return -1;
                }
            }
        }
    }
    PyObject *sum = PyNumber_Add(old ? old : st->zero, amount);
    int rc = sum == NULL ? -1 : PyDict_SetItem(dict, key, sum);
    Py_XDECREF(sum);
    Py_XDECREF(admitted);
    return rc;
}

int
add_to_list(PyObject *list, Py_ssize_t index, PyObject *amount)
{
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(list, index), amount);
    if (sum == NULL)
        return -1;
    return PyList_SetItem(list, index, sum);
}

/* LabelLimiter.__call__(value): an admitted value of an allowed label is itself; anything else
 * (a new value to admit, an overflow, a disallowed label) is the Python method's. New reference. */

PyObject *
limit(WsState *st, PyObject *limiter, PyObject *value)
{
    PyObject *allowed = attr_get(limiter, st->a_allowed);
    if (allowed == NULL)
        return NULL;
    int fast = allowed == Py_True;
    Py_DECREF(allowed);
    if (allowed == Py_False) /* LabelLimiter.__call__: a label not allowed is "" */
        return PyUnicode_FromStringAndSize(NULL, 0);
    if (fast) {
        PyObject *admitted = attr_get(limiter, st->a_admitted);
        if (admitted == NULL)
            return NULL;
        int rc = PySet_CheckExact(admitted) ? PySet_Contains(admitted, value) : 0;
        Py_DECREF(admitted);
        if (rc < 0)
            return NULL;
        if (rc) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_CallOneArg(limiter, value);
}

/* SeriesStats: stamp series `index` created when it is not yet and `value` is non-zero. */
int
stamp_when_nonzero(WsState *st, PyObject *stats, PyObject *stamps, Py_ssize_t index, PyObject *value)
{
    if (PyList_GET_ITEM(stamps, index) != Py_None)
        return 0;
    int rc = PyObject_IsTrue(value);
    if (rc <= 0)
        return rc;
    PyObject *i = PyLong_FromSsize_t(index);
    if (i == NULL)
        return -1;
    PyObject *r = PyObject_CallMethodOneArg(stats, st->a_stamp, i);
    Py_DECREF(i);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

int
add_to_attr(PyObject *obj, PyObject *name, PyObject *amount)
{
    PyObject *old = attr_get(obj, name);
    if (old == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(old, amount);
    Py_DECREF(old);
    if (sum == NULL)
        return -1;
    int rc = attr_set(obj, name, sum);
    Py_DECREF(sum);
    return rc;
}

static inline int
quanta_of(double rounded, long long *out)
{
    if (!(rounded < 9.0e18 && rounded > -9.0e18))
        return 1;
    *out = (long long)rounded; /* int(): truncation toward zero */
    return 0;
}

/* pricing.compute_cost, operation for operation (volatile: no fused multiply-add, each step
 * rounds as Python's does): q = input, output, cache read, cache write, savings in quanta.
 * n = input (cache included), output, cache read, cache write. Returns 1 when a value does not
 * fit (the caller takes the Python path). */
int
cost_quanta(const long long n[4], const double rate[5], double multiplier, long long q[5])
{
    double m = multiplier * 4294967296.0;
    volatile double uncached = (double)(n[0] - n[2] - n[3]);
    volatile double t_in = uncached * rate[0];
    t_in = t_in + rate[4];
    t_in = t_in * m + 0.5;
    volatile double t_out = (double)n[1] * rate[1];
    t_out = t_out * m + 0.5;
    volatile double t_cr = (double)n[2] * rate[2];
    t_cr = t_cr * m + 0.5;
    volatile double t_cw = (double)n[3] * rate[3];
    t_cw = t_cw * m + 0.5;
    q[4] = 0;
    if (quanta_of(t_in, &q[0]) || quanta_of(t_out, &q[1]) || quanta_of(t_cr, &q[2]) ||
        quanta_of(t_cw, &q[3]))
        return 1;
    if (rate[0] > rate[2]) {
        volatile double t_sv = (double)n[2] * (rate[0] - rate[2]);
        t_sv = t_sv * m + 0.5;
        if (quanta_of(t_sv, &q[4]))
            return 1;
    }
    return 0;
}

