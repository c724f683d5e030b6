/* Accelerated walk of an OTLP ExportTraceServiceRequest (see processors/scan.py) and the lane
 * that applies, to span kinds seen before, the outcomes the Python rules decided.
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
#include "_wirescan.h"


static PyMethodDef methods[] = {
    {"make_table", wirescan_make_table, METH_VARARGS,
     "make_table(keys, eval_name, wire_error, unsupported, decode_other) -> table"},
    {"split", (PyCFunction)(void (*)(void))wirescan_split, METH_FASTCALL,
     "split(data, table) -> (resources, span_count); raises wire_error when malformed"},
    {"assemble", (PyCFunction)(void (*)(void))wirescan_assemble, METH_FASTCALL,
     "assemble(data, resources, additions) -> bytes: the request with additions appended"},
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
        {&st->a_duration, "duration"}, {&st->a_ttfc, "ttfc"}, {&st->a_tps, "tps"},
        {&st->a_cost_per_request, "cost_per_request"}, {&st->a_stamps, "stamps"},
        {&st->a_stamp, "stamp"}, {&st->a_add, "add"}, {&st->empty_str, ""},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
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

