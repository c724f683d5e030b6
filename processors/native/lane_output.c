/* The lane's output: the request re-assembled with the attributes it adds to spans. */
#include "_wirescan.h"

/* ---- one span ---- */

int
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

void
output_free(Output *o)
{
    PyMem_Free(o->bytes.data);
    PyMem_Free(o->adds);
    PyMem_Free(o->scopes);
    PyMem_Free(o->resources);
}

#define SPARE_MAX_BYTES (4 << 20)

/* Keeps o's buffers, emptied, in *spare (freeing what *spare held) when they are not large;
 * frees them otherwise. */
void
output_keep(Output *spare, Output *o)
{
    if (o->bytes.room > SPARE_MAX_BYTES || o->adds_room * (Py_ssize_t)sizeof(Addition) > SPARE_MAX_BYTES ||
        o->scopes_room * (Py_ssize_t)sizeof(Region) > SPARE_MAX_BYTES ||
        o->resources_room * (Py_ssize_t)sizeof(Region) > SPARE_MAX_BYTES) {
        output_free(o);
        return;
    }
    output_free(spare);
    *spare = *o;
    spare->bytes.len = spare->nadds = spare->nscopes = spare->nresources = 0;
}

/* The request with every addition appended to its span (lengths of the span, its ScopeSpans and
 * its ResourceSpans rewritten; everything else copied as is). */
PyObject *
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

