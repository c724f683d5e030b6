/* Routes the sanitizer coverage callbacks to atheris's libFuzzer (scripts/fuzz preloads this).
 *
 * Python is not built with ASAN, so gcc's libasan must be preloaded to fuzz the sanitized
 * extension. libasan defines the coverage callbacks too (as no-ops), and a preloaded library
 * takes every call made by name: atheris's calls to its own libFuzzer would land in libasan and
 * the fuzzer would see no coverage at all. Preloaded before libasan, these definitions win and
 * forward to the libFuzzer inside atheris's core module, found by dlsym on that module (its
 * path in GENAI_OTEL_FUZZ_LIBFUZZER). They also receive the comparisons of the extension itself,
 * built with -fsanitize-coverage=trace-cmp: libFuzzer then learns the C code's constants.
 * Before the module is loaded a call does nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

static void *libfuzzer(void) {
    static void *handle;
    if (handle == NULL) {
        const char *path = getenv("GENAI_OTEL_FUZZ_LIBFUZZER");
        if (path != NULL)
            handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    }
    return handle;
}

static void *target(const char *name, void **slot) {
    if (*slot == NULL) {
        void *handle = libfuzzer();
        if (handle != NULL)
            *slot = dlsym(handle, name);
    }
    return *slot;
}

#define FORWARD(name, params, args)                                                     \
    void name params {                                                                  \
        static void *slot;                                                              \
        void (*real) params = (void (*) params)target(#name, &slot);                    \
        if (real != NULL)                                                               \
            real args;                                                                  \
    }

FORWARD(__sanitizer_cov_8bit_counters_init, (uint8_t *a, uint8_t *b), (a, b))
FORWARD(__sanitizer_cov_pcs_init, (const uintptr_t *a, const uintptr_t *b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp1, (uint8_t a, uint8_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp2, (uint16_t a, uint16_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp4, (uint32_t a, uint32_t b), (a, b))
FORWARD(__sanitizer_cov_trace_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp1, (uint8_t a, uint8_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp2, (uint16_t a, uint16_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp4, (uint32_t a, uint32_t b), (a, b))
FORWARD(__sanitizer_cov_trace_const_cmp8, (uint64_t a, uint64_t b), (a, b))
FORWARD(__sanitizer_cov_trace_switch, (uint64_t a, uint64_t *b), (a, b))
FORWARD(__sanitizer_cov_trace_div4, (uint32_t a), (a))
FORWARD(__sanitizer_cov_trace_div8, (uint64_t a), (a))
FORWARD(__sanitizer_cov_trace_gep, (uintptr_t a), (a))
FORWARD(__sanitizer_cov_trace_pc_indir, (uintptr_t a), (a))
FORWARD(__sanitizer_cov_trace_pc_guard, (uint32_t *a), (a))
FORWARD(__sanitizer_cov_trace_pc_guard_init, (uint32_t *a, uint32_t *b), (a, b))

/* gcc's trace-cmp also reports float comparisons; libFuzzer has no use for them */
void __sanitizer_cov_trace_cmpf(float a, float b) { (void)a; (void)b; }
void __sanitizer_cov_trace_cmpd(double a, double b) { (void)a; (void)b; }
