/* The Recent type: recent GenAI calls, for duplicate spans (described in _wirescan.h). */
#include "_wirescan.h"

/* hash(bytes(p[:n])) for n > 0, without making the bytes object: the keyed hash function
 * (SipHash by default) of PEP 456, as bytes.__hash__ calls it (-1 is an error code, so -2). */
static inline Py_hash_t
recent_hash(const RecentObject *r, const void *p, Py_ssize_t n)
{
    Py_hash_t h = r->hash_bytes(p, n);
    return h == -1 ? -2 : h;
}

static Py_ssize_t
recent_find(RecentObject *r, Py_hash_t key)
{
    Py_ssize_t mask = r->index_mask;
    for (Py_ssize_t i = (Py_ssize_t)((uint64_t)key & (uint64_t)mask);; i = (i + 1) & mask) {
        if (r->index[i].key == key)
            return r->index[i].pos;
        if (r->index[i].key == 0)
            return -1;
    }
}

static void
recent_unindex(RecentObject *r, Py_hash_t key)
{
    Py_ssize_t mask = r->index_mask, i = (Py_ssize_t)((uint64_t)key & (uint64_t)mask);
    for (;; i = (i + 1) & mask) {
        if (r->index[i].key == 0)
            return;
        if (r->index[i].key == key)
            break;
    }
    /* backward-shift deletion: later entries of the probe run move into the gap */
    Py_ssize_t gap = i;
    for (Py_ssize_t j = (gap + 1) & mask; r->index[j].key != 0; j = (j + 1) & mask) {
        Py_ssize_t home = (Py_ssize_t)((uint64_t)r->index[j].key & (uint64_t)mask);
        if (((j - home) & mask) >= ((j - gap) & mask)) { /* home is not in (gap, j] */
            r->index[gap] = r->index[j];
            gap = j;
        }
    }
    r->index[gap].key = 0;
}

static void
recent_clear_slot(RecentObject *r, Py_ssize_t pos)
{
    RecentSlot *s = &r->ring[pos];
    if (s->scope == NULL)
        return;
    for (int k = 0; k < 4; k++)
        if (s->keys[k])
            recent_unindex(r, s->keys[k]);
    Py_CLEAR(s->scope);
    memset(s, 0, sizeof *s);
}

static int
recent_log(RecentObject *r, Py_ssize_t pos, int op)
{
    if (grow((void **)&r->undo, &r->undo_room, r->nundo, sizeof(RecentUndo)) < 0)
        return -1;
    r->undo[r->nundo].pos = pos;
    r->undo[r->nundo++].op = op;
    return 0;
}

/* Remembers one span under its keys (a key already held by an older span now means this one);
 * its ring position, or -1 on failure. */
static Py_ssize_t
recent_insert(RecentObject *r, const RecentSlot *value)
{
    for (int k = 0; k < 4; k++) {
        Py_hash_t key = value->keys[k];
        Py_ssize_t old = key ? recent_find(r, key) : -1;
        if (old < 0)
            continue;
        recent_unindex(r, key);
        for (int j = 0; j < 4; j++)
            if (r->ring[old].keys[j] == key)
                r->ring[old].keys[j] = 0;
    }
    Py_ssize_t pos = r->next;
    recent_clear_slot(r, pos); /* the oldest span goes */
    r->next = (pos + 1) % r->cap;
    RecentSlot *s = &r->ring[pos];
    *s = *value;
    Py_INCREF(s->scope);
    for (int k = 0; k < 4; k++) {
        Py_hash_t key = s->keys[k];
        if (key == 0)
            continue;
        Py_ssize_t i = (Py_ssize_t)((uint64_t)key & (uint64_t)r->index_mask);
        while (r->index[i].key != 0 && r->index[i].key != key)
            i = (i + 1) & r->index_mask;
        r->index[i].key = key; /* the same key twice in one span (a span its own parent): once */
        r->index[i].pos = pos;
    }
    return recent_log(r, pos, UNDO_INSERT) < 0 ? -1 : pos;
}

/* A key from a keyed hash and a tag: a bijective mix, so distinct inputs stay distinct. */
static inline Py_hash_t
recent_mix(Py_hash_t h, uint64_t tag)
{
    uint64_t x = (uint64_t)h ^ (tag * 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x == 0 ? 1 : (Py_hash_t)x;
}

/* A span's key under its own id, which finds a later copy of it. */
static inline Py_hash_t
recent_own(RecentObject *r, const uint8_t *trace, const uint8_t *span)
{
    uint8_t buffer[24];
    memcpy(buffer, trace, 16);
    memcpy(buffer + 16, span, 8);
    return recent_mix(recent_hash(r, buffer, 24), 'S');
}

/* The slot of the span counted for the same call as this one (then this one is a duplicate,
 * remembered as such), or NULL: this one is counted, and remembered. *again = 1 when this very
 * span (its trace and span id) was seen before: the slot returned is its first copy's, whose
 * kind says what that copy was. -1 in *error on failure.
 * native: 1 the SDK's own span, 2 a span that may be around one (the same provider), 0 neither. */
RecentSlot *
recent_see(RecentObject *r, PyObject *scope, int native, PyObject *service, long long ident,
           const uint8_t *trace, Py_ssize_t trace_len, const uint8_t *span, Py_ssize_t span_len,
           const uint8_t *parent, Py_ssize_t parent_len, long long start, long long end, const uint8_t *rid,
           Py_ssize_t rid_len, int *error, int *again)
{
    *error = 0;
    *again = 0;
    Py_hash_t scope_hash = PyObject_Hash(scope), service_hash = PyObject_Hash(service);
    if (scope_hash == -1 || service_hash == -1) {
        *error = -1;
        return NULL;
    }
    int traced = trace_len == 16;
    int has_span = traced && span_len == 8, has_parent = traced && parent_len == 8;
    int has_rid = rid_len > 0 && rid_len <= RECENT_MAX_RESPONSE_ID;
    uint8_t buffer[16 + RECENT_MAX_RESPONSE_ID];
    Py_hash_t own = 0, up = 0, answer = 0, side = 0, mine = 0; /* mine: my own id's key */
    if (has_span || has_parent)
        memcpy(buffer, trace, 16);
    if (has_span) {
        memcpy(buffer + 16, span, 8);
        own = recent_hash(r, buffer, 24);
        mine = recent_mix(own, 'S');
        Py_ssize_t first = recent_find(r, mine);
        if (first >= 0) { /* a copy of a span seen before, whatever the window */
            *again = 1;
            return &r->ring[first];
        }
    }
    if (has_parent) {
        memcpy(buffer + 16, parent, 8);
        up = recent_hash(r, buffer, 24);
    }
    if (has_rid) {
        memcpy(buffer, &ident, 8);
        memcpy(buffer + 8, rid, (size_t)rid_len);
        answer = recent_mix(recent_hash(r, buffer, 8 + rid_len), 'R');
    }
    if (native)
        side = service_hash ^ (Py_hash_t)((uint64_t)ident * 0xD6E8FEB86659FD93ULL);
    Py_hash_t look[4] = {
        has_parent ? recent_mix(up, 'S') : 0, /* my parent, seen before */
        has_span ? recent_mix(own, 'W') : 0,  /* my child, waiting for me */
        answer,                               /* my response id */
        native == 1 ? recent_mix(side, 'P') : native == 2 ? recent_mix(side, 'N') : 0, /* the other side */
    };
    for (int k = 0; k < 4; k++) {
        Py_ssize_t at = look[k] ? recent_find(r, look[k]) : -1;
        if (at < 0)
            continue;
        RecentSlot *s = &r->ring[at];
        /* nested or one response: overlapping; a native span and a peer's: one within the other */
        int timed = k < 3 ? s->start <= end && start <= s->end
                          : (native == 1 ? s->start <= start && end <= s->end
                                         : start <= s->start && s->end <= end);
        if (!s->paired && s->scope_hash != scope_hash && s->ident == ident && timed &&
            r->now - s->seen <= r->window) {
            s->paired = 1;
            r->duplicates++;
            if (recent_log(r, at, UNDO_PAIR) < 0) {
                *error = -1;
                return NULL;
            }
            if (!has_span)
                return s;
            /* remembered under its own id only, paired, naming the counted span: a later copy is
             * marked the same way, and nothing pairs with it */
            RecentSlot value;
            memset(&value, 0, sizeof value);
            value.keys[1] = mine;
            value.scope_hash = s->scope_hash;
            value.scope = Py_NewRef(s->scope); /* s may be the slot the insert overwrites */
            value.ident = ident;
            value.start = start;
            value.end = end;
            memcpy(value.span_id, s->span_id, 8);
            value.paired = 1;
            value.kind = RECENT_DUPLICATE;
            value.seen = r->now;
            Py_ssize_t pos = recent_insert(r, &value);
            Py_DECREF(value.scope);
            if (pos < 0) {
                *error = -1;
                return NULL;
            }
            return &r->ring[pos];
        }
    }
    RecentSlot value;
    memset(&value, 0, sizeof value);
    value.keys[0] = answer;
    value.keys[1] = mine; /* for my children and my copies */
    value.keys[2] = has_parent ? recent_mix(up, 'W') : 0; /* for my parent */
    value.keys[3] = native == 1 ? recent_mix(side, 'N') : native == 2 ? recent_mix(side, 'P') : 0;
    value.scope_hash = scope_hash;
    value.scope = scope;
    value.ident = ident;
    value.start = start;
    value.end = end;
    if (has_span)
        memcpy(value.span_id, span, 8);
    value.seen = r->now;
    if (recent_insert(r, &value) < 0)
        *error = -1;
    return NULL;
}

/* again(trace_id, span_id) for a span that records something other than a model call (a tool
 * call, an agent run, an evaluation): True when this span was seen before, else False, and it is
 * remembered under its own id (paired: nothing pairs with it). */
static PyObject *
recent_again(RecentObject *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "again(trace_id: bytes, span_id: bytes)");
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[0]) != 16 || PyBytes_GET_SIZE(args[1]) != 8)
        Py_RETURN_FALSE; /* no identity to recognise a copy by */
    const uint8_t *span = (const uint8_t *)PyBytes_AS_STRING(args[1]);
    Py_hash_t own = recent_own(r, (const uint8_t *)PyBytes_AS_STRING(args[0]), span);
    if (recent_find(r, own) >= 0)
        Py_RETURN_TRUE;
    RecentSlot value;
    memset(&value, 0, sizeof value);
    value.keys[1] = own;
    value.scope = Py_None;
    memcpy(value.span_id, span, 8);
    value.paired = 1;
    value.kind = RECENT_SEEN;
    value.seen = r->now;
    if (recent_insert(r, &value) < 0)
        return NULL;
    Py_RETURN_FALSE;
}

static PyObject *
recent_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"capacity", "window_seconds", NULL};
    Py_ssize_t capacity;
    double window;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nd:Recent", kwlist, &capacity, &window))
        return NULL;
    if (capacity < 1 || capacity > 100000000 || !(window >= 0)) {
        PyErr_SetString(PyExc_ValueError, "Recent: capacity 1..1e8, window >= 0");
        return NULL;
    }
    RecentObject *r = (RecentObject *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    Py_ssize_t index_cap = 16;
    while (index_cap < capacity * 8) /* up to four keys a span, at most half full */
        index_cap *= 2;
    r->ring = PyMem_Calloc((size_t)capacity, sizeof(RecentSlot));
    r->index = PyMem_Calloc((size_t)index_cap, sizeof(RecentIndex));
    if (r->ring == NULL || r->index == NULL) {
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    r->hash_bytes = PyHash_GetFuncDef()->hash;
    r->cap = capacity;
    r->index_mask = index_cap - 1;
    r->window = window;
    return (PyObject *)r;
}

static void
recent_dealloc(RecentObject *r)
{
    if (r->ring != NULL)
        for (Py_ssize_t i = 0; i < r->cap; i++)
            Py_XDECREF(r->ring[i].scope);
    PyMem_Free(r->ring);
    PyMem_Free(r->index);
    PyMem_Free(r->undo);
    PyTypeObject *type = Py_TYPE(r);
    type->tp_free((PyObject *)r);
    Py_DECREF(type); /* a heap type: its instances hold a reference */
}

/* begin(now): a request starts at monotonic time `now`. */
static PyObject *
recent_begin(RecentObject *r, PyObject *now)
{
    double t = PyFloat_AsDouble(now);
    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    r->now = t;
    r->nundo = 0;
    Py_RETURN_NONE;
}

/* settle(ok): the request is done; when it failed, what it changed is undone. */
static PyObject *
recent_settle(RecentObject *r, PyObject *ok)
{
    int kept = PyObject_IsTrue(ok);
    if (kept < 0)
        return NULL;
    if (!kept)
        for (Py_ssize_t i = r->nundo - 1; i >= 0; i--) {
            RecentUndo *u = &r->undo[i];
            if (u->op == UNDO_INSERT)
                recent_clear_slot(r, u->pos);
            else {
                r->ring[u->pos].paired = 0;
                r->duplicates--;
            }
        }
    r->nundo = 0;
    Py_RETURN_NONE;
}

/* see(scope, native, service, ident, trace_id, span_id, parent_span_id, start_ns, end_ns,
 *     response_id | None) -> (span id, scope) of the span counted for this call, or None (this
 * one is counted); for a copy of a span seen before (the same trace and span id), (the counted
 * span's id, None) when its first copy was a duplicate, else (b"", None). */
static PyObject *
recent_see_method(RecentObject *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[2]) || !PyBytes_Check(args[4]) ||
        !PyBytes_Check(args[5]) || !PyBytes_Check(args[6]) || (args[9] != Py_None && !PyUnicode_Check(args[9]))) {
        PyErr_SetString(PyExc_TypeError,
                        "see(scope: str, native: 0 | 1 | 2, service: str, ident: int, trace_id, span_id, "
                        "parent_span_id: bytes, start_ns, end_ns: int, response_id: str | None)");
        return NULL;
    }
    int native = (int)PyLong_AsLong(args[1]);
    long long ident = PyLong_AsLongLong(args[3]), start = PyLong_AsLongLong(args[7]),
              end = PyLong_AsLongLong(args[8]);
    if (PyErr_Occurred())
        return NULL;
    const char *rid = NULL;
    Py_ssize_t rid_len = 0;
    if (args[9] != Py_None && (rid = PyUnicode_AsUTF8AndSize(args[9], &rid_len)) == NULL)
        return NULL;
    int error, again;
    RecentSlot *kept = recent_see(
        r, args[0], native, args[2], ident, (const uint8_t *)PyBytes_AS_STRING(args[4]),
        PyBytes_GET_SIZE(args[4]), (const uint8_t *)PyBytes_AS_STRING(args[5]), PyBytes_GET_SIZE(args[5]),
        (const uint8_t *)PyBytes_AS_STRING(args[6]), PyBytes_GET_SIZE(args[6]), start, end,
        (const uint8_t *)rid, rid_len, &error, &again);
    if (error < 0)
        return NULL;
    if (kept == NULL)
        Py_RETURN_NONE;
    if (again) /* a copy: (the counted span's id, None) if its first copy was a duplicate, else (b"", None) */
        return Py_BuildValue("(y#O)", (const char *)kept->span_id,
                             (Py_ssize_t)(kept->kind == RECENT_DUPLICATE ? 8 : 0), Py_None);
    return Py_BuildValue("(y#O)", (const char *)kept->span_id, (Py_ssize_t)8, kept->scope);
}

static PyObject *
recent_get_duplicates(RecentObject *r, void *closure)
{
    (void)closure;
    return PyLong_FromLongLong(r->duplicates);
}

/* What the ring and its index take once full (calloc'd: pages are touched as they fill). */
static PyObject *
recent_get_memory_bytes(RecentObject *r, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(r->cap * (Py_ssize_t)sizeof(RecentSlot) +
                              (r->index_mask + 1) * (Py_ssize_t)sizeof(RecentIndex));
}

static PyMethodDef recent_methods[] = {
    {"see", (PyCFunction)(void (*)(void))recent_see_method, METH_FASTCALL,
     "see(scope, native, service, ident, trace_id, span_id, parent_span_id, start_ns, end_ns, "
     "response_id) -> (span id, scope) | (span id | b'', None) for a copy | None"},
    {"again", (PyCFunction)(void (*)(void))recent_again, METH_FASTCALL,
     "again(trace_id, span_id) -> whether this span was seen before (else it is remembered)"},
    {"begin", (PyCFunction)recent_begin, METH_O, "begin(now): a request starts"},
    {"settle", (PyCFunction)recent_settle, METH_O, "settle(ok): the request is done (undone unless ok)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef recent_getset[] = {
    {"duplicates", (getter)recent_get_duplicates, NULL, "duplicates found", NULL},
    {"memory_bytes", (getter)recent_get_memory_bytes, NULL, "bytes the memory takes once full", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot recent_slots[] = {
    {Py_tp_doc, "Recent GenAI calls, to find the second span of one call (see processors/duplicates.py)."},
    {Py_tp_new, recent_new},
    {Py_tp_dealloc, recent_dealloc},
    {Py_tp_methods, recent_methods},
    {Py_tp_getset, recent_getset},
    {0, NULL},
};

PyType_Spec recent_spec = {
    .name = "genai_otel.processors._wirescan.Recent",
    .basicsize = sizeof(RecentObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = recent_slots,
};

