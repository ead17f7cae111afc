#include "vector_kernels.h"
#include <stdint.h>
#include <string.h>

// Same bits on every instruction set: no a*b+c fused into one rounding.
#pragma clang fp contract(off)

static inline float exponential(float x) {
    // Beyond these e^x is not a normal float; clamping keeps 2^n's exponent bits valid.
    float clamped = x < -87.3f ? -87.3f : x;
    clamped = clamped > 88.3f ? 88.3f : clamped;
    // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the float's low mantissa bits.
    float shifted = clamped * 1.44269504088896341f + 12582912.0f;
    float n = shifted - 12582912.0f;
    // ln 2 in two parts, so n·ln2 is subtracted without losing r's low bits.
    float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    int32_t scaleBits = (int32_t)((uint32_t)(bits - 0x4B400000 + 127) << 23);
    float scale;
    memcpy(&scale, &scaleBits, sizeof scale);
    return y * scale;
}

// One body, instantiated per instruction set; the compiler vectorises the inner loops.
#define ACTIVATE_ROWS_BODY                                                                        \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * stride;                                                         \
        if (activation == SCION_ACTIVATION_SWISH) {                                               \
            if (bias) { for (size_t i = 0; i < count; i++) { float x = v[i] + bias[i]; v[i] = x / (1.0f + exponential(-x)); } } \
            else { for (size_t i = 0; i < count; i++) { float x = v[i]; v[i] = x / (1.0f + exponential(-x)); } } \
        } else {                                                                                  \
            if (bias) { for (size_t i = 0; i < count; i++) { v[i] = 1.0f / (1.0f + exponential(-(v[i] + bias[i]))); } } \
            else { for (size_t i = 0; i < count; i++) { v[i] = 1.0f / (1.0f + exponential(-v[i])); } } \
        }                                                                                         \
    }

#define ACTIVATE_ROWS_PARAMETERS \
    float *restrict values, size_t rows, size_t count, size_t stride, const float *restrict bias, scion_activation activation

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void activate_rows_avx512(ACTIVATE_ROWS_PARAMETERS) { ACTIVATE_ROWS_BODY }

__attribute__((target("avx2")))
static void activate_rows_avx2(ACTIVATE_ROWS_PARAMETERS) { ACTIVATE_ROWS_BODY }

static void activate_rows_sse2(ACTIVATE_ROWS_PARAMETERS) { ACTIVATE_ROWS_BODY }

// Vectors of 16 and 4 floats that may sit at any float's address; in each target's function the
// compiler lowers them to one zmm, two ymm or four xmm registers.
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v4 __attribute__((vector_size(16), aligned(4)));

#define DEPTHWISE_BLOCK(V)                                                                        \
    {                                                                                             \
        V sum = {0};                                                                              \
        for (ptrdiff_t kx = kx_low; kx < kx_high; kx++) {                                         \
            const float *tap = a->image + base + a->ky_low * a->row_stride + kx * a->tap_stride + c; \
            const float *weight = a->kernel + (a->ky_low * a->kernel_width + kx) * a->channels + c; \
            for (ptrdiff_t ky = a->ky_low; ky < a->ky_high; ky++) {                               \
                sum += *(const V *)weight * *(const V *)tap;                                      \
                tap += a->row_stride;                                                             \
                weight += a->kernel_width * a->channels;                                          \
            }                                                                                     \
        }                                                                                         \
        *(V *)(target + c) = sum;                                                                 \
    }

#define DEPTHWISE_ROW_BODY                                                                        \
    for (ptrdiff_t ox = 0; ox < a->output_width; ox++) {                                          \
        const ptrdiff_t kx_low = a->kx_low[ox], kx_high = a->kx_high[ox];                         \
        const ptrdiff_t base = (a->row_start * a->width + ox * a->stride - a->left) * a->channels; \
        float *target = a->output + ox * a->channels;                                             \
        ptrdiff_t c = a->first;                                                                   \
        for (; c + 16 <= a->last; c += 16) DEPTHWISE_BLOCK(v16)                                   \
        for (; c + 4 <= a->last; c += 4) DEPTHWISE_BLOCK(v4)                                      \
        for (; c < a->last; c++) {                                                                \
            float sum = 0;                                                                        \
            for (ptrdiff_t kx = kx_low; kx < kx_high; kx++)                                       \
                for (ptrdiff_t ky = a->ky_low; ky < a->ky_high; ky++)                             \
                    sum += a->kernel[(ky * a->kernel_width + kx) * a->channels + c]               \
                         * a->image[base + ky * a->row_stride + kx * a->tap_stride + c];          \
            target[c] = sum;                                                                      \
        }                                                                                         \
    }

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void depthwise_row_avx512(const scion_depthwise_row_arguments *a) { DEPTHWISE_ROW_BODY }

__attribute__((target("avx2")))
static void depthwise_row_avx2(const scion_depthwise_row_arguments *a) { DEPTHWISE_ROW_BODY }

static void depthwise_row_sse2(const scion_depthwise_row_arguments *a) { DEPTHWISE_ROW_BODY }

// 0: not chosen yet; then 1 sse2, 2 avx2, 3 avx512. A race between threads writes the same value.
static int level;

static int chosen_level(void) {
    int current = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (current) return current;
    __builtin_cpu_init();
    current = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
              && __builtin_cpu_supports("avx512bw") ? 3 : __builtin_cpu_supports("avx2") ? 2 : 1;
    __atomic_store_n(&level, current, __ATOMIC_RELAXED);
    return current;
}

void scion_activate_rows(float *values, size_t rows, size_t count, size_t stride, const float *bias,
                         scion_activation activation) {
    switch (chosen_level()) {
    case 3: activate_rows_avx512(values, rows, count, stride, bias, activation); break;
    case 2: activate_rows_avx2(values, rows, count, stride, bias, activation); break;
    default: activate_rows_sse2(values, rows, count, stride, bias, activation); break;
    }
}

void scion_depthwise_row(const scion_depthwise_row_arguments *arguments) {
    switch (chosen_level()) {
    case 3: depthwise_row_avx512(arguments); break;
    case 2: depthwise_row_avx2(arguments); break;
    default: depthwise_row_sse2(arguments); break;
    }
}

const char *scion_vector_level(void) {
    switch (chosen_level()) {
    case 3: return "avx512";
    case 2: return "avx2";
    default: return "sse2";
    }
}
