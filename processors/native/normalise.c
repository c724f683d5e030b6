/* `normalise`: one span's attributes to a GenAICall (normalise.Normaliser.normalise). */
#include "_wirescan.h"

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
 * by normalise.Normaliser.accelerated; its layout is the enum below.
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

PyObject *
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

