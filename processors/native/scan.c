/* The request walk behind `split`: attribute scans, span facts, the key table. */
#include "_wirescan.h"

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
        if (p > end || v > (uint64_t)(end - p)) { /* runs past its AnyValue: malformed */
            Py_INCREF(t->unsupported);
            return t->unsupported;
        }
        return PyUnicode_DecodeUTF8((const char *)d + p, (Py_ssize_t)v, "replace");
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

int
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

void
range_sink_clear(Sink *s)
{
    s->present = 0;
}

/* KeyScanner.scan over data[start:end] into the sink (first valid occurrence wins).
 * Returns 0, -1 with an exception, or 1 when undecided. */
int
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
int
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

int
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
    /* _span_header_exact */
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
int
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
    int has_eval = contains_eval(t, d + start, end - start);
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
        facts_obj = PyTuple_New(6); /* wire.span_facts: (trace_id, start_ns, end_ns, status, span id, parent) */
        if (facts_obj != NULL) {
            PyObject *items[6] = {
                PyBytes_FromStringAndSize((const char *)d + facts.trace_start,
                                          facts.trace_stop - facts.trace_start),
                PyLong_FromUnsignedLongLong((unsigned long long)facts.start_ns),
                PyLong_FromUnsignedLongLong((unsigned long long)facts.end_ns),
                PyLong_FromUnsignedLongLong((unsigned long long)facts.status),
                PyBytes_FromStringAndSize((const char *)d + facts.span_start, facts.span_stop - facts.span_start),
                PyBytes_FromStringAndSize((const char *)d + facts.parent_start,
                                          facts.parent_stop - facts.parent_start)};
            int ok = 1;
            for (int i = 0; i < 6; i++) {
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
PyObject *
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

PyObject *
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
    PyMem_Free(t->eval_shift);
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
PyObject *
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
    Py_ssize_t m = PyBytes_GET_SIZE(eval_name);
    if (m >= 2 && m <= 255) { /* shift[bigram]: how far the window may move when it ends in it */
        const uint8_t *needle = (const uint8_t *)PyBytes_AS_STRING(eval_name);
        if ((t->eval_shift = PyMem_Malloc(65536)) == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        memset(t->eval_shift, (int)(m - 1), 65536);
        for (Py_ssize_t j = 0; j + 1 < m; j++)
            t->eval_shift[(needle[j] << 8) | needle[j + 1]] = (uint8_t)(m - 2 - j);
    }
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
    Py_XDECREF(t->eval_name);
    Py_XDECREF(t->wire_error);
    Py_XDECREF(t->unsupported);
    Py_XDECREF(t->decode_other);
    PyMem_Free(t->eval_shift);
    PyMem_Free(t);
    return NULL;
}

