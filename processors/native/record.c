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
 * table.add(key, n): metrics.Counts.add, the table's own method (a new key is admitted there,
 * stamped, or counted under a full table's overflow key).
 */
int
counts_add(WsState *st, PyObject *table, PyObject *key, long long n)
{
    PyObject *amount = PyLong_FromLongLong(n);
    if (amount == NULL)
        return -1;
    /* a key already counted: the sum (Counts is a dict); a new one: Counts.add decides */
    PyObject *old = PyDict_Check(table) ? PyDict_GetItemWithError(table, key) : NULL; /* borrowed */
    int rc;
    if (old != NULL) {
        PyObject *sum = PyNumber_Add(old, amount);
        rc = sum == NULL ? -1 : PyDict_SetItem(table, key, sum);
        Py_XDECREF(sum);
    }
    else if (PyErr_Occurred())
        rc = -1;
    else {
        PyObject *args[3] = {table, key, amount};
        PyObject *done = PyObject_VectorcallMethod(st->a_add, args, 3, NULL);
        rc = done == NULL ? -1 : 0;
        Py_XDECREF(done);
    }
    Py_DECREF(amount);
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

/* pricing.compute_cost over the parts pricing.COST_PARTS declares (handed to the lane as data),
 * operation for operation (volatile: no fused multiply-add, each step rounds as Python's does):
 * q[p] = int((n * rate + per_request) * multiplier * 2**32 + 0.5), n the counts (input, output,
 * cache read, cache write) times the part's coefficients. Returns 1 when a value does not fit or
 * a part's count is negative (the caller takes the Python path). */
int
cost_quanta(const LaneObject *l, const long long n[4], const double rate[5], double multiplier,
            long long q[COST_PARTS])
{
    double m = multiplier * 4294967296.0;
    for (int p = 0; p < COST_PARTS; p++) {
        volatile double r = rate[l->cost_rate[p]];
        q[p] = 0;
        if (l->cost_minus[p] >= 0) {
            r = r - rate[l->cost_minus[p]];
            if (!(r > 0))
                continue;
        }
        long long count = 0;
        for (int i = 0; i < 4; i++)
            count += l->cost_coefficient[p][i] * n[i];
        if (count < 0)
            return 1;
        volatile double t = (double)count * r;
        t = t + (l->cost_per_request[p] >= 0 ? rate[l->cost_per_request[p]] : 0.0);
        t = t * m + 0.5;
        if (quanta_of(t, &q[p]))
            return 1;
    }
    return 0;
}
