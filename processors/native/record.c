/* The registry side of the Python path: `assemble`, `observe` and `record_call`. */
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
 * observe(histogram, value, trace_id, timestamp): metrics.Histogram.observe for a float value
 * (bisect_left over the float bounds, the same comparisons); any other value goes back to the
 * Python method.
 */

static PyObject *
observe_core(WsState *st, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "observe(histogram, value, trace_id, timestamp)");
        return NULL;
    }
    PyObject *h = args[0], *value = args[1];
    PyObject *bounds = NULL, *counts = NULL, *sum = NULL, *count = NULL, *exemplars = NULL;
    PyObject *result = NULL;
    if (Py_IS_TYPE(h, st->hist_type)) {
        if (hist_observe_objects((HistObject *)h, value, args[2], args[3]) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (!PyFloat_CheckExact(value))
        return PyObject_CallMethodObjArgs(h, st->s_observe, value, args[2], args[3], NULL);
    double x = PyFloat_AS_DOUBLE(value);
    if ((bounds = attr_get(h, st->s_bounds)) == NULL || !PyTuple_CheckExact(bounds))
        goto done;
    Py_ssize_t lo = 0, hi = PyTuple_GET_SIZE(bounds);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        PyObject *bound = PyTuple_GET_ITEM(bounds, mid);
        double b;
        if (PyFloat_CheckExact(bound))
            b = PyFloat_AS_DOUBLE(bound);
        else if (PyLong_CheckExact(bound) && (b = PyLong_AsDouble(bound)) > -9007199254740992.0 &&
                 b < 9007199254740992.0)
            ; /* a small int bound: exact as a double, so the comparison is Python's */
        else {
            PyErr_Clear();
            Py_CLEAR(bounds);
            return PyObject_CallMethodObjArgs(h, st->s_observe, value, args[2], args[3], NULL);
        }
        if (b < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    if ((counts = attr_get(h, st->s_counts)) == NULL || !PyList_CheckExact(counts))
        goto done;
    PyObject *old = PyList_GET_ITEM(counts, lo);
    PyObject *bumped = PyNumber_Add(old, st->one);
    if (bumped == NULL)
        goto done;
    PyList_SetItem(counts, lo, bumped);
    if ((sum = attr_get(h, st->s_sum)) == NULL)
        goto done;
    Py_SETREF(sum, PyNumber_Add(sum, value));
    if (sum == NULL || attr_set(h, st->s_sum, sum) < 0)
        goto done;
    if ((count = attr_get(h, st->s_count)) == NULL)
        goto done;
    Py_SETREF(count, PyNumber_Add(count, st->one));
    if (count == NULL || attr_set(h, st->s_count, count) < 0)
        goto done;
    if ((exemplars = attr_get(h, st->s_exemplars)) == NULL)
        goto done;
    int keep = PyObject_IsTrue(args[2]);
    if (keep < 0)
        goto done;
    if (exemplars != Py_None && keep) {
        if (!PyList_CheckExact(exemplars))
            goto done;
        PyObject *exemplar = PyTuple_Pack(3, args[2], value, args[3]);
        if (exemplar == NULL || PyList_SetItem(exemplars, lo, exemplar) < 0) /* steals */
            goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    if (result == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "observe: not a metrics.Histogram");
    Py_XDECREF(bounds);
    Py_XDECREF(counts);
    Py_XDECREF(sum);
    Py_XDECREF(count);
    Py_XDECREF(exemplars);
    return result;
}

PyObject *
wirescan_observe(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return observe_core(PyModule_GetState(module), args, nargs);
}

/* ---------------------------------------------------------------------------------------------
 * record_call(ctx, stats, service_label, status, error_type, tokens, cost, user, feature,
 *             trace_id, duration_s, ttfc_s, end_s): metrics.Registry.record_call, statement for
 * statement, with Python's own number protocol for every sum and quotient (so the results are
 * the same objects' values). ctx is the tuple built by Registry.accelerated_record_call.
 */
enum {
    R_ERROR_LIMITER, R_USER_LIMITER, R_FEATURE_LIMITER, R_HISTOGRAM, R_DURATION_BUCKETS,
    R_TTFC_BUCKETS, R_TPS_BUCKETS, R_COST_BUCKETS, R_EXEMPLARS, R_QUANTA, R_USER_COST,
    R_FEATURE_COST, R_CONTEXT_SIZE
};

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

/* getattr(stats, name), created as Histogram(bounds, exemplars) when None. New reference. */
static PyObject *
histogram_attr(PyObject *ctx, PyObject *stats, PyObject *name, int bounds)
{
    PyObject *h = attr_get(stats, name);
    if (h == NULL || h != Py_None)
        return h;
    Py_DECREF(h);
    h = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(ctx, R_HISTOGRAM), PyTuple_GET_ITEM(ctx, bounds),
                                     PyTuple_GET_ITEM(ctx, R_EXEMPLARS), NULL);
    if (h == NULL)
        return NULL;
    if (attr_set(stats, name, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

static int
observe_into(WsState *st, PyObject *h, PyObject *value, PyObject *trace_id, PyObject *end_s)
{
    PyObject *args[4] = {h, value, trace_id, end_s};
    PyObject *r = observe_core(st, args, 4);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* args as record_call's, with the Cost given as its five values (input, output, cache_read,
 * cache_write, savings; borrowed) or NULL. */
static PyObject *
record_core(WsState *st, PyObject *const *args, PyObject *const *cost)
{
    PyObject *ctx = args[0], *stats = args[1], *service_label = args[2], *status = args[3];
    PyObject *error_type = args[4], *tokens = args[5], *user = args[7];
    PyObject *feature = args[8], *trace_id = args[9], *duration_s = args[10], *ttfc_s = args[11];
    PyObject *end_s = args[12];
    PyObject *key = NULL, *requests = NULL, *counts = NULL, *durations = NULL, *h = NULL;
    PyObject *generating = NULL, *rate = NULL, *total = NULL, *usd = NULL, *tmp = NULL;
    PyObject *label = NULL, *result = NULL, *stamps = NULL;
    int rc;

    /* key = (status, limiter(error_type) if error_type else "") */
    rc = PyObject_IsTrue(error_type);
    if (rc < 0)
        goto done;
    if (rc)
        label = limit(st, PyTuple_GET_ITEM(ctx, R_ERROR_LIMITER), error_type);
    else {
        label = st->empty_str;
        Py_INCREF(label);
    }
    if (label == NULL || (key = PyTuple_Pack(2, status, label)) == NULL)
        goto done;
    if ((requests = attr_get(stats, st->a_requests)) == NULL || add_to_item(st, requests, key, st->one) < 0)
        goto done;
    if ((stamps = attr_get(stats, st->a_stamps)) == NULL)
        goto done;
    if (!PyList_CheckExact(stamps) || PyList_GET_SIZE(stamps) != 7) {
        PyErr_SetString(PyExc_TypeError, "record_call: SeriesStats.stamps is not a list of 7");
        goto done;
    }
    if (tokens != Py_None) {
        if ((counts = attr_get(stats, st->a_tokens)) == NULL)
            goto done;
        for (Py_ssize_t i = 0; i < 5; i++)
            if (add_to_list(counts, i, PyTuple_GET_ITEM(tokens, i)) < 0)
                goto done;
        for (Py_ssize_t i = 2; i < 5; i++)
            if (stamp_when_nonzero(st, stats, stamps, i, PyList_GET_ITEM(counts, i)) < 0)
                goto done;
    }
    if (duration_s != Py_None) {
        if ((durations = attr_get(stats, st->a_duration)) == NULL)
            goto done;
        h = PyDict_GetItemWithError(durations, status);
        if (h == NULL) {
            if (PyErr_Occurred())
                goto done;
            h = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(ctx, R_HISTOGRAM),
                                             PyTuple_GET_ITEM(ctx, R_DURATION_BUCKETS),
                                             PyTuple_GET_ITEM(ctx, R_EXEMPLARS), NULL);
            if (h == NULL || PyDict_SetItem(durations, status, h) < 0)
                goto done;
        }
        else
            Py_INCREF(h);
        if (observe_into(st, h, duration_s, trace_id, end_s) < 0)
            goto done;
        Py_CLEAR(h);
    }
    if (ttfc_s != Py_None) {
        if ((h = histogram_attr(ctx, stats, st->a_ttfc, R_TTFC_BUCKETS)) == NULL ||
            observe_into(st, h, ttfc_s, trace_id, end_s) < 0)
            goto done;
        Py_CLEAR(h);
    }
    if (tokens != Py_None && duration_s != Py_None) {
        PyObject *output = PyTuple_GET_ITEM(tokens, 1);
        rc = PyObject_RichCompareBool(output, st->zero, Py_GT);
        if (rc < 0)
            goto done;
        if (rc) {
            rc = PyObject_IsTrue(ttfc_s);
            if (rc < 0)
                goto done;
            generating = PyNumber_Subtract(duration_s, rc ? ttfc_s : st->zero_float);
            if (generating == NULL)
                goto done;
            rc = PyObject_RichCompareBool(generating, st->zero, Py_GT);
            if (rc < 0)
                goto done;
            if (rc) {
                if ((h = histogram_attr(ctx, stats, st->a_tps, R_TPS_BUCKETS)) == NULL ||
                    (rate = PyNumber_TrueDivide(output, generating)) == NULL ||
                    observe_into(st, h, rate, trace_id, end_s) < 0)
                    goto done;
                Py_CLEAR(h);
            }
        }
    }
    if (cost != NULL) {
        PyObject *const *values = cost;
        int failed = 0;
        {
            total = PyNumber_Add(values[0], values[1]);
            for (int i = 2; i < 4 && total != NULL; i++)
                Py_SETREF(total, PyNumber_Add(total, values[i]));
            failed = total == NULL || add_to_attr(stats, st->a_cost, total) < 0;
        }
        if (!failed) {
            Py_CLEAR(counts);
            failed = (counts = attr_get(stats, st->a_breakdown)) == NULL;
            for (int i = 0; i < 4 && !failed; i++)
                failed = add_to_list(counts, i, values[i]) < 0;
            /* any(breakdown): one stamp for the four series */
            for (int i = 0; i < 4 && !failed && PyList_GET_ITEM(stamps, 5) == Py_None; i++)
                failed = stamp_when_nonzero(st, stats, stamps, 5, PyList_GET_ITEM(counts, i)) < 0;
        }
        if (failed || add_to_attr(stats, st->a_savings, values[4]) < 0)
            goto done;
        if (PyList_GET_ITEM(stamps, 6) == Py_None) {
            Py_CLEAR(tmp);
            if ((tmp = attr_get(stats, st->a_savings)) == NULL ||
                stamp_when_nonzero(st, stats, stamps, 6, tmp) < 0)
                goto done;
        }
        if ((h = histogram_attr(ctx, stats, st->a_cost_per_request, R_COST_BUCKETS)) == NULL ||
            (usd = PyNumber_TrueDivide(total, PyTuple_GET_ITEM(ctx, R_QUANTA))) == NULL ||
            observe_into(st, h, usd, trace_id, end_s) < 0)
            goto done;
        Py_CLEAR(h);
        int exemplars = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, R_EXEMPLARS));
        int has_trace = PyObject_IsTrue(trace_id);
        if (exemplars < 0 || has_trace < 0)
            goto done;
        if (exemplars && has_trace) {
            PyObject *exemplar = PyTuple_Pack(3, trace_id, usd, end_s);
            if (exemplar == NULL)
                goto done;
            rc = attr_set(stats, st->a_cost_exemplar, exemplar);
            Py_DECREF(exemplar);
            if (rc < 0)
                goto done;
        }
        PyObject *who[2] = {user, feature};
        int limiters[2] = {R_USER_LIMITER, R_FEATURE_LIMITER};
        int tables[2] = {R_USER_COST, R_FEATURE_COST};
        for (int i = 0; i < 2; i++) {
            rc = PyObject_IsTrue(who[i]);
            if (rc < 0)
                goto done;
            if (!rc)
                continue;
            Py_CLEAR(label);
            Py_CLEAR(key);
            if ((label = limit(st, PyTuple_GET_ITEM(ctx, limiters[i]), who[i])) == NULL ||
                (key = PyTuple_Pack(2, service_label, label)) == NULL ||
                add_to_item(st, PyTuple_GET_ITEM(ctx, tables[i]), key, total) < 0)
                goto done;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(key);
    Py_XDECREF(requests);
    Py_XDECREF(counts);
    Py_XDECREF(durations);
    Py_XDECREF(h);
    Py_XDECREF(generating);
    Py_XDECREF(rate);
    Py_XDECREF(total);
    Py_XDECREF(usd);
    Py_XDECREF(tmp);
    Py_XDECREF(label);
    Py_XDECREF(stamps);
    return result;
}

PyObject *
wirescan_record_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    WsState *st = PyModule_GetState(module);
    if (nargs != 13 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != R_CONTEXT_SIZE) {
        PyErr_SetString(PyExc_TypeError, "record_call(context, stats, ... 12 arguments)");
        return NULL;
    }
    PyObject *cost = args[6];
    if (cost == Py_None)
        return record_core(st, args, NULL);
    PyObject *names[5] = {st->a_input, st->a_output, st->a_cache_read, st->a_cache_write, st->a_savings};
    PyObject *values[5] = {NULL, NULL, NULL, NULL, NULL};
    PyObject *result = NULL;
    int i;
    for (i = 0; i < 5; i++)
        if ((values[i] = attr_get(cost, names[i])) == NULL)
            break;
    if (i == 5)
        result = record_core(st, args, values);
    for (i = 0; i < 5; i++)
        Py_XDECREF(values[i]);
    return result;
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

