/* Accelerated walk of an OTLP ExportTraceServiceRequest (see processors/scan.py), and the
 * span normaliser (normalise.Normaliser.normalise) over the attributes it found.
 *
 * One call walks request -> ResourceSpans -> ScopeSpans -> Span and, for every span, finds the
 * span attributes whose keys are in a fixed table (the same byte-level rules as the pure-Python
 * `wire.KeyScanner`: "\n <key length> <key> \x12" framed by the attribute tag and the
 * KeyValue's exact length), whether the span mentions the evaluation event, and its header
 * facts (the same rules as `wire.span_facts`). Spans with neither a known key nor the event
 * are only counted. Whatever the pure-Python code would treat in an unusual way (a malformed
 * span interior, a varint wider than 64 bits) is handed back undecided, and the caller runs the
 * pure-Python code on that one span, so both paths give identical results.
 *
 * No third-party dependencies: CPython C API only.
 */
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

/* ---------------------------------------------------------------------------------------------
 * Module state (PEP 489 multi-phase init): the module's types and the interned names and
 * constants its functions use. Module functions reach it through their module argument; a Lane
 * caches the pointer when it is created (its type keeps the module, so the state, alive).
 */
typedef struct {
    PyTypeObject *hist_type, *recent_type, *lane_type;
    PyObject *s_bounds, *s_counts, *s_sum, *s_count, *s_exemplars, *s_observe;
    PyObject *a_requests, *a_tokens, *a_duration, *a_ttfc, *a_tps, *a_cost, *a_breakdown, *a_savings,
        *a_cost_per_request, *a_cost_exemplar, *a_input, *a_output, *a_cache_read, *a_cache_write,
        *a_stamps, *a_stamp, *a_admit, *a_allowed, *a_admitted, *a_overflow;
    PyObject *one, *zero, *zero_float, *empty_str;
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

static PyObject *
raise_wire(Table *t, const char *message)
{
    PyErr_SetString(t->wire_error, message);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * AnyValue decoding (wire.decode_any_value). Returns a new reference, NULL with an exception,
 * or NULL without one when the value needs the Python decoder for exact equality (*undecided).
 */
static PyObject *
decode_value(Table *t, PyObject *data, const uint8_t *d, Py_ssize_t n, Py_ssize_t pos,
             Py_ssize_t end, int *undecided)
{
    uint64_t v;
    int wide;
    if (pos >= end) {
        Py_INCREF(t->unsupported);
        return t->unsupported;
    }
    uint8_t tag = d[pos];
    Py_ssize_t p = pos + 1;
    switch (tag) {
    case 0x0A: {
        if (read_varint(d, n, &p, &v, &wide) < 0) {
            Py_INCREF(t->unsupported);
            return t->unsupported;
        }
        if (wide) {
            *undecided = 1;
            return NULL;
        }
        Py_ssize_t stop = (v > (uint64_t)(n - p)) ? n : p + (Py_ssize_t)v; /* slicing clamps */
        return PyUnicode_DecodeUTF8((const char *)d + p, stop - p, "replace");
    }
    case 0x18:
        if (read_varint(d, n, &p, &v, &wide) < 0) {
            Py_INCREF(t->unsupported);
            return t->unsupported;
        }
        if (wide) {
            *undecided = 1;
            return NULL;
        }
        return PyLong_FromLongLong((long long)v);
    case 0x21: {
        if (pos + 9 > end) {
            Py_INCREF(t->unsupported);
            return t->unsupported;
        }
        return PyFloat_FromDouble(PyFloat_Unpack8((const char *)d + pos + 1, 1));
    }
    case 0x10:
        if (read_varint(d, n, &p, &v, &wide) < 0) {
            Py_INCREF(t->unsupported);
            return t->unsupported;
        }
        return PyBool_FromLong(v != 0 || wide);
    case 0x2A:
        return PyObject_CallFunction(t->decode_other, "Onn", data, pos, end);
    default:
        Py_INCREF(t->unsupported);
        return t->unsupported;
    }
}

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

static int
dict_sink_add(Sink *s, Key *k, Py_ssize_t value_start, Py_ssize_t value_end)
{
    int present = PyDict_Contains(s->found, k->name);
    if (present < 0)
        return -1;
    if (present)
        return 0;
    int undecided = 0;
    PyObject *value = decode_value(s->t, s->data, s->d, s->n, value_start, value_end, &undecided);
    if (value == NULL)
        return undecided ? 1 : -1;
    int rc = PyDict_SetItem(s->found, k->name, value);
    Py_DECREF(value);
    return rc < 0 ? -1 : 0;
}

static void
dict_sink_clear(Sink *s)
{
    PyDict_Clear(s->found);
}

static int
range_sink_add(Sink *s, Key *k, Py_ssize_t value_start, Py_ssize_t value_end)
{
    uint64_t bit = (uint64_t)1 << k->index;
    if (!(s->present & bit)) {
        s->present |= bit;
        s->value_start[k->index] = value_start;
        s->value_end[k->index] = value_end;
    }
    return 0;
}

static void
range_sink_clear(Sink *s)
{
    s->present = 0;
}

/* KeyScanner.scan over data[start:end] into the sink (first valid occurrence wins).
 * Returns 0, -1 with an exception, or 1 when undecided. */
static int
scan_attributes(Table *t, const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
                Sink *sink)
{
    const uint8_t attribute_tag = 0x4A;
    Py_ssize_t pos = start;
    while (pos < end) {
        const uint8_t *hit = memchr(d + pos, 0x0A, (size_t)(end - pos));
        if (hit == NULL)
            break;
        Py_ssize_t p = hit - d;
        /* The pattern "\n" <len> <key> "\x12" must lie entirely inside [start, end). */
        if (p + 1 >= end) {
            break;
        }
        Py_ssize_t klen = d[p + 1];
        if (klen > MAX_KEY_LEN || p + 2 + klen >= end) {
            pos = p + 1;
            continue;
        }
        Key *match = NULL;
        for (Py_ssize_t i = t->by_len_start[klen]; i < t->by_len_start[klen + 1]; i++) {
            if (memcmp(t->keys[i].bytes, d + p + 2, (size_t)klen) == 0) {
                match = &t->keys[i];
                break;
            }
        }
        if (match == NULL || d[p + 2 + klen] != 0x12) {
            pos = p + 1;
            continue;
        }
        Py_ssize_t value_len_pos = p + 3 + klen;
        pos = value_len_pos; /* the regular expression resumes after its match */
        if (value_len_pos >= end)
            continue;
        uint64_t value_len = d[value_len_pos];
        Py_ssize_t value_start;
        if (value_len < 0x80) {
            value_start = value_len_pos + 1;
        }
        else {
            Py_ssize_t q = value_len_pos;
            int wide;
            if (read_varint(d, n, &q, &value_len, &wide) < 0 || wide)
                continue; /* a wide length never fits: the Python scanner skips it too */
            value_start = q;
        }
        if (value_len > (uint64_t)(end - value_start))
            continue;
        Py_ssize_t value_end = value_start + (Py_ssize_t)value_len;
        Py_ssize_t kv_start = p;
        Py_ssize_t kv_len = value_end - kv_start;
        if (kv_len < 0x80) {
            if (kv_start < start + 2 || d[kv_start - 1] != kv_len || d[kv_start - 2] != attribute_tag)
                continue;
        }
        else {
            uint8_t prefix[11];
            int size = 1 + varint_size((uint64_t)kv_len);
            uint64_t v = (uint64_t)kv_len;
            prefix[0] = attribute_tag;
            for (int i = 1; i < size; i++) {
                prefix[i] = (uint8_t)((v & 0x7F) | (i < size - 1 ? 0x80 : 0));
                v >>= 7;
            }
            if (kv_start - size < 0)
                return 1;
            if (memcmp(d + kv_start - size, prefix, (size_t)size) != 0)
                continue;
        }
        int rc = sink->add(sink, match, value_start, value_end);
        if (rc != 0)
            return rc;
    }
    return 0;
}


/* KeyScanner.scan_fields for span attributes (field 9): any field order, in the span and in
 * each KeyValue; a malformed span yields no attributes. Returns 0, or -1 with an exception. */
static int
scan_attribute_fields(Table *t, const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
                      Sink *sink)
{
    Py_ssize_t pos = start;
    Field f, g;
    while (pos < end) {
        if (next_field(d, n, &pos, end, &f) < 0)
            goto malformed;
        if (!IS(f, 9, 2))
            continue;
        Py_ssize_t key_start = -1, key_stop = -1, value_start = f.stop, value_stop = f.stop;
        Py_ssize_t inner = f.start;
        while (inner < f.stop) {
            if (next_field(d, n, &inner, f.stop, &g) < 0)
                goto malformed;
            if (IS(g, 1, 2)) {
                key_start = g.start;
                key_stop = g.stop;
            }
            else if (IS(g, 2, 2)) {
                value_start = g.start;
                value_stop = g.stop;
            }
        }
        if (key_start < 0)
            continue;
        Py_ssize_t klen = key_stop - key_start;
        if (klen > MAX_KEY_LEN)
            continue;
        Key *match = NULL;
        for (Py_ssize_t i = t->by_len_start[klen]; i < t->by_len_start[klen + 1]; i++) {
            if (memcmp(t->keys[i].bytes, d + key_start, (size_t)klen) == 0) {
                match = &t->keys[i];
                break;
            }
        }
        if (match == NULL)
            continue;
        int rc = sink->add(sink, match, value_start, value_stop);
        if (rc != 0)
            return rc;
    }
    return 0;
malformed:
    sink->clear(sink);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Span header facts (wire.span_facts). Returns 0 with facts, 1 when undecided.
 */
typedef struct {
    Py_ssize_t trace_start, trace_stop;
    Py_ssize_t span_start, span_stop, parent_start, parent_stop; /* span id, parent span id */
    uint64_t start_ns, end_ns;
    uint64_t status;
} Facts;

static inline uint64_t
le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if PY_BIG_ENDIAN
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Status code of a Status message in data[start:end]; -1 when malformed. */
static int
status_code(const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end, uint64_t *code)
{
    Field f;
    Py_ssize_t pos = start;
    uint64_t found = 0;
    while (pos < end) {
        if (next_field(d, n, &pos, end, &f) < 0)
            return -1;
        if (IS(f, 3, 0)) {
            Py_ssize_t q = f.start;
            int wide;
            if (read_varint(d, n, &q, &found, &wide) < 0 || wide)
                return -2;
        }
    }
    *code = found;
    return 0;
}

/* _tail_status: 0/1.. status code, -1 when unsure, -2 undecided. */
static int64_t
tail_status(const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t tail = end;
    if (tail - start >= 6 && d[tail - 6] == 0x85 && d[tail - 5] == 0x01)
        tail -= 6;
    if (tail - start >= 4 && d[tail - 4] == 0x7A && d[tail - 3] == 2 && d[tail - 2] == 0x18)
        return d[tail - 1];
    if (tail - start >= 2 && d[tail - 2] == 0x7A && d[tail - 1] == 0)
        return 0;
    Py_ssize_t low = tail - 300 > start ? tail - 300 : start;
    for (Py_ssize_t pos = tail - 2; pos >= low; pos--) {
        /* the next candidate tag below pos (memrchr: the same positions, high to low) */
        const uint8_t *hit = memrchr(d + low, 0x7A, (size_t)(pos - low + 1));
        if (hit == NULL)
            break;
        pos = hit - d;
        Py_ssize_t q = pos + 1;
        uint64_t length;
        int wide;
        if (read_varint(d, n, &q, &length, &wide) < 0 || wide)
            continue;
        if (length > (uint64_t)(n) || q + (Py_ssize_t)length != tail)
            continue;
        uint64_t code;
        int rc = status_code(d, n, q, tail, &code);
        if (rc == -2)
            return -2;
        if (rc == 0)
            return code > 0x7FFFFFFF ? -2 : (int64_t)code;
    }
    if (tail > low && memchr(d + low, 0x7A, (size_t)(tail - low)) == NULL)
        return 0;
    if (tail <= low)
        return 0;
    return -1;
}

static int
span_facts(const uint8_t *d, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end, Facts *out)
{
    Py_ssize_t pos = start;
    int seen_end = 0;
    uint64_t v;
    int wide;
    out->trace_start = out->trace_stop = 0;
    out->span_start = out->span_stop = out->parent_start = out->parent_stop = 0;
    out->start_ns = out->end_ns = 0;
    while (pos < end && !seen_end) {
        uint8_t tag = d[pos];
        if (tag == 0x39 || tag == 0x41) {
            if (pos + 9 > n)
                return 1;
            if (tag == 0x39)
                out->start_ns = le64(d + pos + 1);
            else {
                out->end_ns = le64(d + pos + 1);
                seen_end = 1;
            }
            pos += 9;
        }
        else if (tag == 0x0A || tag == 0x12 || tag == 0x1A || tag == 0x22 || tag == 0x2A) {
            Py_ssize_t q = pos + 1;
            if (read_varint(d, n, &q, &v, &wide) < 0 || wide || v > (uint64_t)n)
                return 1;
            Py_ssize_t from = q < n ? q : n, to = q + (Py_ssize_t)v < n ? q + (Py_ssize_t)v : n;
            if (tag == 0x0A) {
                out->trace_start = from;
                out->trace_stop = to;
            }
            else if (tag == 0x12) {
                out->span_start = from;
                out->span_stop = to;
            }
            else if (tag == 0x22) {
                out->parent_start = from;
                out->parent_stop = to;
            }
            pos = q + (Py_ssize_t)v;
        }
        else if (tag == 0x30) {
            Py_ssize_t q = pos + 1;
            if (read_varint(d, n, &q, &v, &wide) < 0)
                return 1;
            pos = q;
        }
        else
            break;
    }
    if (pos > end)
        return 1;
    int64_t status = tail_status(d, n, start, end);
    if (status == -2)
        return 1;
    if (status >= 0 && seen_end) {
        out->status = (uint64_t)status;
        return 0;
    }
    /* _span_facts_exact */
    Field f;
    out->trace_start = out->trace_stop = 0;
    out->span_start = out->span_stop = out->parent_start = out->parent_stop = 0;
    out->start_ns = out->end_ns = 0;
    out->status = 0;
    pos = start;
    while (pos < end) {
        if (next_field(d, n, &pos, end, &f) < 0)
            return 1;
        if (IS(f, 1, 2)) {
            out->trace_start = f.start;
            out->trace_stop = f.stop;
        }
        else if (IS(f, 2, 2)) {
            out->span_start = f.start;
            out->span_stop = f.stop;
        }
        else if (IS(f, 4, 2)) {
            out->parent_start = f.start;
            out->parent_stop = f.stop;
        }
        else if (IS(f, 7, 1))
            out->start_ns = le64(d + f.start);
        else if (IS(f, 8, 1))
            out->end_ns = le64(d + f.start);
        else if (IS(f, 15, 2)) {
            Py_ssize_t sp = f.start;
            Field s;
            while (sp < f.stop) {
                if (next_field(d, n, &sp, f.stop, &s) < 0)
                    return 1;
                if (IS(s, 3, 0)) {
                    Py_ssize_t q = s.start;
                    if (read_varint(d, n, &q, &v, &wide) < 0 || wide)
                        return 1;
                    out->status = v;
                }
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * One span: a (field start, payload start, payload end, attrs, facts, has_evaluation) tuple
 * appended to `spans` when it carries a known key or the evaluation event. attrs None means
 * undecided (the caller scans it in Python); facts None means the caller computes them.
 */
static int
visit_span(Table *t, PyObject *data, const uint8_t *d, Py_ssize_t n, Py_ssize_t field_start,
           Py_ssize_t start, Py_ssize_t end, PyObject **spans)
{
    PyObject *attrs = PyDict_New();
    if (attrs == NULL)
        return -1;
    Sink sink;
    sink.add = dict_sink_add;
    sink.clear = dict_sink_clear;
    sink.t = t;
    sink.data = data;
    sink.d = d;
    sink.n = n;
    sink.found = attrs;
    /* A span not in field-number order (the collector writes fields in reverse) is walked. */
    int rc = (start < end && d[start] != 0x0A) ? scan_attribute_fields(t, d, n, start, end, &sink)
                                               : scan_attributes(t, d, n, start, end, &sink);
    if (rc < 0) {
        Py_DECREF(attrs);
        return -1;
    }
    const char *eval = PyBytes_AS_STRING(t->eval_name);
    Py_ssize_t eval_len = PyBytes_GET_SIZE(t->eval_name);
    int has_eval = memmem(d + start, (size_t)(end - start), eval, (size_t)eval_len) != NULL;
    if (rc == 0 && PyDict_GET_SIZE(attrs) == 0 && !has_eval) {
        Py_DECREF(attrs);
        return 0;
    }
    PyObject *facts_obj;
    Facts facts;
    if (rc == 1) { /* undecided: everything in Python */
        Py_DECREF(attrs);
        attrs = Py_None;
        Py_INCREF(Py_None);
        facts_obj = Py_None;
        Py_INCREF(Py_None);
    }
    else if (span_facts(d, n, start, end, &facts) == 0) {
        facts_obj = PyTuple_New(4); /* (trace_id, start_ns, end_ns, status): as "(y#KKK)" */
        if (facts_obj != NULL) {
            PyObject *items[4] = {
                PyBytes_FromStringAndSize((const char *)d + facts.trace_start,
                                          facts.trace_stop - facts.trace_start),
                PyLong_FromUnsignedLongLong((unsigned long long)facts.start_ns),
                PyLong_FromUnsignedLongLong((unsigned long long)facts.end_ns),
                PyLong_FromUnsignedLongLong((unsigned long long)facts.status)};
            int ok = 1;
            for (int i = 0; i < 4; i++) {
                ok = ok && items[i] != NULL;
                if (items[i] != NULL)
                    PyTuple_SET_ITEM(facts_obj, i, items[i]);
            }
            if (!ok)
                Py_CLEAR(facts_obj);
        }
        if (facts_obj == NULL) {
            Py_DECREF(attrs);
            return -1;
        }
    }
    else {
        facts_obj = Py_None;
        Py_INCREF(Py_None);
    }
    if (*spans == NULL) {
        *spans = PyList_New(0);
        if (*spans == NULL) {
            Py_DECREF(attrs);
            Py_DECREF(facts_obj);
            return -1;
        }
    }
    /* (field_start, start, end, attrs, facts, has_eval): as "(nnnNNO)" */
    PyObject *item = PyTuple_New(6);
    if (item == NULL) {
        Py_DECREF(attrs);
        Py_DECREF(facts_obj);
        return -1;
    }
    PyTuple_SET_ITEM(item, 3, attrs);
    PyTuple_SET_ITEM(item, 4, facts_obj);
    PyTuple_SET_ITEM(item, 5, Py_NewRef(has_eval ? Py_True : Py_False));
    Py_ssize_t positions[3] = {field_start, start, end};
    for (int i = 0; i < 3; i++) {
        PyObject *v = PyLong_FromSsize_t(positions[i]);
        if (v == NULL) {
            Py_DECREF(item);
            return -1;
        }
        PyTuple_SET_ITEM(item, i, v);
    }
    rc = PyList_Append(*spans, item);
    Py_DECREF(item);
    return rc;
}

/* InstrumentationScope name (wire._scope_name); NULL with an exception when malformed. */
static PyObject *
scope_name(Table *t, const uint8_t *d, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t end)
{
    Field f;
    Py_ssize_t name_start = -1, name_stop = -1;
    while (pos < end) {
        if (next_field(d, n, &pos, end, &f) < 0)
            return raise_wire(t, "malformed instrumentation scope");
        if (name_start < 0 && IS(f, 1, 2)) {
            name_start = f.start;
            name_stop = f.stop;
        }
    }
    if (pos != end)
        return raise_wire(t, "instrumentation scope overruns its length");
    if (name_start < 0)
        return PyUnicode_FromStringAndSize("", 0);
    return PyUnicode_DecodeUTF8((const char *)d + name_start, name_stop - name_start, "replace");
}

/* One ScopeSpans (wire._split_scope). Appends a scope tuple to *scopes when it has spans of
 * interest. Returns 0, or -1 with an exception. */
static int
visit_scope(Table *t, PyObject *data, const uint8_t *d, Py_ssize_t n, Py_ssize_t scope_field_start,
            Py_ssize_t pos, Py_ssize_t end, PyObject **scopes, Py_ssize_t *span_count, int count_only)
{
    Py_ssize_t payload_start = pos;
    PyObject *name = PyUnicode_FromStringAndSize("", 0);
    PyObject *spans = NULL;
    if (name == NULL)
        return -1;
    while (pos < end) {
        Py_ssize_t field_start = pos;
        if (d[pos] == 0x12) { /* one span */
            uint64_t length;
            Py_ssize_t q;
            if (pos + 1 < end && d[pos + 1] < 0x80) {
                length = d[pos + 1];
                q = pos + 2;
            }
            else {
                q = pos + 1;
                if (read_length(d, n, &q, &length) < 0) {
                    raise_wire(t, "truncated varint");
                    goto fail;
                }
            }
            if ((Py_ssize_t)length > end - q) {
                raise_wire(t, "span runs past the end of its scope_spans");
                goto fail;
            }
            Py_ssize_t stop = q + (Py_ssize_t)length;
            (*span_count)++;
            if (!count_only && visit_span(t, data, d, n, field_start, q, stop, &spans) < 0)
                goto fail;
            pos = stop;
            continue;
        }
        Field f;
        if (next_field(d, n, &pos, end, &f) < 0) {
            raise_wire(t, "malformed scope_spans field");
            goto fail;
        }
        if (IS(f, 1, 2)) {
            PyObject *found = scope_name(t, d, n, f.start, f.stop);
            if (found == NULL)
                goto fail;
            Py_SETREF(name, found);
        }
    }
    if (pos != end) {
        raise_wire(t, "scope_spans overruns its length");
        goto fail;
    }
    if (spans != NULL) {
        if (*scopes == NULL && (*scopes = PyList_New(0)) == NULL)
            goto fail;
        PyObject *item =
            Py_BuildValue("(nnnNN)", scope_field_start, payload_start, end, name, spans);
        name = spans = NULL;
        if (item == NULL)
            return -1;
        int rc = PyList_Append(*scopes, item);
        Py_DECREF(item);
        return rc;
    }
    Py_DECREF(name);
    return 0;
fail:
    Py_XDECREF(name);
    Py_XDECREF(spans);
    return -1;
}

static PyObject *
wirescan_split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split(data, table[, count_only])");
        return NULL;
    }
    int count_only = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    if (count_only < 0)
        return NULL;
    PyObject *data = args[0];
    Table *t = PyCapsule_GetPointer(args[1], CAPSULE_NAME);
    if (t == NULL)
        return NULL;
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    const uint8_t *d = (const uint8_t *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    Py_ssize_t pos = 0, span_count = 0;
    PyObject *resources = PyList_New(0);
    if (resources == NULL)
        return NULL;
    while (pos < n) {
        Py_ssize_t rs_start = pos;
        uint64_t tag, length;
        int wide;
        if (read_varint(d, n, &pos, &tag, &wide) < 0) {
            raise_wire(t, "truncated varint");
            goto fail;
        }
        if (wide || tag != 0x0A) { /* an unknown field of the request: kept as is */
            pos = skip_field(d, n, pos, (int)(tag & 7), n);
            if (pos < 0) {
                raise_wire(t, "malformed request field");
                goto fail;
            }
            continue;
        }
        if (read_length(d, n, &pos, &length) < 0) {
            raise_wire(t, "truncated varint");
            goto fail;
        }
        if ((Py_ssize_t)length > n - pos) {
            raise_wire(t, "resource_spans runs past the end of the request");
            goto fail;
        }
        Py_ssize_t payload_start = pos, stop = pos + (Py_ssize_t)length;
        Py_ssize_t res_start = -1, res_stop = -1;
        PyObject *scopes = NULL;
        while (pos < stop) {
            Field f;
            if (next_field(d, n, &pos, stop, &f) < 0) {
                Py_XDECREF(scopes);
                raise_wire(t, "malformed resource_spans field");
                goto fail;
            }
            if (IS(f, 1, 2)) {
                res_start = f.start;
                res_stop = f.stop;
            }
            else if (IS(f, 2, 2)) {
                if (visit_scope(t, data, d, n, f.field_start, f.start, f.stop, &scopes, &span_count,
                                count_only) < 0) {
                    Py_XDECREF(scopes);
                    goto fail;
                }
            }
        }
        if (scopes != NULL) {
            PyObject *resource;
            if (res_start >= 0)
                resource = Py_BuildValue("(nn)", res_start, res_stop);
            else {
                resource = Py_None;
                Py_INCREF(Py_None);
            }
            PyObject *item =
                resource ? Py_BuildValue("(nnnNN)", rs_start, payload_start, stop, resource, scopes)
                         : NULL;
            if (item == NULL || PyList_Append(resources, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
            Py_DECREF(item);
        }
        pos = stop;
    }
    return Py_BuildValue("(Nn)", resources, span_count);
fail:
    Py_DECREF(resources);
    return NULL;
}

static void
table_free(PyObject *capsule)
{
    Table *t = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (t == NULL)
        return;
    for (Py_ssize_t i = 0; i < t->nkeys; i++)
        Py_XDECREF(t->keys[i].name);
    PyMem_Free(t->keys);
    Py_XDECREF(t->key_bytes);
    Py_XDECREF(t->eval_name);
    Py_XDECREF(t->wire_error);
    Py_XDECREF(t->unsupported);
    Py_XDECREF(t->decode_other);
    PyMem_Free(t);
}

static int
key_length_order(const void *a, const void *b)
{
    const Key *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

/* make_table(keys: tuple[str, ...], eval_name: bytes, wire_error, unsupported, decode_other) */
static PyObject *
wirescan_make_table(PyObject *module, PyObject *args)
{
    PyObject *keys, *eval_name, *wire_error, *unsupported, *decode_other;
    if (!PyArg_ParseTuple(args, "O!SOOO:make_table", &PyTuple_Type, &keys, &eval_name, &wire_error,
                          &unsupported, &decode_other))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(keys);
    Table *t = PyMem_Calloc(1, sizeof(Table));
    if (t == NULL)
        return PyErr_NoMemory();
    t->keys = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Key));
    t->key_bytes = PyTuple_New(count);
    if (t->keys == NULL || t->key_bytes == NULL) {
        PyMem_Free(t->keys);
        Py_XDECREF(t->key_bytes);
        PyMem_Free(t);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(keys, i);
        PyObject *encoded = PyUnicode_AsUTF8String(name);
        if (encoded == NULL)
            goto fail;
        PyTuple_SET_ITEM(t->key_bytes, i, encoded);
        if (PyBytes_GET_SIZE(encoded) > MAX_KEY_LEN) {
            PyErr_Format(PyExc_ValueError, "attribute key too long for the scanner: %R", name);
            goto fail;
        }
        Py_INCREF(name);
        t->keys[i].name = name;
        t->keys[i].bytes = PyBytes_AS_STRING(encoded);
        t->keys[i].len = PyBytes_GET_SIZE(encoded);
        t->keys[i].index = (int)i;
        t->nkeys = i + 1;
    }
    qsort(t->keys, (size_t)count, sizeof(Key), key_length_order);
    Py_ssize_t index = 0;
    for (Py_ssize_t len = 0; len <= MAX_KEY_LEN + 1; len++) {
        while (index < count && t->keys[index].len < len)
            index++;
        t->by_len_start[len] = index;
    }
    Py_INCREF(eval_name);
    t->eval_name = eval_name;
    Py_INCREF(wire_error);
    t->wire_error = wire_error;
    Py_INCREF(unsupported);
    t->unsupported = unsupported;
    Py_INCREF(decode_other);
    t->decode_other = decode_other;
    PyObject *capsule = PyCapsule_New(t, CAPSULE_NAME, table_free);
    if (capsule != NULL)
        return capsule;
fail:
    for (Py_ssize_t i = 0; i < t->nkeys; i++)
        Py_XDECREF(t->keys[i].name);
    PyMem_Free(t->keys);
    Py_XDECREF(t->key_bytes);
    PyMem_Free(t);
    return NULL;
}

/* GenAICall(*fields), through its own constructor. */
#define CALL_FIELDS 20

static inline PyObject *
new_call(PyObject *cls, PyObject *const *fields)
{
    return PyObject_Vectorcall(cls, fields, CALL_FIELDS, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * normalise(ctx, attrs, scope_name, status_error): normalise.Normaliser.normalise, step for step
 * (same checks in the same order, so the same InvalidSpan reason wins). ctx is the tuple built
 * by normalise.Normaliser._context; its layout is the enum below.
 */
enum {
    C_MAX_TOKENS, C_MAX_LEN, C_GENAI_CALL, C_INVALID_SPAN, C_UNSUPPORTED, C_MARKERS,
    C_OPERATION, C_REQUEST_TYPE, C_REQUEST_MODEL, C_RESPONSE_MODEL, C_PROVIDER, C_SYSTEM,
    C_REQUEST_TYPES, C_ANTHROPIC_SCOPE, C_CHAT, C_NON_INFERENCE, C_NORMALISE_PROVIDER,
    C_PROVIDER_CACHE, C_ANTHROPIC, C_OPENLIT_PREFIX, C_INPUT_KEYS, C_OUTPUT_KEYS,
    C_CACHE_READ_KEYS, C_CACHE_WRITE_KEYS, C_REASONING_KEYS, C_ERROR_TYPE, C_ERROR_CATEGORY,
    C_CATEGORY_VALUES, C_ERROR_CATEGORY_FN, C_OTHER, C_TTFC, C_COST_AMOUNT, C_OPENLIT_COST,
    C_COST_SOURCE, C_SOURCE_PROVIDER, C_PRICE_TABLE, C_UNPRICED, C_USER_KEYS, C_FEATURE,
    C_TIER_KEYS, C_UNKNOWN, C_INPUT_KEY, C_OUTPUT_KEY, C_CACHE_READ_KEY, C_CACHE_WRITE_KEY,
    C_REASONING_KEY, C_REASON_TOKEN_TYPE, C_REASON_TOKEN_NEGATIVE, C_REASON_TOKEN_ABSURD,
    C_REASON_VALUE_TYPE, C_REASON_TOO_LONG, C_REASON_TTFC, C_REASON_COST, C_CONTEXT_SIZE
};

static PyObject *
invalid(PyObject *ctx, int reason)
{
    PyObject *type = PyTuple_GET_ITEM(ctx, C_INVALID_SPAN);
    PyObject *exc = PyObject_CallOneArg(type, PyTuple_GET_ITEM(ctx, reason));
    if (exc != NULL) {
        PyErr_SetObject(type, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Normaliser._text: a new reference, or NULL with InvalidSpan set. */
static PyObject *
text_of(PyObject *ctx, PyObject *attrs, PyObject *key)
{
    PyObject *value = PyDict_GetItemWithError(attrs, key);
    if (value == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyUnicode_FromStringAndSize("", 0);
    }
    Py_ssize_t max_len = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, C_MAX_LEN));
    if (PyUnicode_CheckExact(value)) {
        if (PyUnicode_GET_LENGTH(value) > max_len) {
            invalid(ctx, C_REASON_TOO_LONG);
            return NULL;
        }
        Py_INCREF(value);
        return value;
    }
    if (value == PyTuple_GET_ITEM(ctx, C_UNSUPPORTED) || PyList_Check(value)) {
        invalid(ctx, C_REASON_VALUE_TYPE);
        return NULL;
    }
    PyObject *text = PyObject_Str(value);
    if (text == NULL)
        return NULL;
    if (PyUnicode_GET_LENGTH(text) > max_len) {
        Py_DECREF(text);
        invalid(ctx, C_REASON_TOO_LONG);
        return NULL;
    }
    return text;
}

/* Normaliser._first_text over a tuple of keys. */
static PyObject *
first_text(PyObject *ctx, PyObject *attrs, PyObject *keys)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys); i++) {
        int present = PyDict_Contains(attrs, PyTuple_GET_ITEM(keys, i));
        if (present < 0)
            return NULL;
        if (present)
            return text_of(ctx, attrs, PyTuple_GET_ITEM(keys, i));
    }
    return PyUnicode_FromStringAndSize("", 0);
}

/* Normaliser._tokens: 1 with *count, 0 when absent, -1 with an exception. */
static int
tokens_of(PyObject *ctx, PyObject *attrs, PyObject *keys, long long *count)
{
    long long max_tokens = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, C_MAX_TOKENS));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys); i++) {
        PyObject *value = PyDict_GetItemWithError(attrs, PyTuple_GET_ITEM(keys, i));
        if (value == NULL) {
            if (PyErr_Occurred())
                return -1;
            continue;
        }
        if (PyLong_CheckExact(value)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (v == -1 && PyErr_Occurred())
                return -1;
            if (overflow < 0 || (!overflow && v < 0)) {
                invalid(ctx, C_REASON_TOKEN_NEGATIVE);
                return -1;
            }
            if (overflow > 0 || v > max_tokens) {
                invalid(ctx, C_REASON_TOKEN_ABSURD);
                return -1;
            }
            *count = v;
            return 1;
        }
        if (PyFloat_CheckExact(value)) {
            double v = PyFloat_AS_DOUBLE(value);
            if (isfinite(v) && floor(v) == v) {
                if (v < 0) {
                    invalid(ctx, C_REASON_TOKEN_NEGATIVE);
                    return -1;
                }
                if (v > (double)max_tokens) { /* max_tokens < 2**53: exact */
                    invalid(ctx, C_REASON_TOKEN_ABSURD);
                    return -1;
                }
                *count = (long long)v;
                return 1;
            }
        }
        invalid(ctx, C_REASON_TOKEN_TYPE);
        return -1;
    }
    return 0;
}

/* finite_number: 1 with *out, 0 when not a finite int/float, -1 with an exception. */
static int
finite_of(PyObject *value, double *out)
{
    double v;
    if (PyLong_CheckExact(value)) {
        v = PyLong_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred())
            return -1;
    }
    else if (PyFloat_CheckExact(value))
        v = PyFloat_AS_DOUBLE(value);
    else
        return 0;
    if (!isfinite(v))
        return 0;
    *out = v;
    return 1;
}

#define TAKE(var, expr)                                                                            \
    do {                                                                                           \
        PyObject *_t = (expr);                                                                     \
        if (_t == NULL)                                                                            \
            goto fail;                                                                             \
        Py_XSETREF(var, _t);                                                                       \
    } while (0)

static PyObject *
wirescan_normalise(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != C_CONTEXT_SIZE ||
        !PyDict_Check(args[1]) || !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "normalise(context, attrs, scope_name, status_error)");
        return NULL;
    }
    PyObject *ctx = args[0], *attrs = args[1], *scope = args[2];
    int status_error = PyObject_IsTrue(args[3]);
    if (status_error < 0)
        return NULL;
#define K(i) PyTuple_GET_ITEM(ctx, i)
    PyObject *markers = K(C_MARKERS);
    int any = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(markers) && !any; i++) {
        any = PyDict_Contains(attrs, PyTuple_GET_ITEM(markers, i));
        if (any < 0)
            return NULL;
    }
    if (!any)
        Py_RETURN_NONE;
    PyObject *operation = NULL, *request_model = NULL, *response_model = NULL, *provider = NULL;
    PyObject *error_type = NULL, *category = NULL, *user = NULL, *feature = NULL, *tier = NULL;
    PyObject *ttfc = NULL, *reported = NULL, *source = NULL, *missing = NULL, *result = NULL;
    PyObject *tmp = NULL;
    int rc;

    TAKE(operation, text_of(ctx, attrs, K(C_OPERATION)));
    if (PyUnicode_GET_LENGTH(operation) == 0) {
        TAKE(tmp, text_of(ctx, attrs, K(C_REQUEST_TYPE)));
        PyObject *mapped = PyDict_GetItemWithError(K(C_REQUEST_TYPES), tmp);
        if (mapped == NULL && PyErr_Occurred())
            goto fail;
        Py_INCREF(mapped ? mapped : tmp);
        Py_SETREF(operation, mapped ? mapped : tmp);
    }
    if (PyUnicode_GET_LENGTH(operation) == 0) {
        rc = PyObject_RichCompareBool(scope, K(C_ANTHROPIC_SCOPE), Py_EQ);
        if (rc < 0)
            goto fail;
        if (rc) {
            Py_INCREF(K(C_CHAT));
            Py_SETREF(operation, K(C_CHAT));
        }
    }
    rc = PySet_Contains(K(C_NON_INFERENCE), operation);
    if (rc < 0)
        goto fail;
    if (rc) {
        Py_DECREF(operation);
        Py_XDECREF(tmp);
        Py_RETURN_NONE;
    }
    TAKE(request_model, text_of(ctx, attrs, K(C_REQUEST_MODEL)));
    TAKE(response_model, text_of(ctx, attrs, K(C_RESPONSE_MODEL)));
    TAKE(tmp, text_of(ctx, attrs, K(C_PROVIDER)));
    if (PyUnicode_GET_LENGTH(tmp) == 0)
        TAKE(tmp, text_of(ctx, attrs, K(C_SYSTEM)));
    if (PyUnicode_GET_LENGTH(tmp) > 0) {
        PyObject *cache = K(C_PROVIDER_CACHE);
        PyObject *cached = PyDict_GetItemWithError(cache, tmp);
        if (cached == NULL) {
            if (PyErr_Occurred())
                goto fail;
            cached = PyObject_CallOneArg(K(C_NORMALISE_PROVIDER), tmp);
            if (cached == NULL)
                goto fail;
            if (PyDict_GET_SIZE(cache) >= 4096)
                PyDict_Clear(cache);
            if (PyDict_SetItem(cache, tmp, cached) < 0) {
                Py_DECREF(cached);
                goto fail;
            }
            provider = cached;
        }
        else {
            Py_INCREF(cached);
            provider = cached;
        }
    }
    else {
        provider = PyUnicode_FromStringAndSize("", 0);
        if (provider == NULL)
            goto fail;
    }
    if (PyUnicode_GET_LENGTH(provider) == 0) {
        rc = PyObject_RichCompareBool(scope, K(C_ANTHROPIC_SCOPE), Py_EQ);
        if (rc < 0)
            goto fail;
        if (rc) {
            Py_INCREF(K(C_ANTHROPIC));
            Py_SETREF(provider, K(C_ANTHROPIC));
        }
    }
    long long input = 0, output = 0, cache_read = 0, cache_write = 0, reasoning = 0;
    int has_input, has_output;
    if ((has_input = tokens_of(ctx, attrs, K(C_INPUT_KEYS), &input)) < 0 ||
        (has_output = tokens_of(ctx, attrs, K(C_OUTPUT_KEYS), &output)) < 0 ||
        tokens_of(ctx, attrs, K(C_CACHE_READ_KEYS), &cache_read) < 0 ||
        tokens_of(ctx, attrs, K(C_CACHE_WRITE_KEYS), &cache_write) < 0 ||
        tokens_of(ctx, attrs, K(C_REASONING_KEYS), &reasoning) < 0)
        goto fail;
    long long input_total = input, output_total = output, cache_total = cache_read + cache_write;
    if (cache_total) {
        int add = cache_total > input_total;
        if (!add) {
            rc = PyObject_RichCompareBool(provider, K(C_ANTHROPIC), Py_EQ);
            if (rc < 0)
                goto fail;
            if (rc) {
                Py_ssize_t match = PyUnicode_Tailmatch(scope, K(C_OPENLIT_PREFIX), 0, PY_SSIZE_T_MAX, -1);
                if (match < 0)
                    goto fail;
                add = match > 0;
            }
        }
        if (add) {
            input_total += cache_total;
            if (input_total > PyLong_AsLongLong(K(C_MAX_TOKENS))) {
                invalid(ctx, C_REASON_TOKEN_ABSURD);
                goto fail;
            }
        }
    }
    if (reasoning > output_total)
        output_total += reasoning;

    TAKE(error_type, text_of(ctx, attrs, K(C_ERROR_TYPE)));
    TAKE(category, text_of(ctx, attrs, K(C_ERROR_CATEGORY)));
    int error = status_error || PyUnicode_GET_LENGTH(error_type) > 0 || PyUnicode_GET_LENGTH(category) > 0;
    if (error) {
        rc = PySet_Contains(K(C_CATEGORY_VALUES), category);
        if (rc < 0)
            goto fail;
        if (!rc) {
            if (PyUnicode_GET_LENGTH(error_type) > 0)
                TAKE(category, PyObject_CallOneArg(K(C_ERROR_CATEGORY_FN), error_type));
            else {
                Py_INCREF(K(C_OTHER));
                Py_SETREF(category, K(C_OTHER));
            }
        }
    }
    else
        TAKE(category, PyUnicode_FromStringAndSize("", 0));

    PyObject *value = PyDict_GetItemWithError(attrs, K(C_TTFC));
    if (value == NULL && PyErr_Occurred())
        goto fail;
    if (value != NULL) {
        double v;
        rc = finite_of(value, &v);
        if (rc < 0)
            goto fail;
        if (rc == 0 || v < 0) {
            invalid(ctx, C_REASON_TTFC);
            goto fail;
        }
        ttfc = PyFloat_FromDouble(v);
        if (ttfc == NULL)
            goto fail;
    }
    PyObject *cost_keys[2] = {K(C_COST_AMOUNT), K(C_OPENLIT_COST)};
    for (int i = 0; i < 2; i++) {
        value = PyDict_GetItemWithError(attrs, cost_keys[i]);
        if (value == NULL) {
            if (PyErr_Occurred())
                goto fail;
            continue;
        }
        double v;
        rc = finite_of(value, &v);
        if (rc < 0)
            goto fail;
        if (rc == 0 || v < 0) {
            invalid(ctx, C_REASON_COST);
            goto fail;
        }
        reported = PyFloat_FromDouble(v);
        if (reported == NULL)
            goto fail;
        if (i == 0) {
            TAKE(source, text_of(ctx, attrs, K(C_COST_SOURCE)));
            if (PyUnicode_GET_LENGTH(source) == 0) {
                Py_INCREF(K(C_SOURCE_PROVIDER));
                Py_SETREF(source, K(C_SOURCE_PROVIDER));
            }
        }
        else {
            Py_INCREF(K(C_SOURCE_PROVIDER));
            source = K(C_SOURCE_PROVIDER);
        }
        break;
    }
    if (source == NULL)
        TAKE(source, PyUnicode_FromStringAndSize("", 0));
    int already = PyDict_Contains(attrs, K(C_PRICE_TABLE));
    if (already == 0)
        already = PyDict_Contains(attrs, K(C_UNPRICED));
    if (already < 0)
        goto fail;

    PyObject *names[8];
    int count = 0;
    struct {
        int wanted;
        int key;
    } checks[8] = {
        {PyUnicode_GET_LENGTH(provider) > 0, C_PROVIDER},
        {has_input, C_INPUT_KEY},
        {has_output, C_OUTPUT_KEY},
        {cache_read != 0, C_CACHE_READ_KEY},
        {cache_write != 0, C_CACHE_WRITE_KEY},
        {reasoning != 0, C_REASONING_KEY},
        {reported != NULL, C_COST_AMOUNT},
        {error, C_ERROR_CATEGORY},
    };
    for (int i = 0; i < 8; i++) {
        if (!checks[i].wanted)
            continue;
        rc = PyDict_Contains(attrs, K(checks[i].key));
        if (rc < 0)
            goto fail;
        if (!rc)
            names[count++] = K(checks[i].key);
    }
    missing = PyTuple_New(count);
    if (missing == NULL)
        goto fail;
    for (int i = 0; i < count; i++) {
        Py_INCREF(names[i]);
        PyTuple_SET_ITEM(missing, i, names[i]);
    }
    TAKE(user, first_text(ctx, attrs, K(C_USER_KEYS)));
    TAKE(feature, text_of(ctx, attrs, K(C_FEATURE)));
    TAKE(tier, first_text(ctx, attrs, K(C_TIER_KEYS)));
    if (PyUnicode_GET_LENGTH(tier)) /* "".lower() is "" */
        TAKE(tier, PyObject_CallMethod(tier, "lower", NULL));

    {
        long long counts[5] = {input_total, output_total, cache_read, cache_write, reasoning};
        PyObject *numbers[5] = {NULL, NULL, NULL, NULL, NULL};
        int ok = 1;
        for (int i = 0; i < 5 && ok; i++)
            ok = (numbers[i] = PyLong_FromLongLong(counts[i])) != NULL;
        if (ok) {
            PyObject *fields[CALL_FIELDS] = {
                PyUnicode_GET_LENGTH(provider) ? provider : K(C_UNKNOWN),
                PyUnicode_GET_LENGTH(operation) ? operation : K(C_UNKNOWN), request_model, response_model,
                numbers[0], numbers[1], numbers[2], numbers[3], numbers[4],
                (has_input || has_output) ? Py_True : Py_False, error ? Py_True : Py_False, category, user,
                feature, ttfc ? ttfc : Py_None, tier, reported ? reported : Py_None, source,
                already ? Py_True : Py_False, missing};
            result = new_call(K(C_GENAI_CALL), fields);
        }
        for (int i = 0; i < 5; i++)
            Py_XDECREF(numbers[i]);
    }
fail:
    Py_XDECREF(operation);
    Py_XDECREF(request_model);
    Py_XDECREF(response_model);
    Py_XDECREF(provider);
    Py_XDECREF(error_type);
    Py_XDECREF(category);
    Py_XDECREF(user);
    Py_XDECREF(feature);
    Py_XDECREF(tier);
    Py_XDECREF(ttfc);
    Py_XDECREF(reported);
    Py_XDECREF(source);
    Py_XDECREF(missing);
    Py_XDECREF(tmp);
    return result;
#undef K
}

/* ---------------------------------------------------------------------------------------------
 * assemble(data, resources, additions): pipeline._assemble in one pass over the modified spans
 * (the same bytes: untouched runs copied, length prefixes of modified ResourceSpans, ScopeSpans
 * and Span messages rewritten, each addition appended to its span).
 */
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

/* The new payload size of one scope (or -1 when it has no addition); *ok = 0 on a bad entry. */
static Py_ssize_t
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

static PyObject *
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
static int hist_observe_objects(HistObject *h, PyObject *value, PyObject *trace, PyObject *timestamp);

/* ---------------------------------------------------------------------------------------------
 * observe(histogram, value, trace_id, timestamp): metrics.Histogram.observe for a float value
 * (bisect_left over the float bounds, the same comparisons); any other value goes back to the
 * Python method.
 */
static PyObject *s_bounds, *s_counts, *s_sum, *s_count, *s_exemplars, *s_observe, *one;

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

static PyObject *
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
static PyObject *a_requests, *a_tokens, *a_duration, *a_ttfc, *a_tps, *a_cost, *a_breakdown,
    *a_savings, *a_cost_per_request, *a_cost_exemplar, *a_input, *a_output, *a_cache_read,
    *a_cache_write, *empty_str, *zero, *zero_float, *a_stamps, *a_stamp, *a_admit;

/* dict[key] += amount; a new key of a metrics.Counts table is stamped created first. */
static int
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

static int
add_to_list(PyObject *list, Py_ssize_t index, PyObject *amount)
{
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(list, index), amount);
    if (sum == NULL)
        return -1;
    return PyList_SetItem(list, index, sum);
}

/* LabelLimiter.__call__(value): an admitted value of an allowed label is itself; anything else
 * (a new value to admit, an overflow, a disallowed label) is the Python method's. New reference. */
static PyObject *a_allowed, *a_admitted, *a_overflow;

static PyObject *
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
static int
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

static int
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

static PyObject *
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

static inline uint8_t *
put_double(uint8_t *p, double value)
{
    PyFloat_Pack8(value, (char *)p, 1); /* struct's "<d" */
    return p + 8;
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
static int
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

static void
hist_dealloc(HistObject *h)
{
    if (h->ex != NULL) {
        for (Py_ssize_t i = 0; i <= h->nb; i++) {
            Py_XDECREF(h->ex[i].trace);
            Py_XDECREF(h->ex[i].value_obj);
            Py_XDECREF(h->ex[i].ts_obj);
        }
        PyMem_Free(h->ex);
    }
    PyMem_Free(h->b);
    PyMem_Free(h->counts);
    Py_XDECREF(h->bounds);
    PyTypeObject *type = Py_TYPE(h);
    type->tp_free((PyObject *)h);
    Py_DECREF(type); /* a heap type: its instances hold a reference */
}

static PyObject *
hist_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"bounds", "exemplars", "created", NULL};
    PyObject *bounds;
    int exemplars;
    double created = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!p|d:Histogram", kwlist, &PyTuple_Type, &bounds,
                                     &exemplars, &created))
        return NULL;
    Py_ssize_t nb = PyTuple_GET_SIZE(bounds);
    double *b = PyMem_Calloc((size_t)nb + 1, sizeof(double));
    if (b == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *bound = PyTuple_GET_ITEM(bounds, i);
        if (PyFloat_CheckExact(bound))
            b[i] = PyFloat_AS_DOUBLE(bound);
        else if (PyLong_CheckExact(bound) && (b[i] = PyLong_AsDouble(bound)) > -9007199254740992.0 &&
                 b[i] < 9007199254740992.0)
            ; /* exact as a double: the comparisons are Python's */
        else {
            PyMem_Free(b);
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "Histogram bounds must be floats");
            return NULL;
        }
    }
    HistObject *h = (HistObject *)type->tp_alloc(type, 0);
    if (h == NULL) {
        PyMem_Free(b);
        return NULL;
    }
    h->b = b;
    h->nb = nb;
    h->bounds = Py_NewRef(bounds);
    h->created = created;
    h->counts = PyMem_Calloc((size_t)nb + 1, sizeof(unsigned long long));
    h->ex = exemplars ? PyMem_Calloc((size_t)nb + 1, sizeof(Exemplar)) : NULL;
    if (h->counts == NULL || (exemplars && h->ex == NULL)) {
        Py_DECREF(h);
        return PyErr_NoMemory();
    }
    return (PyObject *)h;
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

static int
hist_observe_objects(HistObject *h, PyObject *value, PyObject *trace, PyObject *timestamp)
{
    double x = PyFloat_AsDouble(value);
    if (x == -1.0 && PyErr_Occurred())
        return -1;
    int keep = PyObject_IsTrue(trace);
    if (keep < 0)
        return -1;
    double ts = 0.0;
    if (keep && h->ex != NULL) {
        ts = PyFloat_AsDouble(timestamp);
        if (ts == -1.0 && PyErr_Occurred())
            return -1;
    }
    hist_record(h, x, keep ? trace : NULL, value, ts, timestamp);
    return 0;
}

static PyObject *
hist_observe_method(HistObject *h, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "observe(value, trace_id, timestamp)");
        return NULL;
    }
    if (hist_observe_objects(h, args[0], args[1], args[2]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
hist_get_counts(HistObject *h, void *closure)
{
    (void)closure;
    PyObject *list = PyList_New(h->nb + 1);
    for (Py_ssize_t i = 0; list != NULL && i <= h->nb; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(h->counts[i]);
        if (v == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *
hist_get_sum(HistObject *h, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(h->sum);
}

static PyObject *
hist_get_count(HistObject *h, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(h->count);
}

static PyObject *
hist_get_exemplars(HistObject *h, void *closure)
{
    (void)closure;
    if (h->ex == NULL)
        Py_RETURN_NONE;
    PyObject *list = PyList_New(h->nb + 1);
    for (Py_ssize_t i = 0; list != NULL && i <= h->nb; i++) {
        Exemplar *e = &h->ex[i];
        PyObject *item;
        if (e->trace == NULL)
            item = Py_NewRef(Py_None);
        else {
            PyObject *value = e->value_obj ? Py_NewRef(e->value_obj) : PyFloat_FromDouble(e->value);
            PyObject *ts = e->ts_obj ? Py_NewRef(e->ts_obj) : PyFloat_FromDouble(e->ts);
            item = value && ts ? PyTuple_Pack(3, e->trace, value, ts) : NULL;
            Py_XDECREF(value);
            Py_XDECREF(ts);
        }
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* Histogram.copy(): the same state in a new object that later observations leave alone (the
 * exposition renders such copies in a worker thread) */
static PyObject *
hist_copy(HistObject *h, PyObject *Py_UNUSED(ignored))
{
    HistObject *c = (HistObject *)Py_TYPE(h)->tp_alloc(Py_TYPE(h), 0);
    if (c == NULL)
        return NULL;
    size_t n = (size_t)h->nb + 1;
    c->bounds = Py_NewRef(h->bounds);
    c->nb = h->nb;
    c->sum = h->sum;
    c->count = h->count;
    c->created = h->created;
    c->b = PyMem_Malloc(n * sizeof(double));
    c->counts = PyMem_Malloc(n * sizeof(unsigned long long));
    c->ex = h->ex != NULL ? PyMem_Malloc(n * sizeof(Exemplar)) : NULL;
    if (c->b == NULL || c->counts == NULL || (h->ex != NULL && c->ex == NULL)) {
        PyMem_Free(c->ex); /* nothing in it to release yet */
        c->ex = NULL;
        Py_DECREF(c);
        return PyErr_NoMemory();
    }
    memcpy(c->b, h->b, n * sizeof(double));
    memcpy(c->counts, h->counts, n * sizeof(unsigned long long));
    if (h->ex != NULL) {
        memcpy(c->ex, h->ex, n * sizeof(Exemplar));
        for (size_t i = 0; i < n; i++) {
            Py_XINCREF(c->ex[i].trace);
            Py_XINCREF(c->ex[i].value_obj);
            Py_XINCREF(c->ex[i].ts_obj);
        }
    }
    return (PyObject *)c;
}

static PyGetSetDef hist_getset[] = {
    {"counts", (getter)hist_get_counts, NULL, "observations per bucket (a copy)", NULL},
    {"sum", (getter)hist_get_sum, NULL, "sum of the observations", NULL},
    {"count", (getter)hist_get_count, NULL, "number of observations", NULL},
    {"exemplars", (getter)hist_get_exemplars, NULL, "last (trace_id, value, timestamp) per bucket",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef hist_members[] = {
    {"bounds", T_OBJECT_EX, offsetof(HistObject, bounds), READONLY, "upper bounds"},
    {"created", T_DOUBLE, offsetof(HistObject, created), 0, "unix seconds"},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef hist_methods[] = {
    {"observe", (PyCFunction)(void (*)(void))hist_observe_method, METH_FASTCALL,
     "observe(value, trace_id, timestamp)"},
    {"copy", (PyCFunction)hist_copy, METH_NOARGS, "a copy that later observations leave alone"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot hist_slots[] = {
    {Py_tp_dealloc, hist_dealloc},
    {Py_tp_doc, "metrics.Histogram with its state in C arrays"},
    {Py_tp_methods, hist_methods},
    {Py_tp_members, hist_members},
    {Py_tp_getset, hist_getset},
    {Py_tp_new, hist_new},
    {0, NULL},
};

PyType_Spec hist_spec = {
    .name = "genai_otel.processors._wirescan.Histogram",
    .basicsize = sizeof(HistObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = hist_slots,
};

static int grow(void **array, Py_ssize_t *room, Py_ssize_t count, size_t size);

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
    uint8_t span_id[8];
    int paired;
    double seen;
} RecentSlot;

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

/* Remembers one span under its keys (a key already held by an older span now means this one). */
static int
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
    return recent_log(r, pos, UNDO_INSERT);
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

#define RECENT_MAX_RESPONSE_ID 128

/* The slot of the span counted for the same call as this one (then this one is a duplicate and
 * is not remembered), or NULL: this one is counted, and remembered. -1 in *error on failure.
 * native: 1 the SDK's own span, 2 a span that may be around one (the same provider), 0 neither. */
static RecentSlot *
recent_see(RecentObject *r, PyObject *scope, int native, PyObject *service, long long ident,
           const uint8_t *trace, Py_ssize_t trace_len, const uint8_t *span, Py_ssize_t span_len,
           const uint8_t *parent, Py_ssize_t parent_len, long long start, long long end, const uint8_t *rid,
           Py_ssize_t rid_len, int *error)
{
    *error = 0;
    Py_hash_t scope_hash = PyObject_Hash(scope), service_hash = PyObject_Hash(service);
    if (scope_hash == -1 || service_hash == -1) {
        *error = -1;
        return NULL;
    }
    int traced = trace_len == 16;
    int has_span = traced && span_len == 8, has_parent = traced && parent_len == 8;
    int has_rid = rid_len > 0 && rid_len <= RECENT_MAX_RESPONSE_ID;
    uint8_t buffer[16 + RECENT_MAX_RESPONSE_ID];
    Py_hash_t own = 0, up = 0, answer = 0, side = 0;
    if (has_span || has_parent)
        memcpy(buffer, trace, 16);
    if (has_span) {
        memcpy(buffer + 16, span, 8);
        own = recent_hash(r, buffer, 24);
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
            return s;
        }
    }
    RecentSlot value;
    memset(&value, 0, sizeof value);
    value.keys[0] = answer;
    value.keys[1] = has_span ? recent_mix(own, 'S') : 0;  /* for my children */
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
    if (recent_insert(r, &value) < 0) {
        *error = -1;
        return NULL;
    }
    return NULL;
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
 * one is counted). */
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
    int error;
    RecentSlot *kept = recent_see(
        r, args[0], native, args[2], ident, (const uint8_t *)PyBytes_AS_STRING(args[4]),
        PyBytes_GET_SIZE(args[4]), (const uint8_t *)PyBytes_AS_STRING(args[5]), PyBytes_GET_SIZE(args[5]),
        (const uint8_t *)PyBytes_AS_STRING(args[6]), PyBytes_GET_SIZE(args[6]), start, end,
        (const uint8_t *)rid, rid_len, &error);
    if (error < 0)
        return NULL;
    if (kept == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(y#O)", (const char *)kept->span_id, (Py_ssize_t)8, kept->scope);
}

static PyObject *
recent_get_duplicates(RecentObject *r, void *closure)
{
    (void)closure;
    return PyLong_FromLongLong(r->duplicates);
}

static PyMethodDef recent_methods[] = {
    {"see", (PyCFunction)(void (*)(void))recent_see_method, METH_FASTCALL,
     "see(scope, native, service, ident, trace_id, span_id, parent_span_id, start_ns, end_ns, "
     "response_id) -> (span id, scope) | None"},
    {"begin", (PyCFunction)recent_begin, METH_O, "begin(now): a request starts"},
    {"settle", (PyCFunction)recent_settle, METH_O, "settle(ok): the request is done (undone unless ok)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef recent_getset[] = {
    {"duplicates", (getter)recent_get_duplicates, NULL, "duplicates found", NULL},
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
enum { K_PRICED = 1, K_UNPRICED = 2, K_OTHER = 3, K_NO_COST = 4 /* a failed call without usage */ };
#define MAX_TIERS 8
#define MAX_SIGNATURE 4096
#define MAX_ENTRIES 65536

typedef struct Entry {
    uint8_t *key;
    Py_ssize_t key_len;
    uint64_t hash;
    int kind;
    int anthropic_openlit; /* OpenLIT's Anthropic spans: cache tokens always added to input */
    long long ident;       /* duplicates.call_ident(provider, model) */
    int side;              /* 2: a call whose SDK may emit its own span too (duplicates.py), else 0 */
    long long lo, hi;      /* start times [lo, hi) the rates hold for */
    PyObject *stats, *service_label, *provider_attr;
    PyObject *request_key, *status, *error_attr; /* (status, error label), "ok"/"error", bytes */
    double base[5], tier[MAX_TIERS][5], multiplier;
    long long threshold[MAX_TIERS];
    int ntiers;
    PyObject *prefixes;                 /* priced: the six cost attribute prefixes */
    PyObject *unpriced_key, *unpriced_attr;
    PyObject *h_duration, *h_ttfc, *h_tps, *h_cost;
    /* not yet added to the Python objects */
    int dirty;
    long long requests, tokens[5], cost, breakdown[4], savings, unpriced;
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

enum {
    L_TABLE, L_CATEGORICAL, L_MARKERS, L_SLOW, L_GROUPS, L_CURRENT, L_USERS, L_FEATURE, L_TTFC,
    L_MAX_TOKENS, L_MAX_LENGTH, L_EXEMPLARS, L_FACTORY, L_BOUNDS, L_USER_LIMITER,
    L_FEATURE_LIMITER, L_USER_COST, L_FEATURE_COST, L_UNPRICED, L_HEADERS, L_ANTHROPIC_SCOPE,
    L_OPENLIT_PREFIX, L_RECENT, L_RECORD_DUPLICATE, L_DUPLICATE_PREFIX, L_RESPONSE_ID, L_SIZE
};

typedef struct {
    PyObject_HEAD WsState *state; /* the module's, cached here: no lookup per span */
    PyObject *ctx;
    Table *t;
    uint64_t categorical, markers, slow;
    int group[5][8], ngroup[5], current[5], users[8], nusers, feature, ttfc;
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
} LaneObject;


static void
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

static void
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
    if (PyTuple_GET_SIZE(ctx) != L_SIZE) {
        PyErr_Format(PyExc_TypeError, "Lane: context of %d items expected", L_SIZE);
        return NULL;
    }
    Table *t = PyCapsule_GetPointer(PyTuple_GET_ITEM(ctx, L_TABLE), CAPSULE_NAME);
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
    PyObject *groups = PyTuple_GET_ITEM(ctx, L_GROUPS), *current = PyTuple_GET_ITEM(ctx, L_CURRENT);
    if (key_mask(t, PyTuple_GET_ITEM(ctx, L_CATEGORICAL), &l->categorical) < 0 ||
        key_mask(t, PyTuple_GET_ITEM(ctx, L_MARKERS), &l->markers) < 0 ||
        key_mask(t, PyTuple_GET_ITEM(ctx, L_SLOW), &l->slow) < 0)
        goto fail;
    if (!PyTuple_Check(groups) || PyTuple_GET_SIZE(groups) != 5 || !PyTuple_Check(current) ||
        PyTuple_GET_SIZE(current) != 5) {
        PyErr_SetString(PyExc_TypeError, "Lane: five token groups and five current names");
        goto fail;
    }
    for (int g = 0; g < 5; g++) {
        if (key_list(t, PyTuple_GET_ITEM(groups, g), l->group[g], &l->ngroup[g], 8) < 0 ||
            (l->current[g] = key_index(t, PyTuple_GET_ITEM(current, g))) < 0)
            goto fail;
    }
    if (key_list(t, PyTuple_GET_ITEM(ctx, L_USERS), l->users, &l->nusers, 8) < 0 ||
        (l->feature = key_index(t, PyTuple_GET_ITEM(ctx, L_FEATURE))) < 0 ||
        (l->ttfc = key_index(t, PyTuple_GET_ITEM(ctx, L_TTFC))) < 0)
        goto fail;
    l->max_tokens = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, L_MAX_TOKENS));
    l->max_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, L_MAX_LENGTH));
    if (PyErr_Occurred())
        goto fail;
    if (l->max_tokens < 0 || l->max_tokens >= (1LL << 53) || l->max_length < 0) {
        PyErr_SetString(PyExc_ValueError, "Lane: token cap must be in [0, 2**53)");
        goto fail;
    }
    if ((l->exemplars = PyObject_IsTrue(PyTuple_GET_ITEM(ctx, L_EXEMPLARS))) < 0)
        goto fail;
    PyObject *headers = PyTuple_GET_ITEM(ctx, L_HEADERS), *bounds = PyTuple_GET_ITEM(ctx, L_BOUNDS);
    if (!PyTuple_Check(headers) || PyTuple_GET_SIZE(headers) != 5 || !PyTuple_Check(bounds) ||
        PyTuple_GET_SIZE(bounds) != 4) {
        PyErr_SetString(PyExc_TypeError, "Lane: five header lists and four bucket tuples");
        goto fail;
    }
    for (int g = 0; g < 5; g++) {
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
    if (!PyUnicode_Check(PyTuple_GET_ITEM(ctx, L_ANTHROPIC_SCOPE)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(ctx, L_OPENLIT_PREFIX))) {
        PyErr_SetString(PyExc_TypeError, "Lane: scope names must be str");
        goto fail;
    }
    PyObject *recent = PyTuple_GET_ITEM(ctx, L_RECENT);
    if (recent != Py_None && !Py_IS_TYPE(recent, l->state->recent_type)) {
        PyErr_SetString(PyExc_TypeError, "Lane: recent must be a Recent or None");
        goto fail;
    }
    l->recent = recent == Py_None ? NULL : (RecentObject *)recent;
    if (!PyBytes_CheckExact(PyTuple_GET_ITEM(ctx, L_DUPLICATE_PREFIX)) ||
        (l->response_id = key_index(t, PyTuple_GET_ITEM(ctx, L_RESPONSE_ID))) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Lane: the duplicate_of prefix must be bytes");
        goto fail;
    }
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

/* Doubles an open-addressing table of records whose 64-bit hash sits at `hash_offset`. */
static int
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

static Entry *
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

/* ---- adding the pending sums to the registry's Python objects ---- */
static int
add_long_to_item(WsState *st, PyObject *dict, PyObject *key, long long n)
{
    PyObject *amount = PyLong_FromLongLong(n);
    if (amount == NULL)
        return -1;
    int rc = add_to_item(st, dict, key, amount);
    Py_DECREF(amount);
    return rc;
}

static int
add_long_to_list(PyObject *list, Py_ssize_t index, long long n)
{
    PyObject *amount = PyLong_FromLongLong(n);
    if (amount == NULL)
        return -1;
    int rc = add_to_list(list, index, amount);
    Py_DECREF(amount);
    return rc;
}

/* obj.name as a long long (-1 with an exception when it is not an int in range). */
static int
long_attr(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *value = attr_get(obj, name);
    if (value == NULL)
        return -1;
    *out = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
add_long_to_attr(PyObject *obj, PyObject *name, long long n)
{
    PyObject *amount = PyLong_FromLongLong(n);
    if (amount == NULL)
        return -1;
    int rc = add_to_attr(obj, name, amount);
    Py_DECREF(amount);
    return rc;
}

static int
entry_flush(LaneObject *l, Entry *e)
{
    WsState *st = l->state;
    PyObject *stats = e->stats, *requests = NULL, *stamps = NULL, *counts = NULL, *tmp = NULL;
    int rc = -1;
    if (e->requests) {
        if ((requests = attr_get(stats, st->a_requests)) == NULL ||
            add_long_to_item(st, requests, e->request_key, e->requests) < 0)
            goto done;
    }
    if ((stamps = attr_get(stats, st->a_stamps)) == NULL)
        goto done;
    if (!PyList_CheckExact(stamps) || PyList_GET_SIZE(stamps) != 7) {
        PyErr_SetString(PyExc_TypeError, "Lane: SeriesStats.stamps is not a list of 7");
        goto done;
    }
    if (e->requests && e->kind != K_NO_COST) {
        if ((counts = attr_get(stats, st->a_tokens)) == NULL || !PyList_CheckExact(counts) ||
            PyList_GET_SIZE(counts) != 5) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "Lane: SeriesStats.tokens is not a list of 5");
            goto done;
        }
        for (Py_ssize_t i = 0; i < 5; i++)
            if (add_long_to_list(counts, i, e->tokens[i]) < 0)
                goto done;
        for (Py_ssize_t i = 2; i < 5; i++)
            if (stamp_when_nonzero(st, stats, stamps, i, PyList_GET_ITEM(counts, i)) < 0)
                goto done;
        Py_CLEAR(counts);
    }
    if (e->kind == K_PRICED && e->requests) {
        if (add_long_to_attr(stats, st->a_cost, e->cost) < 0)
            goto done;
        if ((counts = attr_get(stats, st->a_breakdown)) == NULL || !PyList_CheckExact(counts) ||
            PyList_GET_SIZE(counts) != 4) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "Lane: SeriesStats.breakdown is not a list of 4");
            goto done;
        }
        for (Py_ssize_t i = 0; i < 4; i++)
            if (add_long_to_list(counts, i, e->breakdown[i]) < 0)
                goto done;
        for (int i = 0; i < 4 && PyList_GET_ITEM(stamps, 5) == Py_None; i++)
            if (stamp_when_nonzero(st, stats, stamps, 5, PyList_GET_ITEM(counts, i)) < 0)
                goto done;
        if (add_long_to_attr(stats, st->a_savings, e->savings) < 0)
            goto done;
        if (PyList_GET_ITEM(stamps, 6) == Py_None) {
            if ((tmp = attr_get(stats, st->a_savings)) == NULL ||
                stamp_when_nonzero(st, stats, stamps, 6, tmp) < 0)
                goto done;
        }
        if (e->ex_trace != NULL) {
            PyObject *usd = PyFloat_FromDouble(e->ex_usd), *end = PyFloat_FromDouble(e->ex_end);
            PyObject *exemplar = usd && end ? PyTuple_Pack(3, e->ex_trace, usd, end) : NULL;
            Py_XDECREF(usd);
            Py_XDECREF(end);
            if (exemplar == NULL)
                goto done;
            int set = attr_set(stats, st->a_cost_exemplar, exemplar);
            Py_DECREF(exemplar);
            if (set < 0)
                goto done;
        }
    }
    if (e->kind == K_UNPRICED && e->unpriced &&
        add_long_to_item(st, PyTuple_GET_ITEM(l->ctx, L_UNPRICED), e->unpriced_key, e->unpriced) < 0)
        goto done;
    rc = 0;
done:
    e->requests = e->cost = e->savings = e->unpriced = 0;
    memset(e->tokens, 0, sizeof e->tokens);
    memset(e->breakdown, 0, sizeof e->breakdown);
    Py_CLEAR(e->ex_trace);
    e->dirty = 0;
    Py_XDECREF(requests);
    Py_XDECREF(stamps);
    Py_XDECREF(counts);
    Py_XDECREF(tmp);
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
static int
lane_flush_whos(LaneObject *l)
{
    WsState *st = l->state;
    int rc = 0;
    while (l->dirty_whos != NULL) {
        Who *w = l->dirty_whos;
        l->dirty_whos = w->next_dirty;
        w->next_dirty = NULL;
        w->dirty = 0;
        PyObject *table = PyTuple_GET_ITEM(l->ctx, w->which ? L_FEATURE_COST : L_USER_COST);
        if (add_long_to_item(st, table, w->table_key, w->pending) < 0 && rc == 0)
            rc = -1;
        w->pending = 0;
        /* LabelLimiter.overflow += what as many calls with an over-cap value would have counted */
        PyObject *limiter = PyTuple_GET_ITEM(l->ctx, w->which ? L_FEATURE_LIMITER : L_USER_LIMITER);
        if (w->overflowed && add_long_to_attr(limiter, st->a_overflow, w->overflowed) < 0 && rc == 0)
            rc = -1;
        w->overflowed = 0;
    }
    return rc;
}

static int
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
static int
entry_histogram(LaneObject *l, Entry *e, PyObject **slot, PyObject *name, int bounds)
{
    if (*slot != NULL)
        return 0;
    PyObject *h = attr_get(e->stats, name);
    if (h == NULL)
        return -1;
    if (h == Py_None) {
        Py_DECREF(h);
        h = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(l->ctx, L_FACTORY),
                                         PyTuple_GET_ITEM(PyTuple_GET_ITEM(l->ctx, L_BOUNDS), bounds),
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

static int
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
        h = PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(l->ctx, L_FACTORY),
                                         PyTuple_GET_ITEM(PyTuple_GET_ITEM(l->ctx, L_BOUNDS), 0),
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

/* ---- one span ---- */
typedef struct {
    uint8_t *data;
    Py_ssize_t len, room;
} Buffer;

static int
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

static int
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

/* The current walk position, for recording an addition's enclosing regions on first use. */
typedef struct {
    Region resource, scope;
    Py_ssize_t resource_index, scope_index; /* -1 until an addition lands in them */
} Place;

static int
output_add(Output *o, Place *p, Py_ssize_t field_start, Py_ssize_t start, Py_ssize_t end,
           const uint8_t *bytes, Py_ssize_t len)
{
    if (len == 0)
        return 0;
    if (p->resource_index < 0) {
        if (grow((void **)&o->resources, &o->resources_room, o->nresources, sizeof(Region)) < 0)
            return -1;
        p->resource_index = o->nresources;
        o->resources[o->nresources++] = p->resource;
    }
    if (p->scope_index < 0) {
        if (grow((void **)&o->scopes, &o->scopes_room, o->nscopes, sizeof(Region)) < 0)
            return -1;
        p->scope_index = o->nscopes;
        p->scope.resource = p->resource_index;
        o->scopes[o->nscopes++] = p->scope;
    }
    if (grow((void **)&o->adds, &o->adds_room, o->nadds, sizeof(Addition)) < 0)
        return -1;
    Addition *a = &o->adds[o->nadds++];
    a->field_start = field_start;
    a->start = start;
    a->end = end;
    a->scope = p->scope_index;
    a->offset = o->bytes.len;
    a->len = len;
    if (bytes != NULL) { /* NULL: the caller already wrote them at the buffer's end */
        if (buffer_reserve(&o->bytes, len) < 0)
            return -1;
        memcpy(o->bytes.data + o->bytes.len, bytes, (size_t)len);
    }
    o->bytes.len += len;
    return 0;
}

static void
output_free(Output *o)
{
    PyMem_Free(o->bytes.data);
    PyMem_Free(o->adds);
    PyMem_Free(o->scopes);
    PyMem_Free(o->resources);
}

/* The request with every addition appended to its span (lengths of the span, its ScopeSpans and
 * its ResourceSpans rewritten; everything else copied as is). */
static PyObject *
output_assemble(Output *o, PyObject *data)
{
    const uint8_t *d = (const uint8_t *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    Py_ssize_t *scope_size = PyMem_Calloc((size_t)o->nscopes + 1, sizeof(Py_ssize_t));
    Py_ssize_t *res_size = PyMem_Calloc((size_t)o->nresources + 1, sizeof(Py_ssize_t));
    PyObject *result = NULL;
    if (scope_size == NULL || res_size == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t s = 0; s < o->nscopes; s++)
        scope_size[s] = o->scopes[s].end - o->scopes[s].payload;
    for (Py_ssize_t i = 0; i < o->nadds; i++) {
        Addition *a = &o->adds[i];
        Py_ssize_t length = a->end - a->start + a->len;
        scope_size[a->scope] += 1 + varint_size((uint64_t)length) + length - (a->end - a->field_start);
    }
    for (Py_ssize_t r = 0; r < o->nresources; r++)
        res_size[r] = o->resources[r].end - o->resources[r].payload;
    for (Py_ssize_t s = 0; s < o->nscopes; s++) {
        Region *sc = &o->scopes[s];
        res_size[sc->resource] +=
            1 + varint_size((uint64_t)scope_size[s]) + scope_size[s] - (sc->end - sc->start);
    }
    Py_ssize_t total = n;
    for (Py_ssize_t r = 0; r < o->nresources; r++) {
        Region *rs = &o->resources[r];
        total += 1 + varint_size((uint64_t)res_size[r]) + res_size[r] - (rs->end - rs->start);
    }
    if ((result = PyBytes_FromStringAndSize(NULL, total)) == NULL)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    Py_ssize_t w = 0, copy_from = 0, s = 0, i = 0;
#define LANE_COPY(from, to)                                                                        \
    do {                                                                                           \
        memcpy(out + w, d + (from), (size_t)((to) - (from)));                                      \
        w += (to) - (from);                                                                        \
    } while (0)
    for (Py_ssize_t r = 0; r < o->nresources; r++) {
        Region *rs = &o->resources[r];
        LANE_COPY(copy_from, rs->start);
        out[w++] = 0x0A;
        w += put_varint(out + w, (uint64_t)res_size[r]);
        Py_ssize_t pos = rs->payload;
        for (; s < o->nscopes && o->scopes[s].resource == r; s++) {
            Region *sc = &o->scopes[s];
            LANE_COPY(pos, sc->start);
            out[w++] = 0x12;
            w += put_varint(out + w, (uint64_t)scope_size[s]);
            Py_ssize_t scope_pos = sc->payload;
            for (; i < o->nadds && o->adds[i].scope == s; i++) {
                Addition *a = &o->adds[i];
                LANE_COPY(scope_pos, a->field_start);
                out[w++] = 0x12;
                w += put_varint(out + w, (uint64_t)(a->end - a->start + a->len));
                LANE_COPY(a->start, a->end);
                memcpy(out + w, o->bytes.data + a->offset, (size_t)a->len);
                w += a->len;
                scope_pos = a->end;
            }
            LANE_COPY(scope_pos, sc->end);
            pos = sc->end;
        }
        LANE_COPY(pos, rs->end);
        copy_from = rs->end;
    }
    LANE_COPY(copy_from, n);
#undef LANE_COPY
    if (w != total) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_SystemError, "Lane: assembled size mismatch");
    }
done:
    PyMem_Free(scope_size);
    PyMem_Free(res_size);
    return result;
}

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
    PyObject *header = PyList_GET_ITEM(PyTuple_GET_ITEM(PyTuple_GET_ITEM(l->ctx, L_HEADERS), which), size);
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
    long long tokens[5], q[5];
    double duration, ttfc, end_s;
    int has_ttfc;
    PyObject *trace; /* owned; NULL without exemplars */
    Py_ssize_t who_at[2], who_len[2];
    Py_ssize_t upto;
    PyObject *duplicate; /* owned: (counted span's scope, this span's scope); e is NULL */
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
    int scope_kind;        /* 1: the Anthropic SDK's scope; 2: an OpenLIT scope */
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

/* Registry.record_call's user_cost/feature_cost.add((service label, limiter(value)), total) */
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
    PyObject *value = NULL, *label = NULL, *table_key = NULL, *amount = NULL;
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
    /* first sight: the limiter decides (Python admits new values, counts overflow). Its verdict
     * is final (the admitted set only grows, up to a fixed cap), so it is cached either way: an
     * admitted value's label (the value, or its keyed hash), `other` or "" (not allowed); each
     * later sighting of a value the limiter counted as overflow counts one more, as a call would.
     * Whether it did is read off its overflow count, not guessed from the label. */
    PyObject *limiter = PyTuple_GET_ITEM(l->ctx, which ? L_FEATURE_LIMITER : L_USER_LIMITER);
    long long overflow_before, overflow_after;
    if (long_attr(limiter, st->a_overflow, &overflow_before) < 0 ||
        (value = PyUnicode_DecodeUTF8((const char *)raw, len, "replace")) == NULL ||
        (label = limit(st, limiter, value)) == NULL || (table_key = PyTuple_Pack(2, service_label, label)) == NULL ||
        long_attr(limiter, st->a_overflow, &overflow_after) < 0)
        goto done;
    int overflow = overflow_after > overflow_before;
    if ((l->who_used + 1) * 2 > l->who_cap) { /* full: make room, and cache it next time */
        if (l->who_used >= MAX_ENTRIES) {
            if (lane_flush_whos(l) < 0)
                goto done;
            lane_drop_whos(l);
        }
        else if (table_grow((void ***)&l->whos, &l->who_cap, offsetof(Who, hash)) < 0)
            goto done;
        if ((amount = PyLong_FromLongLong(total)) == NULL)
            goto done;
        rc = add_to_item(st, PyTuple_GET_ITEM(l->ctx, which ? L_FEATURE_COST : L_USER_COST), table_key, amount);
        goto done;
    }
    /* added at once (a new series is created, and stamped, when the Python path would), and
     * cached for the next sightings */
    PyObject *table = PyTuple_GET_ITEM(l->ctx, which ? L_FEATURE_COST : L_USER_COST);
    if ((amount = PyLong_FromLongLong(total)) == NULL || add_to_item(st, table, table_key, amount) < 0)
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
    Py_XDECREF(label);
    Py_XDECREF(table_key);
    Py_XDECREF(amount);
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
    if (!PyList_CheckExact(stamps) || PyList_GET_SIZE(stamps) != 7) {
        PyErr_SetString(PyExc_TypeError, "Lane: SeriesStats.stamps is not a list of 7");
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

/* A duplicate span: genai_otel.cost.duplicate_of = the counted span's id (hex), counted as such. */
static int
walk_duplicate(Walk *w, const RecentSlot *kept, Py_ssize_t field_start, Py_ssize_t start, Py_ssize_t end)
{
    static const char hex[] = "0123456789abcdef";
    Rec *r = walk_rec(w);
    if (r == NULL || (r->duplicate = PyTuple_Pack(2, kept->scope, w->scope_name)) == NULL)
        return -1;
    Buffer *b = &w->out.bytes;
    Py_ssize_t mark = b->len;
    if (put_bytes(b, PyTuple_GET_ITEM(w->l->ctx, L_DUPLICATE_PREFIX)) < 0 || buffer_reserve(b, 16) < 0)
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
    const char *eval = PyBytes_AS_STRING(l->t->eval_name);
    int has_eval = memmem(d + start, (size_t)(end - start), eval,
                          (size_t)PyBytes_GET_SIZE(l->t->eval_name)) != NULL;
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
    sig[sig_len++] = (uint8_t)(w->scope_kind | (facts.status == 2 ? 4 : 0));
    memcpy(sig + sig_len, &s.present, 8);
    sig_len += 8;
    int fits = sig_put(sig, &sig_len, service, service_len) == 0;
    for (int k = 0; fits && k < l->t->nkeys; k++)
        if (((l->categorical & s.present) >> k) & 1)
            fits = s.value_end[k] - s.value_start[k] <= l->max_length + 16 &&
                   sig_put(sig, &sig_len, d + s.value_start[k], s.value_end[k] - s.value_start[k]) == 0;
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
    if (e->kind == K_OTHER) {
        w->other++;
        return 0;
    }
    /* Normaliser.normalise on the numbers; anything unusual is the Python path's */
    long long tok[5];
    int have[5];
    for (int g = 0; g < 5; g++)
        if ((have[g] = lane_tokens(l, &s, d, n, g, &tok[g])) < 0)
            return walk_slow(w, field_start, start, end, NULL);
    if ((!have[0] && !have[1]) != (e->kind == K_NO_COST))
        return walk_slow(w, field_start, start, end, NULL);
    long long input = tok[0], output = tok[1], cache_read = tok[2], cache_write = tok[3];
    long long reasoning = tok[4], cache = cache_read + cache_write;
    if (cache && (cache > input || e->anthropic_openlit)) {
        input += cache;
        if (input > l->max_tokens)
            return walk_slow(w, field_start, start, end, NULL);
    }
    if (reasoning > output)
        output += reasoning;
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
    long long q[5] = {0, 0, 0, 0, 0};
    if (e->kind == K_PRICED) {
        if (cache_read + cache_write > input)
            return walk_slow(w, field_start, start, end, NULL);
        const double *rate = e->base;
        for (int i = 0; i < e->ntiers; i++)
            if (input > e->threshold[i]) {
                rate = e->tier[i];
                break;
            }
        long long counts[4] = {input, output, cache_read, cache_write};
        if (cost_quanta(counts, rate, e->multiplier, q))
            return walk_slow(w, field_start, start, end, NULL);
    }
    Py_ssize_t who_at[2] = {0, 0}, who_len[2] = {0, 0};
    int got = 0;
    for (int i = 0; i < l->nusers && got == 0; i++)
        got = lane_raw_text(l, &s, d, n, l->users[i], &who_at[0], &who_len[0]);
    if (got < 0 || lane_raw_text(l, &s, d, n, l->feature, &who_at[1], &who_len[1]) < 0)
        return walk_slow(w, field_start, start, end, NULL);
    if (l->recent != NULL) { /* the second span of one call: counted once (duplicates.py) */
        int failed;
        Py_ssize_t rid_at = 0, rid_len = 0;
        if (lane_string(&s, d, n, l->response_id, &rid_at, &rid_len) < 0)
            rid_len = 0;
        RecentSlot *kept = recent_see(l->recent, w->scope_name, (w->scope_kind & 1) ? 1 : e->side, w->service, e->ident,
                                      d + facts.trace_start,
                                      facts.trace_stop - facts.trace_start, d + facts.span_start,
                                      facts.span_stop - facts.span_start, d + facts.parent_start,
                                      facts.parent_stop - facts.parent_start, start_ns, end_ns, d + rid_at,
                                      rid_len, &failed);
        if (failed < 0)
            return -1;
        if (kept != NULL)
            return walk_duplicate(w, kept, field_start, start, end);
    }
    /* everything is decided: the record (applied with the whole request: rec_apply) and the
     * enrichment */
    Rec *r = walk_rec(w);
    if (r == NULL)
        return -1;
    r->e = e;
    long long tokens[5] = {input, output, cache_read, cache_write, reasoning};
    memcpy(r->tokens, tokens, sizeof tokens);
    memcpy(r->q, q, sizeof q);
    r->duration = (double)(end_ns - start_ns) / 1e9;
    r->end_s = (double)end_ns / 1e9;
    r->ttfc = ttfc;
    r->has_ttfc = has_ttfc;
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
    if (e->kind == K_PRICED) {
        /* pipeline._cost_packer's layout */
        const double usd_per_quantum = 1.0 / 4294967296.0;
        double amounts[6] = {(double)(q[0] + q[1] + q[2] + q[3]) * usd_per_quantum,
                             (double)q[0] * usd_per_quantum, (double)q[1] * usd_per_quantum,
                             (double)q[2] * usd_per_quantum, (double)q[3] * usd_per_quantum,
                             (double)q[4] * usd_per_quantum};
        for (Py_ssize_t i = 0; i < 6; i++) {
            PyObject *prefix = PyTuple_GET_ITEM(e->prefixes, i);
            if (put_bytes(b, prefix) < 0 || buffer_reserve(b, 8) < 0)
                return -1;
            put_double(b->data + b->len, amounts[i]);
            b->len += 8;
        }
    }
    else if (e->kind == K_UNPRICED && put_bytes(b, e->unpriced_attr) < 0)
        return -1;
    /* Pipeline._current_name for each name the span lacked, in Normaliser's order */
    if (PyBytes_GET_SIZE(e->provider_attr) && put_bytes(b, e->provider_attr) < 0)
        return -1;
    long long named[5] = {have[0], have[1], cache_read, cache_write, reasoning};
    for (int g = 0; g < 5; g++)
        if (named[g] && !((s.present >> l->current[g]) & 1) && put_int_attribute(l, b, g, tokens[g]) < 0)
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
        (e->kind == K_PRICED && entry_histogram(l, e, &e->h_cost, st->a_cost_per_request, 3) < 0))
        return -1;
    if (!e->dirty) {
        e->dirty = 1;
        e->next_dirty = l->dirty;
        l->dirty = e;
    }
    e->requests++;
    if (e->kind != K_NO_COST) { /* Registry.record_call: a call without usage counts no tokens */
        for (int i = 0; i < 5; i++)
            e->tokens[i] += tokens[i];
        for (int i = 2; i < 5; i++)
            if (tokens[i] && entry_stamp(st, e, i) < 0)
                return -1;
    }
    hist_record((HistObject *)e->h_duration, r->duration, trace, NULL, r->end_s, NULL);
    if (r->has_ttfc)
        hist_record((HistObject *)e->h_ttfc, r->ttfc, trace, NULL, r->end_s, NULL);
    if (tokens[1] > 0 && e->kind != K_NO_COST) {
        double generating = r->duration - r->ttfc;
        if (generating > 0) {
            if (entry_histogram(l, e, &e->h_tps, st->a_tps, 2) < 0)
                return -1;
            hist_record((HistObject *)e->h_tps, (double)tokens[1] / generating, trace, NULL, r->end_s, NULL);
        }
    }
    if (e->kind == K_PRICED) {
        long long total = q[0] + q[1] + q[2] + q[3];
        e->cost += total;
        for (int i = 0; i < 4; i++)
            e->breakdown[i] += q[i];
        e->savings += q[4];
        if ((total && entry_stamp(st, e, 5) < 0) || (q[4] && entry_stamp(st, e, 6) < 0))
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
    else if (e->kind == K_UNPRICED)
        e->unpriced++;
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
        if (r->e != NULL) {
            if (rec_apply(l, r, w->d) < 0)
                return -1;
            continue;
        }
        if (r->duplicate != NULL) { /* Registry.record_duplicate(counted scope, duplicate scope) */
            PyObject *done = PyObject_Call(PyTuple_GET_ITEM(l->ctx, L_RECORD_DUPLICATE), r->duplicate, NULL);
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
    PyMem_Free(w->recs);
    Py_XDECREF(w->service);
    output_free(&w->out);
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
    w->scope_kind = 0;
    int eq = PyUnicode_Compare(name, PyTuple_GET_ITEM(w->l->ctx, L_ANTHROPIC_SCOPE));
    if (eq == -1 && PyErr_Occurred())
        goto fail;
    if (eq == 0)
        w->scope_kind |= 1;
    Py_ssize_t starts = PyUnicode_Tailmatch(name, PyTuple_GET_ITEM(w->l->ctx, L_OPENLIT_PREFIX), 0,
                                            PY_SSIZE_T_MAX, -1);
    if (starts < 0)
        goto fail;
    if (starts)
        w->scope_kind |= 2;
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
static PyObject *
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

/* learn(signature, kind, ...): what the Python path decided for spans of this signature.
 *   learn(sig, 3): not a model call.
 *   learn(sig, kind, stats, service label, lo, hi, provider attr, anthropic_openlit,
 *         request key, status, error attr, ident, side, ...) for start times in [lo, hi), then for kind
 *   1 (priced): base rates, tiers, multiplier, prefixes; 2 (unpriced): unpriced key, unpriced
 *   attr; 4 (a failed call without usage): nothing.
 * Returns whether it was learned (False when a value is not of the expected type). */
static PyObject *
lane_learn(LaneObject *l, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "learn(signature, kind, ...)");
        return NULL;
    }
    if (lane_flush(l) < 0)
        return NULL;
    long kind = PyLong_AsLong(args[1]);
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
    if (kind == K_OTHER && nargs == 2)
        goto learned;
    if ((kind != K_PRICED || nargs != 17) && (kind != K_UNPRICED || nargs != 15) &&
        (kind != K_NO_COST || nargs != 13))
        goto refused;
    if (!PyUnicode_CheckExact(args[3]) || !PyBytes_CheckExact(args[6]) || !PyTuple_CheckExact(args[8]) ||
        !PyUnicode_CheckExact(args[9]) || !PyBytes_CheckExact(args[10]))
        goto refused;
    int overflow = 0;
    e->lo = PyLong_AsLongLongAndOverflow(args[4], &overflow);
    if (overflow || PyErr_Occurred())
        goto refused;
    e->hi = PyLong_AsLongLongAndOverflow(args[5], &overflow);
    if (overflow || PyErr_Occurred())
        goto refused;
    if ((e->anthropic_openlit = PyObject_IsTrue(args[7])) < 0)
        goto refused;
    e->ident = PyLong_AsLongLongAndOverflow(args[11], &overflow);
    if (overflow || PyErr_Occurred())
        goto refused;
    e->side = PyLong_AsLong(args[12]) == 2 ? 2 : 0;
    if (PyErr_Occurred())
        goto refused;
    e->stats = Py_NewRef(args[2]);
    e->service_label = Py_NewRef(args[3]);
    e->provider_attr = Py_NewRef(args[6]);
    e->request_key = Py_NewRef(args[8]);
    e->status = Py_NewRef(args[9]);
    e->error_attr = Py_NewRef(args[10]);
    args += 5; /* the kind's own arguments follow as before */
    if (kind == K_PRICED) {
        PyObject *tiers = args[9], *prefixes = args[11];
        if (float_tuple(args[8], e->base) < 0 || !PyTuple_CheckExact(tiers) ||
            PyTuple_GET_SIZE(tiers) > MAX_TIERS || !PyFloat_CheckExact(args[10]) ||
            !PyTuple_CheckExact(prefixes) || PyTuple_GET_SIZE(prefixes) != 6)
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
        e->multiplier = PyFloat_AS_DOUBLE(args[10]);
        for (int i = 0; i < 6; i++)
            if (!PyBytes_CheckExact(PyTuple_GET_ITEM(prefixes, i)))
                goto refused;
        e->prefixes = Py_NewRef(prefixes);
    }
    else if (kind == K_UNPRICED) {
        if (!PyTuple_CheckExact(args[8]) || !PyBytes_CheckExact(args[9]))
            goto refused;
        e->unpriced_key = Py_NewRef(args[8]);
        e->unpriced_attr = Py_NewRef(args[9]);
    }
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
     "learn(signature, kind, ...) -> bool"},
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

static PyMethodDef methods[] = {
    {"make_table", wirescan_make_table, METH_VARARGS,
     "make_table(keys, eval_name, wire_error, unsupported, decode_other) -> table"},
    {"split", (PyCFunction)(void (*)(void))wirescan_split, METH_FASTCALL,
     "split(data, table) -> (resources, span_count); raises wire_error when malformed"},
    {"record_call", (PyCFunction)(void (*)(void))wirescan_record_call, METH_FASTCALL,
     "record_call(context, stats, ...): metrics.Registry.record_call"},
    {"observe", (PyCFunction)(void (*)(void))wirescan_observe, METH_FASTCALL,
     "observe(histogram, value, trace_id, timestamp): metrics.Histogram.observe"},
    {"assemble", (PyCFunction)(void (*)(void))wirescan_assemble, METH_FASTCALL,
     "assemble(data, resources, additions) -> bytes: the request with additions appended"},
    {"normalise", (PyCFunction)(void (*)(void))wirescan_normalise, METH_FASTCALL,
     "normalise(context, attrs, scope_name, status_error) -> GenAICall | None"},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    WsState *st = PyModule_GetState(module);
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&st->s_bounds, "bounds"}, {&st->s_counts, "counts"}, {&st->s_sum, "sum"},
        {&st->s_count, "count"}, {&st->s_exemplars, "exemplars"}, {&st->s_observe, "observe"},
        {&st->a_requests, "requests"}, {&st->a_tokens, "tokens"}, {&st->a_duration, "duration"},
        {&st->a_ttfc, "ttfc"}, {&st->a_tps, "tps"}, {&st->a_cost, "cost"},
        {&st->a_breakdown, "breakdown"}, {&st->a_savings, "savings"},
        {&st->a_cost_per_request, "cost_per_request"}, {&st->a_cost_exemplar, "cost_exemplar"},
        {&st->a_input, "input"}, {&st->a_output, "output"}, {&st->a_cache_read, "cache_read"},
        {&st->a_cache_write, "cache_write"}, {&st->empty_str, ""}, {&st->a_stamps, "stamps"},
        {&st->a_stamp, "stamp"}, {&st->a_admit, "admit"}, {&st->a_allowed, "allowed"},
        {&st->a_admitted, "admitted"}, {&st->a_overflow, "overflow"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    if ((st->one = PyLong_FromLong(1)) == NULL || (st->zero = PyLong_FromLong(0)) == NULL ||
        (st->zero_float = PyFloat_FromDouble(0.0)) == NULL)
        return -1;
    struct {
        PyTypeObject **slot;
        PyType_Spec *spec;
        const char *name;
    } types[] = {
        {&st->hist_type, &hist_spec, "Histogram"},
        {&st->lane_type, &lane_spec, "Lane"},
        {&st->recent_type, &recent_spec, "Recent"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        PyObject *type = PyType_FromModuleAndSpec(module, types[i].spec, NULL);
        if (type == NULL)
            return -1;
        *types[i].slot = (PyTypeObject *)type;
        if (PyModule_AddObjectRef(module, types[i].name, type) < 0)
            return -1;
    }
    return PyModule_AddStringConstant(module, "SOURCE_DIGEST", WIRESCAN_SOURCE_DIGEST);
}

/* WsState holds only object references: the collector visits and clears them as an array. */
#define STATE_SIZE ((Py_ssize_t)(sizeof(WsState) / sizeof(PyObject *)))

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    PyObject **objects = (PyObject **)PyModule_GetState(module);
    for (Py_ssize_t i = 0; i < STATE_SIZE; i++)
        Py_VISIT(objects[i]);
    return 0;
}

static int
module_clear(PyObject *module)
{
    PyObject **objects = (PyObject **)PyModule_GetState(module);
    for (Py_ssize_t i = 0; i < STATE_SIZE; i++)
        Py_CLEAR(objects[i]);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_wirescan",
    .m_doc = "Accelerated OTLP request walk (see processors/scan.py).",
    .m_size = sizeof(WsState),
    .m_methods = methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__wirescan(void)
{
    return PyModuleDef_Init(&module_def);
}
