/* The Lane type (described in _wirescan.h): entries, learning, and the flush to the registry. */
#include "_wirescan.h"

void
entry_free(Entry *e)
{
    Py_XDECREF(e->stats);
    Py_XDECREF(e->service_label);
    Py_XDECREF(e->provider_attr);
    Py_XDECREF(e->request_key);
    Py_XDECREF(e->status);
    Py_XDECREF(e->error_attr);
    Py_XDECREF(e->prefixes);
    Py_XDECREF(e->unpriced_key);
    Py_XDECREF(e->unpriced_attr);
    Py_XDECREF(e->log_static);
    Py_XDECREF(e->h_duration);
    Py_XDECREF(e->h_ttfc);
    Py_XDECREF(e->h_tps);
    Py_XDECREF(e->h_cost);
    Py_XDECREF(e->ex_trace);
    PyMem_Free(e->key);
    PyMem_Free(e);
}

/* An entry leaves the table: freed now, or when the request being walked is done (its records
 * may point to it until they are applied). */
static void
entry_retire(LaneObject *l, Entry *e)
{
    if (l->walking) {
        e->next_retired = l->retired;
        l->retired = e;
    }
    else
        entry_free(e);
}

static void
lane_drop_entries(LaneObject *l)
{
    for (Py_ssize_t i = 0; i < l->cap; i++)
        if (l->slots[i] != NULL) {
            entry_retire(l, l->slots[i]);
            l->slots[i] = NULL;
        }
    l->used = 0;
    if (!l->walking) /* while walking, retired entries stay on the dirty list until it is flushed */
        l->dirty = NULL;
}

void
lane_drop_whos(LaneObject *l)
{
    for (Py_ssize_t i = 0; i < l->who_cap; i++) {
        Who *w = l->whos[i];
        if (w == NULL)
            continue;
        Py_XDECREF(w->table_key);
        PyMem_Free(w->key);
        PyMem_Free(w);
        l->whos[i] = NULL;
    }
    l->who_used = 0;
    l->dirty_whos = NULL;
}

static void
lane_dealloc(LaneObject *l)
{
    if (l->whos != NULL) {
        lane_drop_whos(l);
        PyMem_Free(l->whos);
    }
    if (l->slots != NULL) {
        lane_drop_entries(l);
        PyMem_Free(l->slots);
    }
    Py_XDECREF(l->ctx);
    Py_XDECREF(l->scope_ids);
    PyMem_Free(l->spare_recs);
    output_free(&l->spare_out);
    PyTypeObject *type = Py_TYPE(l);
    type->tp_free((PyObject *)l);
    Py_DECREF(type); /* a heap type: its instances hold a reference */
}

static int
key_index(Table *t, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "Lane: a key is not a str");
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->nkeys; i++) {
        int eq = PyUnicode_Compare(t->keys[i].name, name);
        if (eq == -1 && PyErr_Occurred())
            return -1;
        if (eq == 0)
            return t->keys[i].index;
    }
    PyErr_Format(PyExc_ValueError, "Lane: %R is not a scanned key", name);
    return -1;
}

static int
key_mask(Table *t, PyObject *names, uint64_t *mask)
{
    *mask = 0;
    if (!PyTuple_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "Lane: keys must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        int k = key_index(t, PyTuple_GET_ITEM(names, i));
        if (k < 0)
            return -1;
        *mask |= (uint64_t)1 << k;
    }
    return 0;
}

static int
key_list(Table *t, PyObject *names, int *out, int *count, int room)
{
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) > room) {
        PyErr_SetString(PyExc_TypeError, "Lane: a key group is not a short tuple");
        return -1;
    }
    *count = (int)PyTuple_GET_SIZE(names);
    for (int i = 0; i < *count; i++)
        if ((out[i] = key_index(t, PyTuple_GET_ITEM(names, i))) < 0)
            return -1;
    return 0;
}

/* A small int from a tuple item, in [lo, hi); -1 with an exception otherwise. */
static int
small_int(PyObject *tuple, Py_ssize_t i, int lo, int hi)
{
    PyObject *item = PyTuple_GET_ITEM(tuple, i);
    long v = PyLong_Check(item) ? PyLong_AsLong(item) : lo - 1;
    if (v < lo || v >= hi) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "Lane: a rule's index is out of range");
        return -1;
    }
    return (int)v;
}

/* normalise.TOKEN_CORRECTIONS ((target, (parts, ...)), ...) and pricing.COST_PARTS compiled
 * ((coefficients, rate, minus, per_request), ...): the rules the lane applies, as data. */
static int
lane_rules(LaneObject *l, PyObject *corrections, PyObject *parts)
{
    if (!PyTuple_Check(corrections) || PyTuple_GET_SIZE(corrections) > MAX_CORRECTIONS ||
        !PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != COST_PARTS) {
        PyErr_SetString(PyExc_TypeError, "Lane: the token corrections and cost parts are tuples");
        return -1;
    }
    l->ncorrections = (int)PyTuple_GET_SIZE(corrections);
    for (int c = 0; c < l->ncorrections; c++) {
        PyObject *rule = PyTuple_GET_ITEM(corrections, c), *of;
        if (!PyTuple_Check(rule) || PyTuple_GET_SIZE(rule) != 2 || !PyTuple_Check(of = PyTuple_GET_ITEM(rule, 1))) {
            PyErr_SetString(PyExc_TypeError, "Lane: a correction is (target, (parts, ...))");
            return -1;
        }
        if ((l->correction_target[c] = small_int(rule, 0, 0, TOKEN_TYPES)) < 0)
            return -1;
        l->correction_parts[c] = 0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(of); i++) {
            int g = small_int(of, i, 0, TOKEN_TYPES);
            if (g < 0)
                return -1;
            l->correction_parts[c] |= 1u << g;
        }
    }
    for (int p = 0; p < COST_PARTS; p++) {
        PyObject *part = PyTuple_GET_ITEM(parts, p), *coefficients;
        if (!PyTuple_Check(part) || PyTuple_GET_SIZE(part) != 4 ||
            !PyTuple_Check(coefficients = PyTuple_GET_ITEM(part, 0)) || PyTuple_GET_SIZE(coefficients) != 4) {
            PyErr_SetString(PyExc_TypeError, "Lane: a cost part is ((4 coefficients), rate, minus, per_request)");
            return -1;
        }
        for (int i = 0; i < 4; i++)
            if ((l->cost_coefficient[p][i] = small_int(coefficients, i, -1, 2)) < -1 || PyErr_Occurred())
                return -1;
        if ((l->cost_rate[p] = small_int(part, 1, 0, 5)) < 0 || (l->cost_minus[p] = small_int(part, 2, -1, 5)) < -1 ||
            PyErr_Occurred() || (l->cost_per_request[p] = small_int(part, 3, -1, 5)) < -1 || PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *
lane_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *ctx;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Lane(context)");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!:Lane", &PyTuple_Type, &ctx))
        return NULL;
    if (PyTuple_GET_SIZE(ctx) != CTX_SIZE) {
        PyErr_Format(PyExc_TypeError, "Lane: context of %d items expected", CTX_SIZE);
        return NULL;
    }
    Table *t = PyCapsule_GetPointer(PyTuple_GET_ITEM(ctx, CTX_TABLE), CAPSULE_NAME);
    if (t == NULL)
        return NULL;
    if (t->nkeys > MAX_LANE_KEYS) {
        PyErr_SetString(PyExc_ValueError, "Lane: more than 64 scanned keys");
        return NULL;
    }
    LaneObject *l = (LaneObject *)type->tp_alloc(type, 0);
    if (l == NULL)
        return NULL;
    l->state = PyType_GetModuleState(type);
    l->ctx = Py_NewRef(ctx);
    l->t = t;
    PyObject *groups = PyTuple_GET_ITEM(ctx, CTX_TOKEN_KEYS), *current = PyTuple_GET_ITEM(ctx, CTX_TOKEN_CURRENT);
    PyObject *zero = PyTuple_GET_ITEM(ctx, CTX_TOKEN_ZERO_WRITTEN);
    if (key_mask(t, PyTuple_GET_ITEM(ctx, CTX_CATEGORICAL), &l->categorical) < 0 ||
        key_mask(t, PyTuple_GET_ITEM(ctx, CTX_MARKERS), &l->markers) < 0 ||
        key_mask(t, PyTuple_GET_ITEM(ctx, CTX_SLOW), &l->slow) < 0)
        goto fail;
    if (!PyTuple_Check(groups) || PyTuple_GET_SIZE(groups) != TOKEN_TYPES || !PyTuple_Check(current) ||
        PyTuple_GET_SIZE(current) != TOKEN_TYPES || !PyTuple_Check(zero) ||
        PyTuple_GET_SIZE(zero) != TOKEN_TYPES) {
        PyErr_SetString(PyExc_TypeError, "Lane: keys, a current name and a flag per token type");
        goto fail;
    }
    for (int g = 0; g < TOKEN_TYPES; g++) {
        if (key_list(t, PyTuple_GET_ITEM(groups, g), l->group[g], &l->ngroup[g], 8) < 0 ||
            (l->current[g] = key_index(t, PyTuple_GET_ITEM(current, g))) < 0 ||
            (l->zero_written[g] = PyObject_IsTrue(PyTuple_GET_ITEM(zero, g))) < 0)
            goto fail;
    }
    if (lane_rules(l, PyTuple_GET_ITEM(ctx, CTX_CORRECTIONS), PyTuple_GET_ITEM(ctx, CTX_COST_PARTS)) < 0)
        goto fail;
    if (key_list(t, PyTuple_GET_ITEM(ctx, CTX_USERS), l->users, &l->nusers, 8) < 0 ||
        (l->feature = key_index(t, PyTuple_GET_ITEM(ctx, CTX_FEATURE))) < 0 ||
        (l->ttfc = key_index(t, PyTuple_GET_ITEM(ctx, CTX_TTFC))) < 0)
        goto fail;
    l->max_tokens = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, CTX_MAX_TOKENS));
    l->max_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, CTX_MAX_LENGTH));
    if (PyErr_Occurred())
        goto fail;
    if (l->max_tokens < 0 || l->max_tokens >= (1LL << 53) || l->max_length < 0) {
        PyErr_SetString(PyExc_ValueError, "Lane: token cap must be in [0, 2**53)");
        goto fail;
    }
    if ((l->exemplars = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, CTX_EXEMPLARS))) < 0)
        goto fail;
    PyObject *headers = PyTuple_GET_ITEM(ctx, CTX_TOKEN_HEADERS), *bounds = PyTuple_GET_ITEM(ctx, CTX_BOUNDS);
    if (!PyTuple_Check(headers) || PyTuple_GET_SIZE(headers) != TOKEN_TYPES || !PyTuple_Check(bounds) ||
        PyTuple_GET_SIZE(bounds) != 4) {
        PyErr_SetString(PyExc_TypeError, "Lane: a header list per token type and four bucket tuples");
        goto fail;
    }
    for (int g = 0; g < TOKEN_TYPES; g++) {
        PyObject *list = PyTuple_GET_ITEM(headers, g);
        if (!PyList_CheckExact(list) || PyList_GET_SIZE(list) != 11) {
            PyErr_SetString(PyExc_TypeError, "Lane: headers must be lists of 11 bytes");
            goto fail;
        }
        for (Py_ssize_t i = 0; i < 11; i++)
            if (!PyBytes_CheckExact(PyList_GET_ITEM(list, i)) ||
                PyBytes_GET_SIZE(PyList_GET_ITEM(list, i)) > 200) {
                PyErr_SetString(PyExc_TypeError, "Lane: headers must be lists of 11 bytes");
                goto fail;
            }
    }
    PyObject *recent = PyTuple_GET_ITEM(ctx, CTX_RECENT);
    if (recent != Py_None && !Py_IS_TYPE(recent, l->state->recent_type)) {
        PyErr_SetString(PyExc_TypeError, "Lane: recent must be a Recent or None");
        goto fail;
    }
    l->recent = recent == Py_None ? NULL : (RecentObject *)recent;
    if (!PyBytes_CheckExact(PyTuple_GET_ITEM(ctx, CTX_DUPLICATE_PREFIX)) ||
        (l->response_id = key_index(t, PyTuple_GET_ITEM(ctx, CTX_RESPONSE_ID))) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Lane: the duplicate_of prefix must be bytes");
        goto fail;
    }
    if ((l->scope_ids = PyDict_New()) == NULL)
        goto fail;
    l->cap = 64;
    l->who_cap = 1024;
    if ((l->slots = PyMem_Calloc((size_t)l->cap, sizeof(Entry *))) == NULL ||
        (l->whos = PyMem_Calloc((size_t)l->who_cap, sizeof(Who *))) == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    return (PyObject *)l;
fail:
    Py_DECREF(l);
    return NULL;
}

/* Doubles an open-addressing table of records whose 64-bit hash sits at `hash_offset`. */
int
table_grow(void ***slots, Py_ssize_t *cap, size_t hash_offset)
{
    Py_ssize_t bigger = *cap * 2;
    void **grown = PyMem_Calloc((size_t)bigger, sizeof(void *));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < *cap; i++) {
        void *record = (*slots)[i];
        if (record == NULL)
            continue;
        uint64_t hash;
        memcpy(&hash, (char *)record + hash_offset, sizeof hash);
        Py_ssize_t j = (Py_ssize_t)(hash & (uint64_t)(bigger - 1));
        while (grown[j] != NULL)
            j = (j + 1) & (bigger - 1);
        grown[j] = record;
    }
    PyMem_Free(*slots);
    *slots = grown;
    *cap = bigger;
    return 0;
}

Entry *
lane_find(LaneObject *l, const uint8_t *key, Py_ssize_t len, uint64_t hash)
{
    Py_ssize_t mask = l->cap - 1;
    for (Py_ssize_t i = (Py_ssize_t)(hash & (uint64_t)mask);; i = (i + 1) & mask) {
        Entry *e = l->slots[i];
        if (e == NULL)
            return NULL;
        if (e->hash == hash && e->key_len == len && memcmp(e->key, key, (size_t)len) == 0)
            return e;
    }
}

/* ---- adding the pending sums to the registry (its own methods: Registry.add_sums, Counts.add,
 * LabelLimiter.count_overflow) ---- */

/* A tuple of n ints. */
static PyObject *
long_tuple(const long long *values, int n)
{
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(values[i]);
        if (v == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, v);
    }
    return tuple;
}

static int
entry_flush(LaneObject *l, Entry *e)
{
    WsState *st = l->state;
    PyObject *tokens = NULL, *breakdown = NULL, *exemplar = NULL, *done = NULL;
    int rc = -1;
    if (e->requests) {
        tokens = e->kind != KIND_NO_COST ? long_tuple(e->tokens, TOKEN_TYPES) : Py_NewRef(Py_None);
        breakdown = e->kind == KIND_PRICED ? long_tuple(e->breakdown, 4) : Py_NewRef(Py_None);
        if (e->kind == KIND_PRICED && e->ex_trace != NULL)
            exemplar = Py_BuildValue("(Odd)", e->ex_trace, e->ex_usd, e->ex_end);
        else
            exemplar = Py_NewRef(Py_None);
        if (tokens == NULL || breakdown == NULL || exemplar == NULL)
            goto done;
        /* Registry.add_sums(stats, request key, requests, tokens, breakdown, savings, exemplar) */
        done = PyObject_CallFunction(PyTuple_GET_ITEM(l->ctx, CTX_ADD_SUMS), "OOLOOLO", e->stats,
                                     e->request_key, e->requests, tokens, breakdown, e->savings, exemplar);
        if (done == NULL)
            goto done;
    }
    if (e->kind == KIND_UNPRICED && e->unpriced &&
        counts_add(st, PyTuple_GET_ITEM(l->ctx, CTX_UNPRICED), e->unpriced_key, e->unpriced) < 0)
        goto done;
    rc = 0;
done:
    e->requests = e->cost = e->savings = e->unpriced = 0;
    memset(e->tokens, 0, sizeof e->tokens);
    memset(e->breakdown, 0, sizeof e->breakdown);
    Py_CLEAR(e->ex_trace);
    e->dirty = 0;
    Py_XDECREF(tokens);
    Py_XDECREF(breakdown);
    Py_XDECREF(exemplar);
    Py_XDECREF(done);
    return rc;
}

static int
by_exemplar_order(const void *a, const void *b)
{
    const Entry *x = *(Entry *const *)a, *y = *(Entry *const *)b;
    return (x->ex_seq > y->ex_seq) - (x->ex_seq < y->ex_seq);
}

/* Adds every pending sum; entries sharing a series set its cost exemplar in the order their
 * spans came, so the last span's stays, as on the Python path. */
int
lane_flush_whos(LaneObject *l)
{
    WsState *st = l->state;
    int rc = 0;
    while (l->dirty_whos != NULL) {
        Who *w = l->dirty_whos;
        l->dirty_whos = w->next_dirty;
        w->next_dirty = NULL;
        w->dirty = 0;
        PyObject *table = PyTuple_GET_ITEM(l->ctx, w->which ? CTX_FEATURE_COST : CTX_USER_COST);
        if (counts_add(st, table, w->table_key, w->pending) < 0 && rc == 0)
            rc = -1;
        w->pending = 0;
        /* what as many calls with an over-cap value would have counted */
        PyObject *limiter = PyTuple_GET_ITEM(l->ctx, w->which ? CTX_FEATURE_LIMITER : CTX_USER_LIMITER);
        if (w->overflowed && rc == 0) {
            PyObject *done = PyObject_CallMethod(limiter, "count_overflow", "L", w->overflowed);
            if (done == NULL)
                rc = -1;
            Py_XDECREF(done);
        }
        w->overflowed = 0;
    }
    return rc;
}

int
lane_flush(LaneObject *l)
{
    if (lane_flush_whos(l) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        int rc = lane_flush(l); /* the entries still get added */
        PyErr_Restore(type, value, tb);
        (void)rc;
        return -1;
    }
    Py_ssize_t count = 0;
    for (Entry *e = l->dirty; e != NULL; e = e->next_dirty)
        count++;
    if (count == 0)
        return 0;
    Entry **order = PyMem_Malloc((size_t)count * sizeof(Entry *));
    if (order == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t i = 0;
    for (Entry *e = l->dirty; e != NULL; e = e->next_dirty)
        order[i++] = e;
    l->dirty = NULL;
    qsort(order, (size_t)count, sizeof(Entry *), by_exemplar_order);
    int rc = 0;
    for (i = 0; i < count; i++) {
        order[i]->next_dirty = NULL;
        if (entry_flush(l, order[i]) < 0 && rc == 0)
            rc = -1; /* the rest are still added; the first error is reported */
    }
    PyMem_Free(order);
    return rc;
}

/* stats.<name> as a C Histogram, created (the registry's factory) when None; borrowed into *slot. */
int
entry_histogram(LaneObject *l, Entry *e, PyObject **slot, PyObject *name, int bounds)
{
    if (*slot != NULL)
        return 0;
    PyObject *h = attr_get(e->stats, name);
    if (h == NULL)
        return -1;
    if (h == Py_None) {
        Py_DECREF(h);
        h = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(l->ctx, CTX_HISTOGRAM),
                                         PyTuple_GET_ITEM(PyTuple_GET_ITEM(l->ctx, CTX_BOUNDS), bounds),
                                         l->exemplars ? Py_True : Py_False, NULL);
        if (h == NULL || attr_set(e->stats, name, h) < 0) {
            Py_XDECREF(h);
            return -1;
        }
    }
    if (!Py_IS_TYPE(h, l->state->hist_type)) {
        Py_DECREF(h);
        PyErr_SetString(PyExc_TypeError, "Lane: the registry's histograms are not C Histograms");
        return -1;
    }
    *slot = h;
    return 0;
}

int
entry_duration(LaneObject *l, Entry *e)
{
    WsState *st = l->state;
    if (e->h_duration != NULL)
        return 0;
    PyObject *durations = attr_get(e->stats, st->a_duration);
    if (durations == NULL)
        return -1;
    if (!PyDict_CheckExact(durations)) {
        Py_DECREF(durations);
        PyErr_SetString(PyExc_TypeError, "Lane: SeriesStats.duration is not a dict");
        return -1;
    }
    PyObject *h = PyDict_GetItemWithError(durations, e->status);
    if (h == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(durations);
            return -1;
        }
        h = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(l->ctx, CTX_HISTOGRAM),
                                         PyTuple_GET_ITEM(PyTuple_GET_ITEM(l->ctx, CTX_BOUNDS), 0),
                                         l->exemplars ? Py_True : Py_False, NULL);
        if (h == NULL || PyDict_SetItem(durations, e->status, h) < 0) {
            Py_XDECREF(h);
            Py_DECREF(durations);
            return -1;
        }
    }
    else
        Py_INCREF(h);
    Py_DECREF(durations);
    if (!Py_IS_TYPE(h, l->state->hist_type)) {
        Py_DECREF(h);
        PyErr_SetString(PyExc_TypeError, "Lane: the registry's histograms are not C Histograms");
        return -1;
    }
    e->h_duration = h;
    return 0;
}

static int
float_tuple(PyObject *tuple, double out[5])
{
    if (!PyTuple_CheckExact(tuple) || PyTuple_GET_SIZE(tuple) != 5)
        return -1;
    for (int i = 0; i < 5; i++) {
        if (!PyFloat_CheckExact(PyTuple_GET_ITEM(tuple, i)))
            return -1;
        out[i] = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(tuple, i));
    }
    return 0;
}

static int
lane_insert(LaneObject *l, Entry *e)
{
    if (l->used >= MAX_ENTRIES)
        lane_drop_entries(l); /* bounded: refilled by the Python path */
    if ((l->used + 1) * 2 > l->cap && table_grow((void ***)&l->slots, &l->cap, offsetof(Entry, hash)) < 0)
        return -1;
    Py_ssize_t mask = l->cap - 1;
    for (Py_ssize_t i = (Py_ssize_t)(e->hash & (uint64_t)mask);; i = (i + 1) & mask) {
        Entry *old = l->slots[i];
        if (old == NULL) {
            l->slots[i] = e;
            l->used++;
            return 0;
        }
        if (old->hash == e->hash && old->key_len == e->key_len &&
            memcmp(old->key, e->key, (size_t)e->key_len) == 0) {
            l->slots[i] = e; /* a new window for the same signature */
            entry_retire(l, old);
            return 0;
        }
    }
}

/* learn(signature, kind, outcome): what the Python path decided for spans of this signature.
 * KIND_OTHER (not a model call): outcome None. KIND_PRICED, KIND_UNPRICED, KIND_NO_COST: the
 * tuple lane_contract.OUTCOME declares (OUT_* in _contract.h), for start times in [lo, hi).
 * Returns whether it was learned (False when a value is not of the expected type). */
static PyObject *
lane_learn(LaneObject *l, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "learn(signature, kind, outcome)");
        return NULL;
    }
    if (lane_flush(l) < 0)
        return NULL;
    long kind = PyLong_AsLong(args[1]);
    PyObject *o = args[2];
    Entry *e = PyMem_Calloc(1, sizeof(Entry));
    if (e == NULL)
        return PyErr_NoMemory();
    e->key_len = PyBytes_GET_SIZE(args[0]);
    e->key = PyMem_Malloc((size_t)e->key_len + 1);
    if (e->key == NULL) {
        PyMem_Free(e);
        return PyErr_NoMemory();
    }
    memcpy(e->key, PyBytes_AS_STRING(args[0]), (size_t)e->key_len);
    e->hash = signature_hash(e->key, e->key_len);
    e->kind = (int)kind;
    e->lo = LLONG_MIN;
    e->hi = LLONG_MAX;
    if (kind == KIND_OTHER && o == Py_None)
        goto learned;
    if ((kind != KIND_PRICED && kind != KIND_UNPRICED && kind != KIND_NO_COST) || !PyTuple_CheckExact(o) ||
        PyTuple_GET_SIZE(o) != OUT_SIZE)
        goto refused;
#define OUT(name) PyTuple_GET_ITEM(o, OUT_##name)
    if (!PyUnicode_CheckExact(OUT(SERVICE_LABEL)) || !PyBytes_CheckExact(OUT(PROVIDER_ATTR)) ||
        !PyTuple_CheckExact(OUT(REQUEST_KEY)) || !PyUnicode_CheckExact(OUT(STATUS)) ||
        !PyBytes_CheckExact(OUT(ERROR_ATTR)))
        goto refused;
    int overflow = 0;
    e->lo = PyLong_AsLongLongAndOverflow(OUT(LO), &overflow);
    if (overflow || PyErr_Occurred())
        goto refused;
    e->hi = PyLong_AsLongLongAndOverflow(OUT(HI), &overflow);
    if (overflow || PyErr_Occurred())
        goto refused;
    e->always = (int)PyLong_AsLong(OUT(ALWAYS));
    if (PyErr_Occurred())
        goto refused;
    e->ident = PyLong_AsLongLongAndOverflow(OUT(IDENT), &overflow);
    if (overflow || PyErr_Occurred())
        goto refused;
    e->native = (int)PyLong_AsLong(OUT(NATIVE));
    if (PyErr_Occurred() || e->native < 0 || e->native > 2)
        goto refused;
    e->stats = Py_NewRef(OUT(STATS));
    e->service_label = Py_NewRef(OUT(SERVICE_LABEL));
    e->provider_attr = Py_NewRef(OUT(PROVIDER_ATTR));
    e->request_key = Py_NewRef(OUT(REQUEST_KEY));
    e->status = Py_NewRef(OUT(STATUS));
    e->error_attr = Py_NewRef(OUT(ERROR_ATTR));
    if (OUT(LOG_STATIC) != Py_None) {
        if (!PyUnicode_CheckExact(OUT(LOG_STATIC)))
            goto refused;
        e->log_static = Py_NewRef(OUT(LOG_STATIC));
    }
    if (kind == KIND_PRICED) {
        PyObject *tiers = OUT(TIERS), *prefixes = OUT(PREFIXES);
        if (float_tuple(OUT(BASE), e->base) < 0 || !PyTuple_CheckExact(tiers) ||
            PyTuple_GET_SIZE(tiers) > MAX_TIERS || !PyFloat_CheckExact(OUT(MULTIPLIER)) ||
            !PyTuple_CheckExact(prefixes) || PyTuple_GET_SIZE(prefixes) != COST_PARTS + 1)
            goto refused;
        e->ntiers = (int)PyTuple_GET_SIZE(tiers);
        for (int i = 0; i < e->ntiers; i++) {
            PyObject *tier = PyTuple_GET_ITEM(tiers, i);
            if (!PyTuple_CheckExact(tier) || PyTuple_GET_SIZE(tier) != 2 ||
                !PyLong_CheckExact(PyTuple_GET_ITEM(tier, 0)))
                goto refused;
            e->threshold[i] = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(tier, 0), &overflow);
            if (overflow || PyErr_Occurred() || float_tuple(PyTuple_GET_ITEM(tier, 1), e->tier[i]) < 0)
                goto refused;
        }
        e->multiplier = PyFloat_AS_DOUBLE(OUT(MULTIPLIER));
        for (int i = 0; i < COST_PARTS + 1; i++)
            if (!PyBytes_CheckExact(PyTuple_GET_ITEM(prefixes, i)))
                goto refused;
        e->prefixes = Py_NewRef(prefixes);
    }
    else if (kind == KIND_UNPRICED) {
        if (!PyTuple_CheckExact(OUT(UNPRICED_KEY)) || !PyBytes_CheckExact(OUT(UNPRICED_ATTR)))
            goto refused;
        e->unpriced_key = Py_NewRef(OUT(UNPRICED_KEY));
        e->unpriced_attr = Py_NewRef(OUT(UNPRICED_ATTR));
    }
#undef OUT
learned:
    if (lane_insert(l, e) < 0) {
        entry_free(e);
        return NULL;
    }
    Py_RETURN_TRUE;
refused:
    PyErr_Clear();
    entry_free(e);
    Py_RETURN_FALSE;
}

static PyObject *
lane_flush_method(LaneObject *l, PyObject *unused)
{
    (void)unused;
    if (lane_flush(l) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
lane_clear(LaneObject *l, PyObject *unused)
{
    (void)unused;
    int rc = lane_flush(l);
    lane_drop_entries(l);
    lane_drop_whos(l);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
lane_get_stats(LaneObject *l, void *closure)
{
    (void)closure;
    return Py_BuildValue("{sLsLsn}", "fast", l->fast, "slow", l->slow_calls, "entries", l->used);
}

static PyMethodDef lane_methods[] = {
    {"process", (PyCFunction)(void (*)(void))lane_process, METH_FASTCALL,
     "process(data, service_of, slow) -> (bytes, genai, other)"},
    {"learn", (PyCFunction)(void (*)(void))lane_learn, METH_FASTCALL,
     "learn(signature, kind, outcome) -> bool"},
    {"flush", (PyCFunction)lane_flush_method, METH_NOARGS, "add pending sums to the registry"},
    {"clear", (PyCFunction)lane_clear, METH_NOARGS, "flush, then forget every entry"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef lane_getset[] = {
    {"stats", (getter)lane_get_stats, NULL, "{fast, slow, entries}: spans by path, entries held",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot lane_slots[] = {
    {Py_tp_dealloc, lane_dealloc},
    {Py_tp_doc, "a whole export request in C for spans seen before (see Pipeline)"},
    {Py_tp_methods, lane_methods},
    {Py_tp_getset, lane_getset},
    {Py_tp_new, lane_new},
    {0, NULL},
};

PyType_Spec lane_spec = {
    .name = "genai_otel.processors._wirescan.Lane",
    .basicsize = sizeof(LaneObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = lane_slots,
};

