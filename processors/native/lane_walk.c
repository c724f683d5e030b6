/* Lane.process: the walk of a whole request, what each span records, and the commit. */
#include "_wirescan.h"

/* A token count as Normaliser._tokens reads the first present key of a group: 1 and *out when
 * it is a plain int in [0, max]; 0 when the group is absent; -1 when the Python path must judge. */
static int
lane_tokens(LaneObject *l, Sink *s, const uint8_t *d, Py_ssize_t n, int g, long long *out)
{
    for (int i = 0; i < l->ngroup[g]; i++) {
        int k = l->group[g][i];
        if (!(s->present & ((uint64_t)1 << k)))
            continue;
        Py_ssize_t p = s->value_start[k];
        if (p >= s->value_end[k] || d[p] != 0x18)
            return -1;
        p++;
        uint64_t v;
        int wide;
        if (read_varint(d, n, &p, &v, &wide) < 0 || wide)
            return -1;
        long long count = (long long)v;
        if (count < 0 || count > l->max_tokens)
            return -1;
        *out = count;
        return 1;
    }
    *out = 0;
    return 0;
}

static int
put_int_attribute(LaneObject *l, Buffer *b, int which, long long value)
{
    uint8_t varint[10];
    Py_ssize_t size = put_varint(varint, (uint64_t)value);
    PyObject *header = PyList_GET_ITEM(PyTuple_GET_ITEM(PyTuple_GET_ITEM(l->ctx, CTX_TOKEN_HEADERS), which), size);
    Py_ssize_t hlen = PyBytes_GET_SIZE(header);
    if (buffer_reserve(b, hlen + 1 + size) < 0)
        return -1;
    memcpy(b->data + b->len, PyBytes_AS_STRING(header), (size_t)hlen);
    b->len += hlen;
    b->data[b->len++] = 0x18;
    memcpy(b->data + b->len, varint, (size_t)size);
    b->len += size;
    return 0;
}

static int
put_bytes(Buffer *b, PyObject *bytes)
{
    Py_ssize_t len = PyBytes_GET_SIZE(bytes);
    if (buffer_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->len, PyBytes_AS_STRING(bytes), (size_t)len);
    b->len += len;
    return 0;
}

/* What one span records (Registry.record_call's effects), applied only when the whole request
 * has been walked and re-assembled: a request is accounted all or nothing. e == NULL: the Python
 * path handled spans here, and journal[..upto] holds what they record. */
typedef struct {
    Entry *e;
    long long tokens[TOKEN_TYPES], q[COST_PARTS];
    double duration, ttfc, end_s;
    int has_ttfc;
    PyObject *trace; /* owned; NULL without exemplars */
    Py_ssize_t who_at[2], who_len[2];
    Py_ssize_t trace_at, trace_len, span_at, span_len; /* ids in the request (for the call log) */
    Py_ssize_t upto;
    PyObject *duplicate; /* owned: (counted span's scope, this span's scope); e is NULL */
    int again;           /* a copy of a span seen before: enriched as its first copy, records nothing */
} Rec;

typedef struct {
    LaneObject *l;
    PyObject *data, *service_of, *slow, *journal;
    Rec *recs;
    Py_ssize_t nrecs, recs_room;
    Py_ssize_t journaled; /* journal items already behind a record */
    const uint8_t *d;
    Py_ssize_t n;
    Output out;
    Place place;
    PyObject *scope_name;  /* str */
    uint64_t scope_id;     /* the scope's number in signatures (LaneObject.scope_ids) */
    PyObject *service;     /* str, NULL until a span needs it */
    Py_ssize_t res_start, res_stop; /* the Resource's range (-1: none), for service_of */
    long long genai, other;
} Walk;

static int
walk_service(Walk *w)
{
    if (w->service != NULL)
        return 0;
    PyObject *found = PyObject_CallFunction(w->service_of, "Onn", w->data, w->res_start, w->res_stop);
    if (found == NULL)
        return -1;
    if (!PyUnicode_Check(found)) {
        Py_DECREF(found);
        PyErr_SetString(PyExc_TypeError, "Lane: service_of must return a str");
        return -1;
    }
    w->service = found;
    return 0;
}

static Rec *
walk_rec(Walk *w)
{
    if (grow((void **)&w->recs, &w->recs_room, w->nrecs, sizeof(Rec)) < 0)
        return NULL;
    Rec *r = &w->recs[w->nrecs++];
    memset(r, 0, sizeof *r);
    return r;
}

/* The Python path for one span: slow(data, entry, scope name, service, signature), which appends
 * what the span records to the journal; applied in span order with the lane's own records. */
static int
walk_slow(Walk *w, Py_ssize_t field_start, Py_ssize_t start, Py_ssize_t end, PyObject *signature)
{
    LaneObject *l = w->l;
    PyObject *spans = NULL, *result = NULL;
    int rc = -1;
    if (walk_service(w) < 0)
        goto done;
    if (visit_span(l->t, w->data, w->d, w->n, field_start, start, end, &spans) < 0)
        goto done;
    if (spans == NULL) { /* neither a known key nor the event after all: an ordinary span */
        w->other++;
        rc = 0;
        goto done;
    }
    l->slow_calls++;
    result = PyObject_CallFunctionObjArgs(w->slow, w->data, PyList_GET_ITEM(spans, 0), w->scope_name,
                                          w->service, signature ? signature : Py_None, NULL);
    if (result == NULL)
        goto done;
    if (!PyTuple_CheckExact(result) || PyTuple_GET_SIZE(result) != 2 ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(result, 0))) {
        PyErr_SetString(PyExc_TypeError, "Lane: slow must return (bytes, bool)");
        goto done;
    }
    int genai = PyObject_IsTrue(PyTuple_GET_ITEM(result, 1));
    if (genai < 0)
        goto done;
    if (genai)
        w->genai++;
    else
        w->other++;
    Py_ssize_t upto = PyList_GET_SIZE(w->journal);
    if (upto > w->journaled) {
        Rec *r = walk_rec(w);
        if (r == NULL)
            goto done;
        r->upto = w->journaled = upto;
    }
    PyObject *added = PyTuple_GET_ITEM(result, 0);
    rc = output_add(&w->out, &w->place, field_start, start, end, (const uint8_t *)PyBytes_AS_STRING(added),
                    PyBytes_GET_SIZE(added));
done:
    Py_XDECREF(spans);
    Py_XDECREF(result);
    return rc;
}

static int
sig_put(uint8_t *sig, Py_ssize_t *len, const void *bytes, Py_ssize_t n)
{
    if (n > 0xFFFF || *len + 2 + n > MAX_SIGNATURE)
        return -1;
    sig[(*len)++] = (uint8_t)(n & 0xFF);
    sig[(*len)++] = (uint8_t)(n >> 8);
    memcpy(sig + *len, bytes, (size_t)n);
    *len += n;
    return 0;
}

/* The bytes of key k's value when it is a string_value: 1 with them, 0 when absent, -1 otherwise. */
static int
lane_string(Sink *s, const uint8_t *d, Py_ssize_t n, int k, Py_ssize_t *at, Py_ssize_t *len)
{
    if (!(s->present & ((uint64_t)1 << k)))
        return 0;
    Py_ssize_t p = s->value_start[k], end = s->value_end[k];
    if (p >= end || d[p] != 0x0A)
        return -1;
    p++;
    uint64_t size;
    int wide;
    if (read_varint(d, n, &p, &size, &wide) < 0 || wide || size > (uint64_t)(end - p))
        return -1;
    *at = p;
    *len = (Py_ssize_t)size;
    return 1;
}

/* The raw string of key k when Normaliser._text would take it as is: 1 with its bytes, 0 when
 * absent, -1 when the Python path must judge. */
static int
lane_raw_text(LaneObject *l, Sink *s, const uint8_t *d, Py_ssize_t n, int k, Py_ssize_t *at,
              Py_ssize_t *len)
{
    int found = lane_string(s, d, n, k, at, len);
    return found == 1 && *len > l->max_length ? -1 : found;
}

/* Registry.record_call's cost by user (which 0) or feature (1): the table's add(Registry.cost_key(...), total) */
static int
lane_who_cost(LaneObject *l, PyObject *service_label, int which, const uint8_t *raw, Py_ssize_t len,
              long long total)
{
    WsState *st = l->state;
    uint8_t stack[512];
    Py_ssize_t key_len = 1 + (Py_ssize_t)sizeof(PyObject *) + len;
    uint8_t *key = key_len <= (Py_ssize_t)sizeof stack ? stack : PyMem_Malloc((size_t)key_len);
    if (key == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    key[0] = (uint8_t)which;
    memcpy(key + 1, &service_label, sizeof(PyObject *));
    memcpy(key + 1 + sizeof(PyObject *), raw, (size_t)len);
    uint64_t hash = signature_hash(key, key_len);
    Py_ssize_t mask = l->who_cap - 1, i = (Py_ssize_t)(hash & (uint64_t)mask);
    int rc = -1;
    PyObject *value = NULL, *table_key = NULL;
    for (;; i = (i + 1) & mask) {
        Who *found = l->whos[i];
        if (found == NULL)
            break;
        if (found->hash == hash && found->key_len == key_len && memcmp(found->key, key, (size_t)key_len) == 0) {
            found->pending += total;
            found->overflowed += found->overflow;
            if (!found->dirty) {
                found->dirty = 1;
                found->next_dirty = l->dirty_whos;
                l->dirty_whos = found;
            }
            rc = 0;
            goto done;
        }
    }
    /* first sight: Registry.cost_key decides the series key (the limiter admits new values and
     * counts overflow). Its verdict is final (the admitted set only grows, up to a fixed cap), so
     * it is cached either way; each later sighting of a value the limiter counted as overflow
     * counts one more, as a call would. */
    PyObject *verdict = NULL; /* (series key, whether capping the value counted an overflow) */
    if ((value = PyUnicode_DecodeUTF8((const char *)raw, len, "replace")) == NULL ||
        (verdict = PyObject_CallFunction(PyTuple_GET_ITEM(l->ctx, CTX_COST_KEY), "iOO", which, service_label,
                                         value)) == NULL)
        goto done;
    if (!PyTuple_CheckExact(verdict) || PyTuple_GET_SIZE(verdict) != 2) {
        Py_DECREF(verdict);
        PyErr_SetString(PyExc_TypeError, "Lane: Registry.cost_key returns (key, overflowed)");
        goto done;
    }
    table_key = Py_NewRef(PyTuple_GET_ITEM(verdict, 0));
    int overflow = PyObject_IsTrue(PyTuple_GET_ITEM(verdict, 1));
    Py_DECREF(verdict);
    if (overflow < 0)
        goto done;
    if ((l->who_used + 1) * 2 > l->who_cap) { /* full: make room, and cache it next time */
        if (l->who_used >= MAX_ENTRIES) {
            if (lane_flush_whos(l) < 0)
                goto done;
            lane_drop_whos(l);
        }
        else if (table_grow((void ***)&l->whos, &l->who_cap, offsetof(Who, hash)) < 0)
            goto done;
        rc = counts_add(st, PyTuple_GET_ITEM(l->ctx, which ? CTX_FEATURE_COST : CTX_USER_COST), table_key, total);
        goto done;
    }
    /* added at once (a new series is created, and stamped, when the Python path would), and
     * cached for the next sightings */
    PyObject *table = PyTuple_GET_ITEM(l->ctx, which ? CTX_FEATURE_COST : CTX_USER_COST);
    if (counts_add(st, table, table_key, total) < 0)
        goto done;
    /* a full table sent it to its overflow key: not cached, so each sighting is counted there */
    int kept = PyDict_Contains(table, table_key);
    if (kept <= 0) {
        rc = kept;
        goto done;
    }
    Who *who = PyMem_Calloc(1, sizeof(Who));
    if (who == NULL || (who->key = PyMem_Malloc((size_t)key_len)) == NULL) {
        PyMem_Free(who);
        PyErr_NoMemory();
        goto done;
    }
    memcpy(who->key, key, (size_t)key_len);
    who->key_len = key_len;
    who->hash = hash;
    who->which = which;
    who->overflow = overflow;
    who->table_key = Py_NewRef(table_key);
    l->whos[i] = who;
    l->who_used++;
    rc = 0;
done:
    if (key != stack)
        PyMem_Free(key);
    Py_XDECREF(value);
    Py_XDECREF(table_key);
    return rc;
}

/* SeriesStats.stamp(index) when the series first becomes non-zero, at the moment the Python path
 * would (the sums themselves wait for the flush). */
static int
entry_stamp(WsState *st, Entry *e, int index)
{
    if (e->stamped & (1 << index))
        return 0;
    PyObject *stamps = attr_get(e->stats, st->a_stamps);
    if (stamps == NULL)
        return -1;
    int rc = 0;
    if (!PyList_CheckExact(stamps) || PyList_GET_SIZE(stamps) != STAMP_SAVINGS + 1) {
        PyErr_SetString(PyExc_TypeError, "Lane: SeriesStats.stamps is not one per token type and two");
        rc = -1;
    }
    else if (PyList_GET_ITEM(stamps, index) == Py_None) {
        PyObject *i = PyLong_FromLong(index);
        PyObject *r = i ? PyObject_CallMethodOneArg(e->stats, st->a_stamp, i) : NULL;
        Py_XDECREF(i);
        Py_XDECREF(r);
        rc = r == NULL ? -1 : 0;
    }
    Py_DECREF(stamps);
    if (rc == 0)
        e->stamped |= 1 << index;
    return rc;
}

/* A duplicate span: genai_otel.cost.duplicate_of = the counted span's id (hex), counted as such
 * (again: a copy of a duplicate seen before, marked the same way and counted as a copy). */
static int
walk_duplicate(Walk *w, const RecentSlot *kept, int again, Py_ssize_t field_start, Py_ssize_t start,
               Py_ssize_t end)
{
    static const char hex[] = "0123456789abcdef";
    Rec *r = walk_rec(w);
    if (r == NULL)
        return -1;
    r->again = again;
    if (!again && (r->duplicate = PyTuple_Pack(2, kept->scope, w->scope_name)) == NULL)
        return -1;
    Buffer *b = &w->out.bytes;
    Py_ssize_t mark = b->len;
    if (put_bytes(b, PyTuple_GET_ITEM(w->l->ctx, CTX_DUPLICATE_PREFIX)) < 0 || buffer_reserve(b, 16) < 0)
        return -1;
    for (int i = 0; i < 8; i++) {
        b->data[b->len++] = (uint8_t)hex[kept->span_id[i] >> 4];
        b->data[b->len++] = (uint8_t)hex[kept->span_id[i] & 15];
    }
    Py_ssize_t added = b->len - mark;
    b->len = mark;
    if (output_add(&w->out, &w->place, field_start, start, end, NULL, added) < 0)
        return -1;
    w->l->fast++;
    w->genai++;
    return 0;
}

static int
walk_span(Walk *w, Py_ssize_t field_start, Py_ssize_t start, Py_ssize_t end)
{
    LaneObject *l = w->l;
    const uint8_t *d = w->d;
    Py_ssize_t n = w->n;
    Sink s;
    s.add = range_sink_add;
    s.clear = range_sink_clear;
    s.present = 0;
    int rc = (start < end && d[start] != 0x0A) ? scan_attribute_fields(l->t, d, n, start, end, &s)
                                               : scan_attributes(l->t, d, n, start, end, &s);
    if (rc < 0)
        return -1;
    int has_eval = contains_eval(l->t, d + start, end - start);
    if (rc == 0 && s.present == 0 && !has_eval) {
        w->other++;
        return 0;
    }
    if (rc == 1 || has_eval || (s.present & l->slow))
        return walk_slow(w, field_start, start, end, NULL);
    if (!(s.present & l->markers)) { /* Normaliser.normalise: not a model call */
        w->other++;
        return 0;
    }
    Facts facts;
    if (span_facts(d, n, start, end, &facts) != 0 || facts.start_ns == 0 ||
        facts.end_ns < facts.start_ns || facts.end_ns > (uint64_t)LLONG_MAX)
        return walk_slow(w, field_start, start, end, NULL);
    if (walk_service(w) < 0)
        return -1;
    /* the signature: everything the Python path's categorical decisions depend on */
    uint8_t sig[MAX_SIGNATURE];
    Py_ssize_t sig_len = 0;
    Py_ssize_t service_len;
    const char *service = PyUnicode_AsUTF8AndSize(w->service, &service_len);
    if (service == NULL)
        return -1;
    memcpy(sig, &w->scope_id, 8); /* the Python path's decisions may depend on the scope */
    sig_len += 8;
    sig[sig_len++] = (uint8_t)(facts.status == 2);
    memcpy(sig + sig_len, &s.present, 8);
    sig_len += 8;
    int fits = sig_put(sig, &sig_len, service, service_len) == 0;
    for (uint64_t keys = l->categorical & s.present; fits && keys; keys &= keys - 1) {
        int k = __builtin_ctzll(keys); /* the present categorical keys, in key order */
        fits = s.value_end[k] - s.value_start[k] <= l->max_length + 16 &&
               sig_put(sig, &sig_len, d + s.value_start[k], s.value_end[k] - s.value_start[k]) == 0;
    }
    if (!fits)
        return walk_slow(w, field_start, start, end, NULL);
    uint64_t hash = signature_hash(sig, sig_len);
    long long start_ns = (long long)facts.start_ns, end_ns = (long long)facts.end_ns;
    Entry *e = lane_find(l, sig, sig_len, hash);
    if (e == NULL || start_ns < e->lo || start_ns >= e->hi) {
        PyObject *signature = PyBytes_FromStringAndSize((const char *)sig, sig_len);
        if (signature == NULL)
            return -1;
        rc = walk_slow(w, field_start, start, end, signature);
        Py_DECREF(signature);
        return rc;
    }
    if (e->kind == KIND_OTHER) {
        w->other++;
        return 0;
    }
    /* the counts, corrected by the declared rules (normalise.TOKEN_CORRECTIONS); anything unusual
     * is the Python path's */
    long long tok[TOKEN_TYPES], total[TOKEN_TYPES];
    int have[TOKEN_TYPES];
    for (int g = 0; g < TOKEN_TYPES; g++) {
        if ((have[g] = lane_tokens(l, &s, d, n, g, &tok[g])) < 0)
            return walk_slow(w, field_start, start, end, NULL);
        total[g] = have[g] ? tok[g] : 0;
    }
    if ((!have[TOKEN_INPUT] && !have[TOKEN_OUTPUT]) != (e->kind == KIND_NO_COST))
        return walk_slow(w, field_start, start, end, NULL);
    for (int c = 0; c < l->ncorrections; c++) {
        long long added = 0;
        for (int g = 0; g < TOKEN_TYPES; g++)
            if ((l->correction_parts[c] >> g) & 1)
                added += total[g]; /* parts are never corrected: the reported counts */
        int target = l->correction_target[c];
        if (added && (added > total[target] || ((e->always >> c) & 1))) {
            total[target] += added;
            if (total[target] > l->max_tokens)
                return walk_slow(w, field_start, start, end, NULL);
        }
    }
    int has_ttfc = (s.present >> l->ttfc) & 1;
    double ttfc = 0.0;
    if (has_ttfc) {
        Py_ssize_t p = s.value_start[l->ttfc];
        if (p >= s.value_end[l->ttfc] || d[p] != 0x21 || p + 9 > s.value_end[l->ttfc])
            return walk_slow(w, field_start, start, end, NULL);
        ttfc = PyFloat_Unpack8((const char *)d + p + 1, 1);
        if (!isfinite(ttfc) || ttfc < 0)
            return walk_slow(w, field_start, start, end, NULL);
    }
    long long q[COST_PARTS] = {0};
    if (e->kind == KIND_PRICED) {
        const double *rate = e->base; /* pricing.Rates.for_input: tiers on the total input */
        for (int i = 0; i < e->ntiers; i++)
            if (total[TOKEN_INPUT] > e->threshold[i]) {
                rate = e->tier[i];
                break;
            }
        if (cost_quanta(l, total, rate, e->multiplier, q))
            return walk_slow(w, field_start, start, end, NULL);
    }
    Py_ssize_t who_at[2] = {0, 0}, who_len[2] = {0, 0};
    int got = 0;
    for (int i = 0; i < l->nusers && got == 0; i++)
        got = lane_raw_text(l, &s, d, n, l->users[i], &who_at[0], &who_len[0]);
    if (got < 0 || lane_raw_text(l, &s, d, n, l->feature, &who_at[1], &who_len[1]) < 0)
        return walk_slow(w, field_start, start, end, NULL);
    int again = 0;
    if (l->recent != NULL) { /* the second span of one call: counted once (duplicates.py) */
        int failed;
        Py_ssize_t rid_at = 0, rid_len = 0;
        if (lane_string(&s, d, n, l->response_id, &rid_at, &rid_len) < 0)
            rid_len = 0;
        RecentSlot *kept = recent_see(l->recent, w->scope_name, e->native, w->service, e->ident,
                                      d + facts.trace_start,
                                      facts.trace_stop - facts.trace_start, d + facts.span_start,
                                      facts.span_stop - facts.span_start, d + facts.parent_start,
                                      facts.parent_stop - facts.parent_start, start_ns, end_ns, d + rid_at,
                                      rid_len, &failed, &again);
        if (failed < 0)
            return -1;
        if (kept != NULL && (!again || kept->kind == RECENT_DUPLICATE))
            return walk_duplicate(w, kept, again, field_start, start, end);
    }
    /* everything is decided: the record (applied with the whole request: rec_apply) and the
     * enrichment */
    Rec *r = walk_rec(w);
    if (r == NULL)
        return -1;
    r->e = e;
    r->again = again;
    memcpy(r->tokens, total, sizeof total);
    memcpy(r->q, q, sizeof q);
    r->duration = (double)(end_ns - start_ns) / 1e9;
    r->end_s = (double)end_ns / 1e9;
    r->ttfc = ttfc;
    r->has_ttfc = has_ttfc;
    r->trace_at = facts.trace_start;
    r->trace_len = facts.trace_stop - facts.trace_start;
    r->span_at = facts.span_start;
    r->span_len = facts.span_stop - facts.span_start;
    for (int i = 0; i < 2; i++) {
        r->who_at[i] = who_at[i];
        r->who_len[i] = who_len[i];
    }
    if (l->exemplars && facts.trace_stop > facts.trace_start &&
        (r->trace = PyBytes_FromStringAndSize((const char *)d + facts.trace_start,
                                              facts.trace_stop - facts.trace_start)) == NULL)
        return -1;
    Buffer *b = &w->out.bytes;
    Py_ssize_t mark = b->len;
    if (e->kind == KIND_PRICED) {
        /* pipeline._cost_packer's layout */
        const double usd_per_quantum = 1.0 / 4294967296.0;
        double amounts[COST_PARTS + 1] = {(double)(q[0] + q[1] + q[2] + q[3]) * usd_per_quantum,
                             (double)q[0] * usd_per_quantum, (double)q[1] * usd_per_quantum,
                             (double)q[2] * usd_per_quantum, (double)q[3] * usd_per_quantum,
                             (double)q[4] * usd_per_quantum};
        for (Py_ssize_t i = 0; i < COST_PARTS + 1; i++) {
            PyObject *prefix = PyTuple_GET_ITEM(e->prefixes, i);
            if (put_bytes(b, prefix) < 0 || buffer_reserve(b, 8) < 0)
                return -1;
            put_double(b->data + b->len, amounts[i]);
            b->len += 8;
        }
    }
    else if (e->kind == KIND_UNPRICED && put_bytes(b, e->unpriced_attr) < 0)
        return -1;
    /* Pipeline._current_name for each name the span lacked, in Normaliser's order */
    if (PyBytes_GET_SIZE(e->provider_attr) && put_bytes(b, e->provider_attr) < 0)
        return -1;
    for (int g = 0; g < TOKEN_TYPES; g++)
        if (have[g] && (tok[g] || l->zero_written[g]) && !((s.present >> l->current[g]) & 1) &&
            put_int_attribute(l, b, g, total[g]) < 0)
            return -1;
    if (PyBytes_GET_SIZE(e->error_attr) && put_bytes(b, e->error_attr) < 0)
        return -1;
    Py_ssize_t added = b->len - mark;
    b->len = mark;
    if (output_add(&w->out, &w->place, field_start, start, end, NULL, added) < 0)
        return -1;
    l->fast++;
    w->genai++;
    return 0;
}

/* CallLog.line(static, trace id, span id, end, tokens, cost quanta, duration, ttfc, user, feature)
 * for a span the lane counted: the same line the Python path writes for it. */
static int
rec_log(LaneObject *l, const Rec *r, const uint8_t *d)
{
    const Entry *e = r->e;
    PyObject *tokens = NULL, *cost = NULL, *ttfc = NULL, *done = NULL;
    if (e->kind == KIND_NO_COST)
        tokens = Py_NewRef(Py_None);
    else if ((tokens = PyTuple_New(TOKEN_TYPES)) != NULL)
        for (int i = 0; i < TOKEN_TYPES; i++) {
            PyObject *v = PyLong_FromLongLong(r->tokens[i]);
            if (v == NULL) {
                Py_CLEAR(tokens);
                break;
            }
            PyTuple_SET_ITEM(tokens, i, v);
        }
    cost = e->kind == KIND_PRICED ? PyLong_FromLongLong(r->q[0] + r->q[1] + r->q[2] + r->q[3]) : Py_NewRef(Py_None);
    ttfc = r->has_ttfc ? PyFloat_FromDouble(r->ttfc) : Py_NewRef(Py_None);
    if (tokens != NULL && cost != NULL && ttfc != NULL)
        done = PyObject_CallFunction(PyTuple_GET_ITEM(l->ctx, CTX_CALL_LOG), "Oy#y#dOOdOy#y#", e->log_static,
                                     (const char *)d + r->trace_at, r->trace_len, (const char *)d + r->span_at,
                                     r->span_len, r->end_s, tokens, cost, r->duration, ttfc,
                                     (const char *)d + r->who_at[0], r->who_len[0], (const char *)d + r->who_at[1],
                                     r->who_len[1]);
    Py_XDECREF(tokens);
    Py_XDECREF(cost);
    Py_XDECREF(ttfc);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* One span's record (Registry.record_call): sums pending on its entry, histograms in place. */
static int
rec_apply(LaneObject *l, const Rec *r, const uint8_t *d)
{
    WsState *st = l->state;
    Entry *e = r->e;
    PyObject *trace = r->trace;
    const long long *tokens = r->tokens, *q = r->q;
    if (entry_duration(l, e) < 0 ||
        (r->has_ttfc && entry_histogram(l, e, &e->h_ttfc, st->a_ttfc, 1) < 0) ||
        (e->kind == KIND_PRICED && entry_histogram(l, e, &e->h_cost, st->a_cost_per_request, 3) < 0))
        return -1;
    if (!e->dirty) {
        e->dirty = 1;
        e->next_dirty = l->dirty;
        l->dirty = e;
    }
    e->requests++;
    if (e->kind != KIND_NO_COST) { /* Registry.add_sums: a call without usage counts no tokens */
        for (int i = 0; i < TOKEN_TYPES; i++) {
            e->tokens[i] += tokens[i];
            if (tokens[i] && entry_stamp(st, e, i) < 0)
                return -1;
        }
    }
    hist_record((HistObject *)e->h_duration, r->duration, trace, NULL, r->end_s, NULL);
    if (r->has_ttfc)
        hist_record((HistObject *)e->h_ttfc, r->ttfc, trace, NULL, r->end_s, NULL);
    if (tokens[TOKEN_OUTPUT] > 0 && e->kind != KIND_NO_COST) {
        double generating = r->duration - r->ttfc;
        if (generating > 0) {
            if (entry_histogram(l, e, &e->h_tps, st->a_tps, 2) < 0)
                return -1;
            hist_record((HistObject *)e->h_tps, (double)tokens[TOKEN_OUTPUT] / generating, trace, NULL, r->end_s, NULL);
        }
    }
    if (e->kind == KIND_PRICED) {
        long long total = q[0] + q[1] + q[2] + q[3];
        e->cost += total;
        for (int i = 0; i < 4; i++)
            e->breakdown[i] += q[i];
        e->savings += q[4];
        if ((total && entry_stamp(st, e, STAMP_BREAKDOWN) < 0) || (q[4] && entry_stamp(st, e, STAMP_SAVINGS) < 0))
            return -1;
        double usd = (double)total / 4294967296.0;
        hist_record((HistObject *)e->h_cost, usd, trace, NULL, r->end_s, NULL);
        if (trace != NULL) {
            Py_XSETREF(e->ex_trace, Py_NewRef(trace));
            e->ex_seq = ++l->seq;
            e->ex_usd = usd;
            e->ex_end = r->end_s;
        }
        for (int i = 0; i < 2; i++)
            if (r->who_len[i] > 0 &&
                lane_who_cost(l, e->service_label, i, d + r->who_at[i], r->who_len[i], total) < 0)
                return -1;
    }
    else if (e->kind == KIND_UNPRICED)
        e->unpriced++;
    if (e->log_static != NULL && rec_log(l, r, d) < 0)
        return -1;
    return 0;
}

/* Applies the request's records in span order; the Python path's (journal items: (function,
 * arguments)) after a flush, as the Python path sees every earlier sum. */
static int
walk_commit(Walk *w)
{
    LaneObject *l = w->l;
    Py_ssize_t applied = 0;
    for (Py_ssize_t i = 0; i < w->nrecs; i++) {
        Rec *r = &w->recs[i];
        if (r->again) { /* Registry.record_again(True): counted when its first copy was */
            PyObject *done = PyObject_CallOneArg(PyTuple_GET_ITEM(l->ctx, CTX_RECORD_AGAIN), Py_True);
            if (done == NULL)
                return -1;
            Py_DECREF(done);
            continue;
        }
        if (r->e != NULL) {
            if (rec_apply(l, r, w->d) < 0)
                return -1;
            continue;
        }
        if (r->duplicate != NULL) { /* Registry.record_duplicate(counted scope, duplicate scope) */
            PyObject *done = PyObject_Call(PyTuple_GET_ITEM(l->ctx, CTX_RECORD_DUPLICATE), r->duplicate, NULL);
            if (done == NULL)
                return -1;
            Py_DECREF(done);
            continue;
        }
        if (lane_flush(l) < 0)
            return -1;
        if (r->upto > PyList_GET_SIZE(w->journal)) {
            PyErr_SetString(PyExc_RuntimeError, "Lane: the journal shrank during the walk");
            return -1;
        }
        for (; applied < r->upto; applied++) {
            PyObject *item = PyList_GET_ITEM(w->journal, applied);
            if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 ||
                !PyTuple_CheckExact(PyTuple_GET_ITEM(item, 1))) {
                PyErr_SetString(PyExc_TypeError, "Lane: a journal item is not (function, arguments)");
                return -1;
            }
            PyObject *done = PyObject_Call(PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), NULL);
            if (done == NULL)
                return -1;
            Py_DECREF(done);
        }
    }
    return 0;
}

static void
walk_free(Walk *w)
{
    for (Py_ssize_t i = 0; i < w->nrecs; i++) {
        Py_XDECREF(w->recs[i].trace);
        Py_XDECREF(w->recs[i].duplicate);
    }
    LaneObject *l = w->l;
    if (w->recs_room * (Py_ssize_t)sizeof(Rec) <= (4 << 20) && l->spare_recs == NULL) {
        l->spare_recs = w->recs; /* kept for the next request */
        l->spare_recs_room = w->recs_room;
    }
    else
        PyMem_Free(w->recs);
    Py_XDECREF(w->service);
    output_keep(&l->spare_out, &w->out);
}

#define MAX_SCOPES 4096

/* The scope's number in signatures: the Python path's decisions may depend on the scope name, so
 * span kinds of different scopes are different kinds. Numbers are never reused (a full table
 * starts over with new ones; entries under old numbers are simply no longer found). */
static int
scope_number(LaneObject *l, PyObject *name, uint64_t *out)
{
    PyObject *found = PyDict_GetItemWithError(l->scope_ids, name);
    if (found != NULL) {
        *out = PyLong_AsUnsignedLongLong(found);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (PyErr_Occurred())
        return -1;
    if (PyDict_GET_SIZE(l->scope_ids) >= MAX_SCOPES)
        PyDict_Clear(l->scope_ids);
    *out = ++l->scopes_seen;
    PyObject *number = PyLong_FromUnsignedLongLong(*out);
    int rc = number == NULL ? -1 : PyDict_SetItem(l->scope_ids, name, number);
    Py_XDECREF(number);
    return rc;
}

static int
walk_scope(Walk *w, Py_ssize_t pos, Py_ssize_t end)
{
    const uint8_t *d = w->d;
    Py_ssize_t n = w->n;
    Table *t = w->l->t;
    /* the scope's name first (it may follow its spans) */
    Py_ssize_t q = pos;
    PyObject *name = NULL;
    while (q < end) {
        Field f;
        if (next_field(d, n, &q, end, &f) < 0) {
            raise_wire(t, "malformed scope_spans field");
            goto fail;
        }
        if (IS(f, 1, 2)) {
            PyObject *found = scope_name(t, d, n, f.start, f.stop);
            if (found == NULL)
                goto fail;
            Py_XSETREF(name, found);
        }
    }
    if (name == NULL && (name = PyUnicode_FromStringAndSize("", 0)) == NULL)
        goto fail;
    w->scope_name = name;
    if (scope_number(w->l, name, &w->scope_id) < 0)
        goto fail;
    while (pos < end) {
        Py_ssize_t field_start = pos;
        Field f;
        if (next_field(d, n, &pos, end, &f) < 0) {
            raise_wire(t, "malformed scope_spans field");
            goto fail;
        }
        if (IS(f, 2, 2) && walk_span(w, field_start, f.start, f.stop) < 0)
            goto fail;
    }
    w->scope_name = NULL;
    Py_DECREF(name);
    return 0;
fail:
    w->scope_name = NULL;
    Py_XDECREF(name);
    return -1;
}

/* process(data, service_of, slow, journal) -> (request to forward, GenAI spans, other spans)
 * service_of(data, start, stop): the service name of the Resource in data[start:stop] (start -1:
 * none); slow(data, span entry, scope name, service, signature | None) -> (added bytes, is GenAI),
 * appending what the span records to journal (a list of (function, arguments)).
 * Nothing is recorded until the whole request has been walked and re-assembled; then the lane's
 * records and the journal's are applied in span order. An error before that leaves every metric
 * as it was. The request was already validated by split(data, table, True). */
PyObject *
lane_process(LaneObject *l, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyList_CheckExact(args[3]) || PyList_GET_SIZE(args[3])) {
        PyErr_SetString(PyExc_TypeError, "process(data, service_of, slow, journal: an empty list)");
        return NULL;
    }
    if (l->walking) {
        PyErr_SetString(PyExc_RuntimeError, "Lane: process is not reentrant");
        return NULL;
    }
    Walk w;
    memset(&w, 0, sizeof w);
    w.l = l;
    w.recs = l->spare_recs; /* the last request's buffers, emptied */
    w.recs_room = l->spare_recs_room;
    l->spare_recs = NULL;
    l->spare_recs_room = 0;
    w.out = l->spare_out;
    memset(&l->spare_out, 0, sizeof l->spare_out);
    w.data = args[0];
    w.service_of = args[1];
    w.slow = args[2];
    w.journal = args[3];
    l->walking = 1;
    w.d = (const uint8_t *)PyBytes_AS_STRING(w.data);
    w.n = PyBytes_GET_SIZE(w.data);
    const uint8_t *d = w.d;
    Py_ssize_t n = w.n, pos = 0;
    PyObject *result = NULL, *forward = NULL;
    while (pos < n) {
        Py_ssize_t rs_start = pos;
        uint64_t tag, length;
        int wide;
        if (read_varint(d, n, &pos, &tag, &wide) < 0) {
            raise_wire(l->t, "truncated varint");
            goto fail;
        }
        if (wide || tag != 0x0A) {
            pos = skip_field(d, n, pos, (int)(tag & 7), n);
            if (pos < 0) {
                raise_wire(l->t, "malformed request field");
                goto fail;
            }
            continue;
        }
        if (read_length(d, n, &pos, &length) < 0 || (Py_ssize_t)length > n - pos) {
            raise_wire(l->t, "resource_spans runs past the end of the request");
            goto fail;
        }
        Py_ssize_t payload = pos, stop = pos + (Py_ssize_t)length;
        Py_ssize_t res_start = -1, res_stop = -1, q = payload;
        while (q < stop) {
            Field f;
            if (next_field(d, n, &q, stop, &f) < 0) {
                raise_wire(l->t, "malformed resource_spans field");
                goto fail;
            }
            if (IS(f, 1, 2)) {
                res_start = f.start;
                res_stop = f.stop;
            }
        }
        w.place.resource.start = rs_start;
        w.place.resource.payload = payload;
        w.place.resource.end = stop;
        w.place.resource.resource = -1;
        w.place.resource_index = -1;
        w.res_start = res_start;
        w.res_stop = res_stop;
        Py_CLEAR(w.service);
        q = payload;
        while (q < stop) {
            Field f;
            if (next_field(d, n, &q, stop, &f) < 0) {
                raise_wire(l->t, "malformed resource_spans field");
                goto fail;
            }
            if (!IS(f, 2, 2))
                continue;
            w.place.scope.start = f.field_start;
            w.place.scope.payload = f.start;
            w.place.scope.end = f.stop;
            w.place.scope_index = -1;
            if (walk_scope(&w, f.start, f.stop) < 0)
                goto fail;
        }
        pos = stop;
    }
    forward = w.out.nadds ? output_assemble(&w.out, w.data) : Py_NewRef(w.data);
    if (forward == NULL)
        goto fail;
    /* Recorded now. The sums stay here until someone reads them: the registry settles (flushes)
     * every lane before an exposition, and the Python path, `learn` and `clear` flush first.
     * Per request this saved adding a few hundred dict items that no one had read in between. */
    if (walk_commit(&w) < 0) {
        Py_DECREF(forward);
        goto fail;
    }
    result = Py_BuildValue("(NLL)", forward, w.genai, w.other);
fail:
    l->walking = 0;
    if (l->retired != NULL) { /* entries replaced meanwhile: their sums are added before they go */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (lane_flush(l) < 0) {
            Py_CLEAR(result);
            if (type == NULL)
                PyErr_Fetch(&type, &value, &tb);
            else
                PyErr_Clear();
        }
        while (l->retired != NULL) {
            Entry *e = l->retired;
            l->retired = e->next_retired;
            entry_free(e);
        }
        PyErr_Restore(type, value, tb);
    }
    walk_free(&w);
    return result;
}

