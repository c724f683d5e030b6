/* The Histogram type (described in _wirescan.h, beside its struct). */
#include "_wirescan.h"

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

int
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

