/* What the sources of the _wirescan extension share (an internal header, not installed):
 * the module state, the key table, the protobuf wire primitives (inline: they are the hot path)
 * and the types and functions one concern hands another. Which file does what:
 *
 *   module.c       the module: its functions, state and multi-phase initialisation
 *   scan.c         the request walk behind `split`, attribute scans, span facts, `make_table`
 *   record.c       `assemble` (the Python path's re-assembly), the lane's flush helpers, cost arithmetic
 *   histogram.c    the Histogram type
 *   recent.c       the Recent type: recent GenAI calls, for duplicate spans
 *   lane.c         the Lane type: its entries, learning, and the flush to the registry
 *   lane_walk.c    Lane.process: the walk of a whole request, its records, and their commit
 *   lane_output.c  the lane's re-assembly of a request with the attributes it adds
 */
#ifndef WIRESCAN_H
#define WIRESCAN_H
#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
/* setup.py defines this as a digest of this file; scan.py refuses a build whose digest differs. */
#ifndef WIRESCAN_SOURCE_DIGEST
#define WIRESCAN_SOURCE_DIGEST "unknown"
#endif
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>
#include <structmember.h> /* T_OBJECT_EX, READONLY */

#include "_contract.h" /* written from processors/lane_contract.py */

/* ---------------------------------------------------------------------------------------------
 * Module state (PEP 489 multi-phase init): the module's types and the interned names and
 * constants its functions use. Module functions reach it through their module argument; a Lane
 * caches the pointer when it is created (its type keeps the module, so the state, alive).
 */
typedef struct {
    PyTypeObject *hist_type, *recent_type, *lane_type;
    PyObject *a_duration, *a_ttfc, *a_tps, *a_cost_per_request, *a_stamps, *a_stamp, *a_add;
    PyObject *empty_str;
} WsState;

/* Attribute access on the processor's classes: the public protocol (no type internals). */
static inline PyObject *
attr_get(PyObject *obj, PyObject *name)
{
    return PyObject_GetAttr(obj, name);
}

static inline int
attr_set(PyObject *obj, PyObject *name, PyObject *value)
{
    return PyObject_SetAttr(obj, name, value);
}

#define MAX_KEY_LEN 127

typedef struct {
    PyObject *name; /* str, shared with the caller's key table */
    const char *bytes;
    Py_ssize_t len;
    int index; /* position in the keys tuple given to make_table */
} Key;

typedef struct {
    Key *keys;
    Py_ssize_t nkeys;
    Py_ssize_t by_len_start[MAX_KEY_LEN + 2]; /* keys sorted by length: [start[L], start[L+1]) */
    PyObject *key_bytes;                      /* tuple of bytes objects keeping `bytes` alive */
    PyObject *eval_name;                      /* bytes */
    uint8_t *eval_shift; /* 65536 bigram shifts for finding eval_name (contains_eval), or NULL */
    PyObject *wire_error;                     /* exception type */
    PyObject *unsupported;                    /* marker object */
    PyObject *decode_other;                   /* callable(data, pos, end) for other AnyValue types */
} Table;

#define CAPSULE_NAME "genai_otel.processors._wirescan.Table"

/* ---------------------------------------------------------------------------------------------
 * Varints, with the Python reader's semantics: at most 10 bytes, bounded by the whole buffer
 * (not by the enclosing message); a value wider than 64 bits sets *wide.
 * Returns 0 on success, -1 on a truncated or over-long varint.
 */
static inline int
read_varint(const uint8_t *d, Py_ssize_t n, Py_ssize_t *pos, uint64_t *out, int *wide)
{
    uint64_t result = 0;
    int shift = 0;
    Py_ssize_t p = *pos;
    *wide = 0;
    for (;;) {
        if (p >= n)
            return -1;
        uint8_t byte = d[p++];
        uint64_t bits = (uint64_t)(byte & 0x7F);
        if (shift == 63 && bits > 1)
            *wide = 1;
        result |= bits << shift;
        if (byte < 0x80) {
            *out = result;
            *pos = p;
            return 0;
        }
        shift += 7;
        if (shift > 63)
            return -1;
    }
}

/* A length: a wide value can never fit, so it is reported as too big. */
static inline int
read_length(const uint8_t *d, Py_ssize_t n, Py_ssize_t *pos, uint64_t *out)
{
    int wide;
    if (read_varint(d, n, pos, out, &wide) < 0)
        return -1;
    if (wide || *out > (uint64_t)PY_SSIZE_T_MAX / 2)
        *out = (uint64_t)PY_SSIZE_T_MAX / 2;
    return 0;
}

/* skip_field: position after a field whose tag has been read; -1 on error. */
static inline Py_ssize_t
skip_field(const uint8_t *d, Py_ssize_t n, Py_ssize_t pos, int wire_type, Py_ssize_t end)
{
    uint64_t v;
    int wide;
    switch (wire_type) {
    case 0:
        if (read_varint(d, n, &pos, &v, &wide) < 0)
            return -1;
        break;
    case 1:
        pos += 8;
        break;
    case 2:
        if (read_length(d, n, &pos, &v) < 0)
            return -1;
        pos += (Py_ssize_t)v;
        break;
    case 5:
        pos += 4;
        break;
    default:
        return -1;
    }
    return pos > end ? -1 : pos;
}

/* One field of a message: tag (low 64 bits), whether the tag is wider, payload range. */
typedef struct {
    uint64_t number; /* meaningless when wide */
    int wide;
    int wire_type;
    Py_ssize_t field_start, start, stop;
} Field;

/* Next field of data[*pos:end] as iter_fields reads it; -1 on malformed input. */
static inline int
next_field(const uint8_t *d, Py_ssize_t n, Py_ssize_t *pos, Py_ssize_t end, Field *f)
{
    uint64_t tag, length;
    Py_ssize_t p = *pos;
    f->field_start = p;
    if (read_varint(d, n, &p, &tag, &f->wide) < 0)
        return -1;
    f->number = tag >> 3;
    f->wire_type = (int)(tag & 7);
    if (!f->wide && f->number == 0)
        return -1;
    if (f->wire_type == 2) {
        if (read_length(d, n, &p, &length) < 0)
            return -1;
        if ((Py_ssize_t)length > end - p)
            return -1;
        f->start = p;
        f->stop = p + (Py_ssize_t)length;
    }
    else {
        f->start = p;
        f->stop = skip_field(d, n, p, f->wire_type, end);
        if (f->stop < 0)
            return -1;
    }
    *pos = f->stop;
    return 0;
}

#define IS(f, num, wt) (!(f).wide && (f).number == (num) && (f).wire_type == (wt))

/* Whether data[0:n] contains the table's eval_name anywhere (bytes.find's answer), by a shift
 * over the last two bytes of each window (Wu-Manber with blocks of two): spans rarely hold the
 * name's bigrams, so most windows move on by nearly the name's length. */
static inline int
contains_eval(const Table *t, const uint8_t *data, Py_ssize_t n)
{
    const uint8_t *needle = (const uint8_t *)PyBytes_AS_STRING(t->eval_name);
    Py_ssize_t m = PyBytes_GET_SIZE(t->eval_name);
    if (m < 2 || t->eval_shift == NULL)
        return memmem(data, (size_t)n, needle, (size_t)m) != NULL;
    for (Py_ssize_t i = m - 1; i < n;) {
        uint8_t shift = t->eval_shift[(data[i - 1] << 8) | data[i]];
        if (shift == 0) {
            if (memcmp(data + i - m + 1, needle, (size_t)m) == 0)
                return 1;
            shift = 1;
        }
        i += shift;
    }
    return 0;
}

static inline PyObject *
raise_wire(Table *t, const char *message)
{
    PyErr_SetString(t->wire_error, message);
    return NULL;
}


typedef struct HistObject HistObject;

/* Where the attribute scans put what they find: a dict of decoded values (the `split` result)
 * or the raw AnyValue ranges of each key (the lane). The first valid occurrence of a key wins. */
#define MAX_LANE_KEYS 64

typedef struct Sink Sink;

struct Sink {
    /* 0 stored or already present, -1 with an exception, 1 undecided */
    int (*add)(Sink *s, Key *k, Py_ssize_t value_start, Py_ssize_t value_end);
    void (*clear)(Sink *s);
    Table *t;
    PyObject *data;
    const uint8_t *d;
    Py_ssize_t n;
    PyObject *found;  /* dict mode */
    uint64_t present; /* range mode: bit i = key index i found */
    Py_ssize_t value_start[MAX_LANE_KEYS], value_end[MAX_LANE_KEYS];
};

typedef struct {
    Py_ssize_t trace_start, trace_stop;
    Py_ssize_t span_start, span_stop, parent_start, parent_stop; /* span id, parent span id */
    uint64_t start_ns, end_ns;
    uint64_t status;
} Facts;

/* =============================================================================================
 * Histogram: metrics.Histogram with its state in C (the same constructor, attributes and
 * `observe`), so an observation is a binary search and three additions. Registry.histogram
 * makes these when the extension is in use; the exposition reads the same attributes.
 */
typedef struct {
    PyObject *trace;     /* the trace id given (bytes); NULL: no exemplar in this bucket */
    PyObject *value_obj; /* the observed object when it came from Python, else NULL */
    double value;
    PyObject *ts_obj;    /* likewise for the timestamp */
    double ts;
} Exemplar;

struct HistObject {
    PyObject_HEAD PyObject *bounds; /* tuple */
    double *b;
    Py_ssize_t nb;
    unsigned long long *counts; /* nb + 1 */
    double sum;
    unsigned long long count;
    double created;
    Exemplar *ex; /* nb + 1; NULL when exemplars are off */
};

/* =============================================================================================
 * Recent calls: the second span of one model call (issue 14). Two GenAI spans are one call when
 * they come from different instrumentation scopes, name the same provider and model (`ident`,
 * given by the caller), overlap in time, and are parent and child in one trace or carry the same
 * gen_ai.response.id; or when one is an SDK's own span (`native`: the anthropic SDK's), the other
 * a span of the same service around it in time (a peer that wraps the SDK's call in a trace of
 * its own, and a failed call has no response id). The first span seen is counted; `see` names it
 * for the later one.
 *
 * Bounded: a ring of the last `capacity` spans, each found under up to four keys (its own id, the
 * parent it may be waiting for, its response id, its service and model), trusted for `window`
 * seconds. Keys are
 * hashed with the interpreter's keyed hash, so no sender can aim a collision at another's span.
 * A request's changes are undone when it fails (settle(False)): all or nothing, as its metrics.
 */
typedef struct {
    Py_hash_t keys[4]; /* response id, own id (for children), parent (waiting), service side; 0: none */
    Py_hash_t scope_hash;
    PyObject *scope; /* the scope's name (str), for the duplicates counter; NULL: free */
    long long ident, start, end;
    uint8_t span_id[8]; /* its own id; a RECENT_DUPLICATE slot: the id of the span counted instead */
    int paired;
    int kind; /* RECENT_COUNTED, RECENT_DUPLICATE or RECENT_SEEN */
    double seen;
} RecentSlot;

/* What the first copy of a span was: counted (a model call), the duplicate of another span of its
 * call, or seen (a span that records something else: a tool call, an agent run, an evaluation).
 * A later copy of the same span (the same trace and span id: a sender's retry) is recognised by
 * its own id and counts nothing again (`again`). */
enum { RECENT_COUNTED = 0, RECENT_DUPLICATE = 1, RECENT_SEEN = 2 };

typedef struct {
    Py_hash_t key; /* 0: empty */
    Py_ssize_t pos;
} RecentIndex;

enum { UNDO_INSERT = 1, UNDO_PAIR = 2 };

typedef struct {
    Py_ssize_t pos;
    int op;
} RecentUndo;

typedef struct {
    PyObject_HEAD RecentSlot *ring;
    Py_ssize_t cap, next; /* next: the ring position written next */
    RecentIndex *index;   /* open addressing, linear probing */
    Py_ssize_t index_mask;
    double window, now;
    RecentUndo *undo;
    Py_ssize_t nundo, undo_room;
    long long duplicates;
    Py_hash_t (*hash_bytes)(const void *, Py_ssize_t); /* the interpreter's keyed bytes hash */
} RecentObject;

#define RECENT_MAX_RESPONSE_ID 128

/* =============================================================================================
 * Lane: a whole export request in one call. Every span whose categorical attributes (service,
 * scope kind, provider, operation, models, service tier, which keys are present) were seen
 * before is normalised, priced, recorded and enriched here, from the raw attribute bytes, with
 * the same rules and the same arithmetic as the Python path; any other span (a first sighting,
 * a reported cost, an evaluation event, a value of an unusual type or out of range, a series
 * label over its cap) goes to the Python path through a callback, in request order, and that
 * path teaches the lane the span's entry when it can. What a span records waits in a record
 * until the whole request has been walked, then is applied in span order with what the Python
 * path wrote down (a request is accounted all or nothing). Counters of the series are summed here
 * and added to the registry's Python objects before the Python path's records and whenever the
 * registry is read (`flush`, which Registry.settle calls; integer sums: the same totals);
 * histograms are the C Histogram above, updated in place.
 */
/* the kinds of entry (_contract.h): KIND_PRICED, KIND_UNPRICED, KIND_OTHER (not a model call),
 * KIND_NO_COST (a failed call without usage) */
#define MAX_CORRECTIONS 8
/* SeriesStats.stamps: one per token type, then the cost breakdown's and the savings' */
#define STAMP_BREAKDOWN TOKEN_TYPES
#define STAMP_SAVINGS (TOKEN_TYPES + 1)

#define MAX_TIERS 8

#define MAX_SIGNATURE 4096

#define MAX_ENTRIES 65536

typedef struct Entry {
    uint8_t *key;
    Py_ssize_t key_len;
    uint64_t hash;
    int kind;
    int always;            /* bit i: correction i applies whatever the counts */
    long long ident;       /* duplicates.call_ident(provider, model) */
    int native;            /* how it may pair with another span of its call (duplicates.py) */
    long long lo, hi;      /* start times [lo, hi) the rates hold for */
    PyObject *stats, *service_label, *provider_attr;
    PyObject *request_key, *status, *error_attr; /* (status, error label), "ok"/"error", bytes */
    double base[5], tier[MAX_TIERS][5], multiplier;
    long long threshold[MAX_TIERS];
    int ntiers;
    PyObject *prefixes;                 /* priced: the six cost attribute prefixes */
    PyObject *unpriced_key, *unpriced_attr;
    PyObject *log_static; /* CallLog.static of the kind's calls, or NULL: no call log */
    PyObject *h_duration, *h_ttfc, *h_tps, *h_cost;
    /* not yet added to the Python objects */
    int dirty;
    long long requests, tokens[TOKEN_TYPES], cost, breakdown[4], savings, unpriced;
    PyObject *ex_trace;
    double ex_usd, ex_end;
    unsigned long long ex_seq; /* when ex_trace was set: flushed in this order (the last wins) */
    int stamped; /* bit i: stats.stamps[i] is known to be set */
    struct Entry *next_dirty;
    struct Entry *next_retired; /* replaced while a request was walked: freed when it is done */
} Entry;

/* A user or feature cost series whose label is its own value (admitted): the cost is summed here
 * and added to the registry's table at the flush. */
typedef struct Who {
    uint8_t *key; /* which (0 user, 1 feature), the service label's address, the raw value */
    Py_ssize_t key_len;
    uint64_t hash;
    PyObject *table_key; /* (service label, label) */
    int which, dirty;
    int overflow;          /* the limiter said `other`: each sighting is one more overflow */
    long long pending;     /* cost quanta not yet added to the table */
    long long overflowed;  /* sightings not yet added to the limiter's overflow count */
    struct Who *next_dirty;
} Who;

typedef struct {
    uint8_t *data;
    Py_ssize_t len, room;
} Buffer;

typedef struct {
    Py_ssize_t field_start, start, end, offset, len;
    Py_ssize_t scope; /* index into the scope records */
} Addition;

typedef struct {
    Py_ssize_t start, payload, end, resource;
} Region;

typedef struct {
    Buffer bytes;          /* the appended attribute bytes, back to back */
    Addition *adds;
    Py_ssize_t nadds, adds_room;
    Region *scopes, *resources;
    Py_ssize_t nscopes, scopes_room, nresources, resources_room;
} Output;

typedef struct {
    PyObject_HEAD WsState *state; /* the module's, cached here: no lookup per span */
    PyObject *ctx;
    Table *t;
    uint64_t categorical, markers, slow;
    int group[TOKEN_TYPES][8], ngroup[TOKEN_TYPES], current[TOKEN_TYPES], zero_written[TOKEN_TYPES];
    int ncorrections, correction_target[MAX_CORRECTIONS];
    unsigned correction_parts[MAX_CORRECTIONS]; /* bit g: token type g */
    int cost_coefficient[COST_PARTS][4], cost_rate[COST_PARTS], cost_minus[COST_PARTS],
        cost_per_request[COST_PARTS];
    int users[8], nusers, feature, ttfc;
    long long max_tokens;
    Py_ssize_t max_length;
    int exemplars;
    Entry **slots;
    Py_ssize_t cap, used;
    Entry *dirty;
    Who **whos, *dirty_whos;
    Py_ssize_t who_cap, who_used;
    unsigned long long seq;
    long long fast, slow_calls;
    int walking;     /* a request is being walked: entries its records point to must live on */
    int response_id; /* the key index of gen_ai.response.id */
    RecentObject *recent; /* borrowed from ctx; NULL: duplicates are not looked for */
    Entry *retired;  /* entries replaced or dropped meanwhile, freed when the request is done */
    PyObject *scope_ids; /* scope name -> its number in signatures (dict) */
    uint64_t scopes_seen;
    /* the last walk's buffers, emptied, for the next (no regrowing them per request) */
    void *spare_recs;
    Py_ssize_t spare_recs_room;
    Output spare_out;
} LaneObject;

/* The current walk position, for recording an addition's enclosing regions on first use. */
typedef struct {
    Region resource, scope;
    Py_ssize_t resource_index, scope_index; /* -1 until an addition lands in them */
} Place;

static inline int
varint_size(uint64_t v)
{
    int size = 1;
    while (v >= 0x80) {
        v >>= 7;
        size++;
    }
    return size;
}

static inline Py_ssize_t
put_varint(uint8_t *out, uint64_t v)
{
    Py_ssize_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v & 0x7F) | 0x80;
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline uint8_t *
put_double(uint8_t *p, double value)
{
    PyFloat_Pack8(value, (char *)p, 1); /* struct's "<d" */
    return p + 8;
}

/* bisect.bisect_left(bounds, x): the first bound not below x */
static inline Py_ssize_t
hist_index(const HistObject *h, double x)
{
    Py_ssize_t lo = 0, hi = h->nb;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (h->b[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Histogram.observe; `trace` is stored when truthy (the caller decided), value_obj/ts_obj may be
 * NULL (the getters then make floats of value/ts). */
static inline void
hist_record(HistObject *h, double x, PyObject *trace, PyObject *value_obj, double ts, PyObject *ts_obj)
{
    Py_ssize_t i = hist_index(h, x);
    h->counts[i]++;
    h->sum += x;
    h->count++;
    if (h->ex != NULL && trace != NULL) {
        Exemplar *e = &h->ex[i];
        Py_INCREF(trace);
        Py_XSETREF(e->trace, trace);
        Py_XINCREF(value_obj);
        Py_XSETREF(e->value_obj, value_obj);
        e->value = x;
        Py_XINCREF(ts_obj);
        Py_XSETREF(e->ts_obj, ts_obj);
        e->ts = ts;
    }
}

static inline uint64_t
signature_hash(const uint8_t *p, Py_ssize_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)len;
    Py_ssize_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, (size_t)(len - i));
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    return h;
}

static inline int
buffer_reserve(Buffer *b, Py_ssize_t more)
{
    if (b->len + more <= b->room)
        return 0;
    Py_ssize_t room = b->room ? b->room : 4096;
    while (room < b->len + more)
        room *= 2;
    uint8_t *p = PyMem_Realloc(b->data, (size_t)room);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->room = room;
    return 0;
}

static inline int
grow(void **array, Py_ssize_t *room, Py_ssize_t count, size_t size)
{
    if (count < *room)
        return 0;
    Py_ssize_t next = *room ? *room * 2 : 16;
    void *p = PyMem_Realloc(*array, (size_t)next * size);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *array = p;
    *room = next;
    return 0;
}

/* Defined in one source, used in another. */
int
range_sink_add(Sink *s, Key *k, Py_ssize_t value_start, Py_ssize_t value_end);
void
range_sink_clear(Sink *s);
int
scan_attributes(Table *t, const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
                Sink *sink);
int
scan_attribute_fields(Table *t, const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
                      Sink *sink);
int
span_facts(const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end, Facts *out);
int
visit_span(Table *t, PyObject *data, const uint8_t *d, Py_ssize_t n, Py_ssize_t field_start,
           Py_ssize_t start, Py_ssize_t end, PyObject **spans);
PyObject *
scope_name(Table *t, const uint8_t *d, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t end);
PyObject *
wirescan_split(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *
wirescan_make_table(PyObject *module, PyObject *args);
Py_ssize_t
scope_size(PyObject *scope, PyObject *additions, int *ok);
PyObject *
wirescan_assemble(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int
cost_quanta(const LaneObject *l, const long long n[4], const double rate[5], double multiplier,
            long long q[COST_PARTS]);
int
counts_add(WsState *st, PyObject *table, PyObject *key, long long n);
int
hist_observe_objects(HistObject *h, PyObject *value, PyObject *trace, PyObject *timestamp);
RecentSlot *
recent_see(RecentObject *r, PyObject *scope, int native, PyObject *service, long long ident,
           const uint8_t *trace, Py_ssize_t trace_len, const uint8_t *span, Py_ssize_t span_len,
           const uint8_t *parent, Py_ssize_t parent_len, long long start, long long end, const uint8_t *rid,
           Py_ssize_t rid_len, int *error, int *again);
void
entry_free(Entry *e);
void
lane_drop_whos(LaneObject *l);
int
table_grow(void ***slots, Py_ssize_t *cap, size_t hash_offset);
Entry *
lane_find(LaneObject *l, const uint8_t *key, Py_ssize_t len, uint64_t hash);
int
lane_flush_whos(LaneObject *l);
int
lane_flush(LaneObject *l);
int
entry_histogram(LaneObject *l, Entry *e, PyObject **slot, PyObject *name, int bounds);
int
entry_duration(LaneObject *l, Entry *e);
int
output_add(Output *o, Place *p, Py_ssize_t field_start, Py_ssize_t start, Py_ssize_t end,
           const uint8_t *bytes, Py_ssize_t len);
void
output_free(Output *o);
void
output_keep(Output *spare, Output *o);
PyObject *
output_assemble(Output *o, PyObject *data);
PyObject *
lane_process(LaneObject *l, PyObject *const *args, Py_ssize_t nargs);

extern PyType_Spec hist_spec, recent_spec, lane_spec;

#endif /* WIRESCAN_H */
