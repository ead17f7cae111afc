#include "vector_kernels.h"
#include "kernels_internal.h"
#include <stdint.h>
#include <string.h>

// Same bits on every instruction set: no a*b+c fused into one rounding.
#pragma clang fp contract(off)

static inline __attribute__((always_inline)) float exponential(float x) {
    // Beyond these e^x is not a normal float; clamping keeps 2^n's exponent bits valid.
    float clamped = x < -87.3f ? -87.3f : x;
    clamped = clamped > 88.3f ? 88.3f : clamped;
    // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the float's low mantissa bits.
    // Every step is one fused multiply-add, one rounding (explicit, so the same on every
    // instruction set; 28% faster than separate products and sums, on the cost of every swish).
    float shifted = __builtin_fmaf(clamped, 1.44269504088896341f, 12582912.0f);
    float n = shifted - 12582912.0f;
    // ln 2 in two parts, so n·ln2 is subtracted without losing r's low bits.
    float r = __builtin_fmaf(n, -0.693359375f, clamped);
    r = __builtin_fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = __builtin_fmaf(p, r, 1.3981999507e-3f);
    p = __builtin_fmaf(p, r, 8.3334519073e-3f);
    p = __builtin_fmaf(p, r, 4.1665795894e-2f);
    p = __builtin_fmaf(p, r, 1.6666665459e-1f);
    p = __builtin_fmaf(p, r, 5.0000001201e-1f);
    float y = __builtin_fmaf(p * r, r, r) + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    int32_t scaleBits = (int32_t)((uint32_t)(bits - 0x4B400000 + 127) << 23);
    float scale;
    memcpy(&scale, &scaleBits, sizeof scale);
    return y * scale;
}


// Each per-value loop below is one body compiled three times, for AVX-512, AVX2 and baseline SSE2
// (the compiler vectorises its inner loops for each), and one entry point that calls the version
// this CPU runs. The explicit fused multiply-adds (`exponential`) are one instruction on the first
// two and the C library's `fmaf` on SSE2: the same bits everywhere.
#define PER_INSTRUCTION_SET(NAME, PARAMETERS, BODY)                                               \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))) static void NAME##_avx512(PARAMETERS) { BODY } \
    __attribute__((target("avx2,fma"))) static void NAME##_avx2(PARAMETERS) { BODY }             \
    static void NAME##_sse2(PARAMETERS) { BODY }

#define CALL_CHOSEN(NAME, ...)                                                                    \
    switch (scion_chosen_level()) {                                                              \
    case 3: NAME##_avx512(__VA_ARGS__); break;                                                    \
    case 2: NAME##_avx2(__VA_ARGS__); break;                                                      \
    default: NAME##_sse2(__VA_ARGS__); break;                                                     \
    }

// erf(x): for |x| < 0.5 its Taylor series to x^13 (truncation under 1e-8 relative); beyond, Abramowitz
// and Stegun's 7.1.26, 1 - t·P(t)·e^(-x²) with t = 1 / (1 + 0.3275911·|x|), absolute error under
// 1.5e-7 where erf is over 0.52. `tail` receives t·P(t)·e^(-x²) = 1 - erf(|x|) (for |x| >= 0.5), so a
// GELU can form 1 + erf(x) of a negative x without cancelling.
static inline __attribute__((always_inline)) float error_function(float x, float *tail) {
    float a = x < 0 ? -x : x;
    float s = a * a;
    float series = 1.0f / 9360.0f;
    series = series * s - 1.0f / 1320.0f;
    series = series * s + 1.0f / 216.0f;
    series = series * s - 1.0f / 42.0f;
    series = series * s + 1.0f / 10.0f;
    series = series * s - 1.0f / 3.0f;
    series = series * s + 1.0f;
    series = series * a * 1.12837916709551257f;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float q = p * t * exponential(-s);
    *tail = q;
    float magnitude = a < 0.5f ? series : 1.0f - q;
    return x < 0 ? -magnitude : magnitude;
}

// 0.5·x·(1 + erf(x/√2)); for x/√2 <= -0.5, 1 + erf is the tail itself (no 1 - (1 - q)).
static inline __attribute__((always_inline)) float gelu_exact(float x) {
    float tail;
    float erf = error_function(x * 0.707106781186547524f, &tail);
    float onePlus = x * 0.707106781186547524f <= -0.5f ? tail : 1.0f + erf;
    return 0.5f * x * onePlus;
}

#define ACTIVATE_ROWS_BODY                                                                        \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * stride;                                                         \
        switch (activation) {                                                                     \
        case SCION_ACTIVATION_SWISH:                                                              \
            if (bias) { for (size_t i = 0; i < count; i++) { float x = v[i] + bias[i]; v[i] = x / (1.0f + exponential(-x)); } } \
            else { for (size_t i = 0; i < count; i++) { float x = v[i]; v[i] = x / (1.0f + exponential(-x)); } } \
            break;                                                                                \
        case SCION_ACTIVATION_SIGMOID:                                                            \
            if (bias) { for (size_t i = 0; i < count; i++) { v[i] = 1.0f / (1.0f + exponential(-(v[i] + bias[i]))); } } \
            else { for (size_t i = 0; i < count; i++) { v[i] = 1.0f / (1.0f + exponential(-v[i])); } } \
            break;                                                                                \
        case SCION_ACTIVATION_GELU:                                                               \
            if (bias) { for (size_t i = 0; i < count; i++) v[i] = gelu_exact(v[i] + bias[i]); }   \
            else { for (size_t i = 0; i < count; i++) v[i] = gelu_exact(v[i]); }                  \
            break;                                                                                \
        case SCION_ACTIVATION_GELU_TANH:                                                          \
            /* 0.5·x·(1 + tanh(u)) = x / (1 + e^(-2u)), u = √(2/π)·(x + 0.044715·x³) */            \
            for (size_t i = 0; i < count; i++) {                                                  \
                float x = bias ? v[i] + bias[i] : v[i];                                           \
                float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);                      \
                v[i] = x / (1.0f + exponential(-2.0f * u));                                       \
            }                                                                                     \
            break;                                                                                \
        case SCION_ACTIVATION_ERF:                                                                \
            for (size_t i = 0; i < count; i++) { float tail; v[i] = error_function(bias ? v[i] + bias[i] : v[i], &tail); } \
            break;                                                                                \
        }                                                                                         \
    }

// The bias, then (with `relu`) `relu_capped`.
#define CLAMP_ROWS_BODY                                                                           \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * stride;                                                         \
        if (!relu) { if (bias) { for (size_t i = 0; i < count; i++) v[i] += bias[i]; } continue; } \
        if (bias) { for (size_t i = 0; i < count; i++) v[i] = relu_capped(v[i] + bias[i], cap); } \
        else { for (size_t i = 0; i < count; i++) v[i] = relu_capped(v[i], cap); }               \
    }

#define CLAMP_ROWS_PARAMETERS \
    float *restrict values, size_t rows, size_t count, size_t stride, const float *restrict bias, int relu, float cap

PER_INSTRUCTION_SET(clamp_rows, CLAMP_ROWS_PARAMETERS, CLAMP_ROWS_BODY)

// `x · scale` per column (a squeeze-and-excitation's gate).
#define SCALE_ROWS_BODY                                                                           \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * stride;                                                         \
        for (size_t i = 0; i < count; i++) v[i] = v[i] * scale[i];                                \
    }

#define SCALE_ROWS_PARAMETERS float *restrict values, size_t rows, size_t count, size_t stride, const float *restrict scale

PER_INSTRUCTION_SET(scale_rows, SCALE_ROWS_PARAMETERS, SCALE_ROWS_BODY)

// `scale_rows` from one buffer into another, rows packed `count` apart (a 1x1 convolution's input
// gated block by block): the same product per value.
#define SCALE_ROWS_INTO_BODY                                                                      \
    for (size_t row = 0; row < rows; row++) {                                                     \
        const float *v = source + row * stride;                                                   \
        float *out = target + row * count;                                                        \
        for (size_t i = 0; i < count; i++) out[i] = v[i] * scale[i];                              \
    }

#define SCALE_ROWS_INTO_PARAMETERS \
    const float *restrict source, size_t stride, float *restrict target, size_t rows, size_t count, const float *restrict scale

PER_INSTRUCTION_SET(scale_rows_into, SCALE_ROWS_INTO_PARAMETERS, SCALE_ROWS_INTO_BODY)

// `x · scale + shift` per column (two roundings, as the Swift loop), then with `relu` `relu_capped`,
// row by row from IN(row) into OUT(row): the one expression of the in-place and the copying forms.
#define AFFINE_LOOP(IN, OUT)                                                                      \
    for (size_t row = 0; row < rows; row++) {                                                     \
        const float *v = IN(row);                                                                 \
        float *out = OUT(row);                                                                    \
        if (relu) {                                                                               \
            for (size_t i = 0; i < count; i++) out[i] = relu_capped(v[i] * scale[i] + shift[i], cap); \
        } else {                                                                                  \
            for (size_t i = 0; i < count; i++) out[i] = v[i] * scale[i] + shift[i];               \
        }                                                                                         \
    }

#define AFFINE_VALUES_ROW(row) (values + (row) * stride)
#define AFFINE_ROWS_BODY AFFINE_LOOP(AFFINE_VALUES_ROW, AFFINE_VALUES_ROW)

#define AFFINE_ROWS_PARAMETERS \
    float *restrict values, size_t rows, size_t count, size_t stride, const float *restrict scale, \
    const float *restrict shift, int relu, float cap

PER_INSTRUCTION_SET(affine_rows, AFFINE_ROWS_PARAMETERS, AFFINE_ROWS_BODY)

// `affine_rows` from one buffer into another, rows packed `count` apart.
#define AFFINE_SOURCE_ROW(row) (source + (row) * stride)
#define AFFINE_TARGET_ROW(row) (target + (row) * count)
#define AFFINE_ROWS_INTO_BODY AFFINE_LOOP(AFFINE_SOURCE_ROW, AFFINE_TARGET_ROW)

#define AFFINE_ROWS_INTO_PARAMETERS \
    const float *restrict source, size_t stride, float *restrict target, size_t rows, size_t count, \
    const float *restrict scale, const float *restrict shift, int relu, float cap

PER_INSTRUCTION_SET(affine_rows_into, AFFINE_ROWS_INTO_PARAMETERS, AFFINE_ROWS_INTO_BODY)

// Sums of `count` values in sixteen running sums added in a fixed order: every instruction set
// vectorises the lanes alike (no reassociation), so the results are the same bits on each.
static inline __attribute__((always_inline)) float lane_sum(const float *restrict v, size_t count) {
    float lanes[16] = {0};
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        for (size_t k = 0; k < 16; k++) lanes[k] += v[i + k];
    }
    float total = 0;
    for (size_t k = 0; k < 16; k++) total += lanes[k];
    for (; i < count; i++) total += v[i];
    return total;
}

static inline __attribute__((always_inline)) float lane_squared_deviation(const float *restrict v, size_t count, float mean) {
    float lanes[16] = {0};
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        for (size_t k = 0; k < 16; k++) { float d = v[i + k] - mean; lanes[k] += d * d; }
    }
    float total = 0;
    for (size_t k = 0; k < 16; k++) total += lanes[k];
    for (; i < count; i++) { float d = v[i] - mean; total += d * d; }
    return total;
}

static inline __attribute__((always_inline)) float lane_exponential_sum(const float *restrict v, size_t count, float peak) {
    float lanes[16] = {0};
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        for (size_t k = 0; k < 16; k++) lanes[k] += exponential(v[i + k] - peak);
    }
    float total = 0;
    for (size_t k = 0; k < 16; k++) total += lanes[k];
    for (; i < count; i++) total += exponential(v[i] - peak);
    return total;
}

// Each row normalised over its `count` values: the mean, then the mean squared deviation from it
// (two passes: no cancellation when the mean is large), then `(x - mean) · inverse · gamma + beta`.
#define LAYER_NORM_ROWS_BODY                                                                      \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * count;                                                          \
        float mean = lane_sum(v, count) / (float)count;                                           \
        float variance = lane_squared_deviation(v, count, mean) / (float)count;                   \
        float inverse = 1.0f / __builtin_sqrtf(variance + epsilon);                               \
        for (size_t i = 0; i < count; i++) v[i] = (v[i] - mean) * inverse * gamma[i] + beta[i];   \
    }

#define LAYER_NORM_ROWS_PARAMETERS \
    float *restrict values, size_t rows, size_t count, const float *restrict gamma, const float *restrict beta, float epsilon

PER_INSTRUCTION_SET(layer_norm_rows, LAYER_NORM_ROWS_PARAMETERS, LAYER_NORM_ROWS_BODY)

// Each row's softmax (or log-softmax): its maximum over sixteen lanes, e^(x - max) in place and
// their sum in sixteen running sums added in a fixed order, then a scale by 1 / sum (or x - max -
// log(sum)). The same bits on every instruction set.
#define SOFTMAX_ROWS_BODY                                                                         \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * count;                                                          \
        float lanes[16];                                                                          \
        for (size_t k = 0; k < 16; k++) lanes[k] = -__builtin_inff();                             \
        size_t i = 0;                                                                             \
        for (; i + 16 <= count; i += 16) {                                                        \
            for (size_t k = 0; k < 16; k++) lanes[k] = v[i + k] > lanes[k] ? v[i + k] : lanes[k];  \
        }                                                                                         \
        float peak = -__builtin_inff();                                                           \
        for (size_t k = 0; k < 16; k++) peak = lanes[k] > peak ? lanes[k] : peak;                 \
        for (; i < count; i++) peak = v[i] > peak ? v[i] : peak;                                 \
        if (logarithm) {                                                                          \
            float offset = peak + __builtin_logf(lane_exponential_sum(v, count, peak));           \
            for (size_t k = 0; k < count; k++) v[k] = v[k] - offset;                              \
        } else {                                                                                  \
            for (size_t k = 0; k < count; k++) v[k] = exponential(v[k] - peak);                   \
            float reciprocal = 1.0f / lane_sum(v, count);                                         \
            for (size_t k = 0; k < count; k++) v[k] = v[k] * reciprocal;                          \
        }                                                                                         \
    }

#define SOFTMAX_ROWS_PARAMETERS float *restrict values, size_t rows, size_t count, int logarithm

PER_INSTRUCTION_SET(softmax_rows, SOFTMAX_ROWS_PARAMETERS, SOFTMAX_ROWS_BODY)

// A depthwise convolution's backward pass over channels `first ..< last`, every array channels
// innermost: for each output pixel and tap inside the image, dK[tap][c] += dZ[c]·x[c] and (with an
// input gradient) dX[c] += dZ[c]·w[tap][c]; dB[c] += dZ[c]. One rounding per product and per sum,
// in the Swift loop's order, so the same bits.
#define DEPTHWISE_BACKWARD_BODY                                                                   \
    const scion_depthwise_backward_arguments *g = a;                                              \
    const ptrdiff_t first = g->first, last = g->last, channels = g->channels;                     \
    for (ptrdiff_t n = 0; n < g->batch; n++) {                                                    \
        for (ptrdiff_t oy = 0; oy < g->oh; oy++) {                                                \
            for (ptrdiff_t ox = 0; ox < g->ow; ox++) {                                            \
                const float *restrict d = g->gradient + ((n * g->oh + oy) * g->ow + ox) * channels; \
                if (g->bias_gradient) {                                                           \
                    float *restrict db = g->bias_gradient;                                        \
                    for (ptrdiff_t c = first; c < last; c++) db[c] = db[c] + d[c];                \
                }                                                                                 \
                for (ptrdiff_t ky = 0; ky < g->kh; ky++) {                                        \
                    const ptrdiff_t iy = oy * g->sh + ky * g->dh - g->top;                        \
                    if (iy < 0 || iy >= g->height) continue;                                      \
                    for (ptrdiff_t kx = 0; kx < g->kw; kx++) {                                    \
                        const ptrdiff_t ix = ox * g->sw + kx * g->dw - g->left;                   \
                        if (ix < 0 || ix >= g->width) continue;                                   \
                        const ptrdiff_t tap = ky * g->kw + kx;                                    \
                        const ptrdiff_t pixel = (n * g->height * g->width + iy * g->width + ix) * channels; \
                        float *restrict dk = g->kernel_gradient + tap * channels;                 \
                        const float *restrict xv = g->input + pixel;                              \
                        for (ptrdiff_t c = first; c < last; c++) dk[c] = dk[c] + d[c] * xv[c];    \
                        if (g->input_gradient) {                                                  \
                            float *restrict dx = g->input_gradient + pixel;                       \
                            const float *restrict wv = g->weights + tap * channels;               \
                            for (ptrdiff_t c = first; c < last; c++) dx[c] = dx[c] + d[c] * wv[c]; \
                        }                                                                         \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

PER_INSTRUCTION_SET(depthwise_backward, const scion_depthwise_backward_arguments *a, DEPTHWISE_BACKWARD_BODY)

// A training chain's gradient through its frozen BatchNormalization and ReLU: dL/dz = dy · scale
// where the output y lies strictly between 0 and the cap (`capped`), 0 elsewhere; without a ReLU
// dy · scale everywhere. One product per value, as the Swift loop it replaced.
static inline __attribute__((always_inline)) float chain_gradient(float y, float dy, float scale, int capped, float cap) {
    return (!capped || (y > 0 && y < cap)) ? dy * scale : 0.0f;
}

#define CHAIN_GRADIENT_ROWS_BODY                                                                  \
    for (size_t i = 0; i < count; i++) gradient[i] = chain_gradient(y[i], dy[i], scale, capped, cap);

#define CHAIN_GRADIENT_ROWS_PARAMETERS \
    const float *restrict y, const float *restrict dy, float *restrict gradient, size_t count, float scale, int capped, float cap

PER_INSTRUCTION_SET(chain_gradient_rows, CHAIN_GRADIENT_ROWS_PARAMETERS, CHAIN_GRADIENT_ROWS_BODY)

#define ACTIVATE_ROWS_PARAMETERS \
    float *restrict values, size_t rows, size_t count, size_t stride, const float *restrict bias, scion_activation activation

PER_INSTRUCTION_SET(activate_rows, ACTIVATE_ROWS_PARAMETERS, ACTIVATE_ROWS_BODY)


// The depthwise sums below are bound by latency: each tap's product is added to the sum of the
// tap before (4 cycles), so the loops keep several independent sums: one pixel sums 4 vectors of
// channels at once, four pixels 2 vectors (8 sums). With the arguments read from a local copy
// (DEPTHWISE_ROW_BODY), EfficientNet's and MobileNetV2's depthwise rows run 1.10-1.35x faster on one
// core than with one vector at a time (docs/benchmarks.md, session 20). Each lane's sum still runs
// over the taps in the same order: the same bits.
#define LANES(V) ((ptrdiff_t)(sizeof(V) / sizeof(float)))

// One output pixel, channels `c ..< c + U·lanes`.
#define DEPTHWISE_BLOCK(V, U)                                                                     \
    {                                                                                             \
        V sum[U];                                                                                 \
        for (int u = 0; u < U; u++) sum[u] = (V){0};                                              \
        for (ptrdiff_t kx = kx_low; kx < kx_high; kx++) {                                         \
            const float *tap = a->image + base + a->ky_low * a->row_stride + kx * a->tap_stride + c; \
            const float *weight = a->kernel + (a->ky_low * a->kernel_width + kx) * a->channels + c; \
            for (ptrdiff_t ky = a->ky_low; ky < a->ky_high; ky++) {                               \
                for (int u = 0; u < U; u++) sum[u] += *(const V *)(weight + u * LANES(V)) * *(const V *)(tap + u * LANES(V)); \
                tap += a->row_stride;                                                             \
                weight += a->kernel_width * a->channels;                                          \
            }                                                                                     \
        }                                                                                         \
        for (int u = 0; u < U; u++) *(V *)(target + c + u * LANES(V)) = sum[u];                   \
    }

// Four neighbouring output pixels with the same valid taps (away from the edges), channels
// `c ..< c + lanes` (`DEPTHWISE_BLOCK4`) or `c ..< c + 2·lanes` (`DEPTHWISE_BLOCK4X2`): each weight
// vector loaded once for the four, whose windows are `stride` columns apart.
#define DEPTHWISE_BLOCK4_LOOP(SETUP, SUMS)                                                        \
        const ptrdiff_t step = a->stride * a->channels;                                           \
        for (ptrdiff_t kx = kx_low; kx < kx_high; kx++) {                                         \
            const float *tap = a->image + base + a->ky_low * a->row_stride + kx * a->tap_stride + c; \
            const float *weight = a->kernel + (a->ky_low * a->kernel_width + kx) * a->channels + c; \
            for (ptrdiff_t ky = a->ky_low; ky < a->ky_high; ky++) {                               \
                SETUP                                                                             \
                SUMS                                                                              \
                tap += a->row_stride;                                                             \
                weight += a->kernel_width * a->channels;                                          \
            }                                                                                     \
        }

#define DEPTHWISE_BLOCK4(V)                                                                       \
    {                                                                                             \
        V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                                 \
        DEPTHWISE_BLOCK4_LOOP(const V w = *(const V *)weight;,                                    \
                              s0 += w * *(const V *)tap; s1 += w * *(const V *)(tap + step);      \
                              s2 += w * *(const V *)(tap + 2 * step); s3 += w * *(const V *)(tap + 3 * step);) \
        *(V *)(target + c) = s0;                                                                  \
        *(V *)(target + a->channels + c) = s1;                                                    \
        *(V *)(target + 2 * a->channels + c) = s2;                                                \
        *(V *)(target + 3 * a->channels + c) = s3;                                                \
    }

#define DEPTHWISE_BLOCK4X2(V)                                                                     \
    {                                                                                             \
        V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0};         \
        const ptrdiff_t next = LANES(V);                                                          \
        DEPTHWISE_BLOCK4_LOOP(const V w = *(const V *)weight; const V x = *(const V *)(weight + next);, \
                              s0 += w * *(const V *)tap; s1 += w * *(const V *)(tap + step);      \
                              s2 += w * *(const V *)(tap + 2 * step); s3 += w * *(const V *)(tap + 3 * step); \
                              t0 += x * *(const V *)(tap + next); t1 += x * *(const V *)(tap + next + step); \
                              t2 += x * *(const V *)(tap + next + 2 * step); t3 += x * *(const V *)(tap + next + 3 * step);) \
        *(V *)(target + c) = s0;                                                                  \
        *(V *)(target + a->channels + c) = s1;                                                    \
        *(V *)(target + 2 * a->channels + c) = s2;                                                \
        *(V *)(target + 3 * a->channels + c) = s3;                                                \
        *(V *)(target + c + next) = t0;                                                           \
        *(V *)(target + a->channels + c + next) = t1;                                             \
        *(V *)(target + 2 * a->channels + c + next) = t2;                                         \
        *(V *)(target + 3 * a->channels + c + next) = t3;                                         \
    }

// One output pixel, every channel of the block (16, then 4, then one at a time).
#define DEPTHWISE_PIXEL                                                                           \
    {                                                                                             \
        float *target = a->output + ox * a->channels;                                             \
        ptrdiff_t c = a->first;                                                                   \
        for (; c + 64 <= a->last; c += 64) DEPTHWISE_BLOCK(v16, 4)                                \
        for (; c + 16 <= a->last; c += 16) DEPTHWISE_BLOCK(v16, 1)                                \
        for (; c + 4 <= a->last; c += 4) DEPTHWISE_BLOCK(v4, 1)                                   \
        for (; c < a->last; c++) {                                                                \
            float sum = 0;                                                                        \
            for (ptrdiff_t kx = kx_low; kx < kx_high; kx++)                                       \
                for (ptrdiff_t ky = a->ky_low; ky < a->ky_high; ky++)                             \
                    sum += a->kernel[(ky * a->kernel_width + kx) * a->channels + c]               \
                         * a->image[base + ky * a->row_stride + kx * a->tap_stride + c];          \
            target[c] = sum;                                                                      \
        }                                                                                         \
    }

// Pixels four at a time where the four share their valid taps and the block's channels are a
// multiple of 4 (the interior of every MobileNet/EfficientNet row), else one at a time.
#define DEPTHWISE_ROW_BODY                                                                        \
    /* The arguments copied into a local that the stores cannot reach: read through the */        \
    /* caller's pointer, fields may be loaded again after each vector store. */                  \
    const scion_depthwise_row_arguments copy = *arguments, *const a = &copy;                      \
    const int quads = (a->last - a->first) % 4 == 0;                                              \
    for (ptrdiff_t ox = 0; ox < a->output_width;) {                                               \
        const ptrdiff_t kx_low = a->kx_low[ox], kx_high = a->kx_high[ox];                         \
        const ptrdiff_t base = (a->row_start * a->width + ox * a->stride - a->left) * a->channels; \
        if (quads && ox + 4 <= a->output_width                                                    \
            && a->kx_low[ox + 1] == kx_low && a->kx_high[ox + 1] == kx_high                       \
            && a->kx_low[ox + 2] == kx_low && a->kx_high[ox + 2] == kx_high                       \
            && a->kx_low[ox + 3] == kx_low && a->kx_high[ox + 3] == kx_high) {                    \
            float *target = a->output + ox * a->channels;                                         \
            ptrdiff_t c = a->first;                                                               \
            for (; c + 32 <= a->last; c += 32) DEPTHWISE_BLOCK4X2(v16)                           \
            for (; c + 16 <= a->last; c += 16) DEPTHWISE_BLOCK4(v16)                           \
            for (; c + 4 <= a->last; c += 4) DEPTHWISE_BLOCK4(v4)                              \
            ox += 4;                                                                              \
        } else {                                                                                  \
            DEPTHWISE_PIXEL                                                                       \
            ox += 1;                                                                              \
        }                                                                                         \
    }

PER_INSTRUCTION_SET(depthwise_row, const scion_depthwise_row_arguments *arguments, DEPTHWISE_ROW_BODY)

static int level;

int scion_chosen_level(void) {
    int current = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (current) return current;
    __builtin_cpu_init();
    current = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
              && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma") ? 3
              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 2 : 1;
    __atomic_store_n(&level, current, __ATOMIC_RELAXED);
    return current;
}

void scion_activate_rows(float *values, size_t rows, size_t count, size_t stride, const float *bias,
                         scion_activation activation) {
    CALL_CHOSEN(activate_rows, values, rows, count, stride, bias, activation)
}

void scion_clamp_rows(float *values, size_t rows, size_t count, size_t stride, const float *bias, int relu, float cap) {
    CALL_CHOSEN(clamp_rows, values, rows, count, stride, bias, relu, cap)
}

void scion_affine_rows(float *values, size_t rows, size_t count, size_t stride, const float *scale, const float *shift,
                       int relu, float cap) {
    CALL_CHOSEN(affine_rows, values, rows, count, stride, scale, shift, relu, cap)
}

void scion_affine_rows_into(const float *source, size_t stride, float *target, size_t rows, size_t count, const float *scale,
                            const float *shift, int relu, float cap) {
    CALL_CHOSEN(affine_rows_into, source, stride, target, rows, count, scale, shift, relu, cap)
}

void scion_scale_rows(float *values, size_t rows, size_t count, size_t stride, const float *scale) {
    CALL_CHOSEN(scale_rows, values, rows, count, stride, scale)
}

void scion_scale_rows_into(const float *source, size_t stride, float *target, size_t rows, size_t count, const float *scale) {
    CALL_CHOSEN(scale_rows_into, source, stride, target, rows, count, scale)
}

// Tiles of 16 x 16: a tile's 16 source rows and 16 target rows stay in L1 while it is moved.
// A whole tile is 16 vectors transposed in registers: four rounds of swapping the off-diagonal
// halves, quarters, eighths and sixteenths of each pair of rows (64 two-vector shuffles for 256
// values, where the value-by-value loop took a load and a store each: 3.7x a copy's time on
// MobileNetV2's 960x49 training planes). Tiles at the edges go value by value.
// One pair of rows (named vectors: as an array indexed in a loop, clang kept the rows on the stack).
#define TRANSPOSE_PAIR(A, B, LO, HI)                                                              \
    { const v16 a_ = A, b_ = B; A = LO(a_, b_); B = HI(a_, b_); }
#define TRANSPOSE_ROUND(H, LO, HI) TRANSPOSE_ROUND_##H(LO, HI)
#define TRANSPOSE_ROUND_8(LO, HI)                                                                 \
    TRANSPOSE_PAIR(t0, t8, LO, HI) TRANSPOSE_PAIR(t1, t9, LO, HI) TRANSPOSE_PAIR(t2, t10, LO, HI) \
    TRANSPOSE_PAIR(t3, t11, LO, HI) TRANSPOSE_PAIR(t4, t12, LO, HI) TRANSPOSE_PAIR(t5, t13, LO, HI) \
    TRANSPOSE_PAIR(t6, t14, LO, HI) TRANSPOSE_PAIR(t7, t15, LO, HI)
#define TRANSPOSE_ROUND_4(LO, HI)                                                                 \
    TRANSPOSE_PAIR(t0, t4, LO, HI) TRANSPOSE_PAIR(t1, t5, LO, HI) TRANSPOSE_PAIR(t2, t6, LO, HI)   \
    TRANSPOSE_PAIR(t3, t7, LO, HI) TRANSPOSE_PAIR(t8, t12, LO, HI) TRANSPOSE_PAIR(t9, t13, LO, HI) \
    TRANSPOSE_PAIR(t10, t14, LO, HI) TRANSPOSE_PAIR(t11, t15, LO, HI)
#define TRANSPOSE_ROUND_2(LO, HI)                                                                 \
    TRANSPOSE_PAIR(t0, t2, LO, HI) TRANSPOSE_PAIR(t1, t3, LO, HI) TRANSPOSE_PAIR(t4, t6, LO, HI)   \
    TRANSPOSE_PAIR(t5, t7, LO, HI) TRANSPOSE_PAIR(t8, t10, LO, HI) TRANSPOSE_PAIR(t9, t11, LO, HI) \
    TRANSPOSE_PAIR(t12, t14, LO, HI) TRANSPOSE_PAIR(t13, t15, LO, HI)
#define TRANSPOSE_ROUND_1(LO, HI)                                                                 \
    TRANSPOSE_PAIR(t0, t1, LO, HI) TRANSPOSE_PAIR(t2, t3, LO, HI) TRANSPOSE_PAIR(t4, t5, LO, HI)   \
    TRANSPOSE_PAIR(t6, t7, LO, HI) TRANSPOSE_PAIR(t8, t9, LO, HI) TRANSPOSE_PAIR(t10, t11, LO, HI) \
    TRANSPOSE_PAIR(t12, t13, LO, HI) TRANSPOSE_PAIR(t14, t15, LO, HI)
#define TRANSPOSE_ROWS(X)                                                                         \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define TRANSPOSE_LOAD(i) v16 t##i = *(const v16 *)(source + (r0 + i) * source_stride + c0);
#define TRANSPOSE_STORE(i) *(v16 *)(target + (c0 + i) * target_stride + r0) = t##i;
// Lane l of the first row of a pair after round H: its own lane l where bit H of l is clear, else
// the second row's lane l - H; of the second row: the first's lane l + H, else its own lane l.
#define LOW8(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
#define HIGH8(a, b) __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31)
#define LOW4(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27)
#define HIGH4(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31)
#define LOW2(a, b) __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
#define HIGH2(a, b) __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31)
#define LOW1(a, b) __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30)
#define HIGH1(a, b) __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31)

#define TRANSPOSE_BLOCK_BODY                                                                      \
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += 16) {                                                 \
        const ptrdiff_t r1 = r0 + 16 < rows ? r0 + 16 : rows;                                     \
        for (ptrdiff_t c0 = 0; c0 < columns; c0 += 16) {                                          \
            const ptrdiff_t c1 = c0 + 16 < columns ? c0 + 16 : columns;                           \
            if (r1 - r0 == 16 && c1 - c0 == 16) {                                                 \
                TRANSPOSE_ROWS(TRANSPOSE_LOAD)                                                    \
                TRANSPOSE_ROUND(8, LOW8, HIGH8)                                                   \
                TRANSPOSE_ROUND(4, LOW4, HIGH4)                                                   \
                TRANSPOSE_ROUND(2, LOW2, HIGH2)                                                   \
                TRANSPOSE_ROUND(1, LOW1, HIGH1)                                                   \
                TRANSPOSE_ROWS(TRANSPOSE_STORE)                                                   \
                continue;                                                                         \
            }                                                                                     \
            for (ptrdiff_t c = c0; c < c1; c++) {                                                 \
                float *to = target + c * target_stride;                                           \
                for (ptrdiff_t r = r0; r < r1; r++) to[r] = source[r * source_stride + c];        \
            }                                                                                     \
        }                                                                                         \
    }

#define TRANSPOSE_BLOCK_PARAMETERS \
    const float *restrict source, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t source_stride, float *restrict target, ptrdiff_t target_stride

PER_INSTRUCTION_SET(transpose_block, TRANSPOSE_BLOCK_PARAMETERS, TRANSPOSE_BLOCK_BODY)

void scion_transpose_block(const float *source, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t source_stride, float *target,
                           ptrdiff_t target_stride) {
    CALL_CHOSEN(transpose_block, source, rows, columns, source_stride, target, target_stride)
}

void scion_softmax_rows(float *values, size_t rows, size_t count, int logarithm) {
    CALL_CHOSEN(softmax_rows, values, rows, count, logarithm)
}

void scion_depthwise_backward(const scion_depthwise_backward_arguments *arguments) {
    CALL_CHOSEN(depthwise_backward, arguments)
}

void scion_chain_gradient_rows(const float *y, const float *dy, float *gradient, size_t count, float scale, int capped, float cap) {
    CALL_CHOSEN(chain_gradient_rows, y, dy, gradient, count, scale, capped, cap)
}

void scion_layer_norm_rows(float *values, size_t rows, size_t count, const float *gamma, const float *beta, float epsilon) {
    CALL_CHOSEN(layer_norm_rows, values, rows, count, gamma, beta, epsilon)
}

void scion_depthwise_row(const scion_depthwise_row_arguments *arguments) {
    CALL_CHOSEN(depthwise_row, arguments)
}

const char *scion_vector_level(void) {
    switch (scion_chosen_level()) {
    case 3: return "avx512";
    case 2: return "avx2";
    default: return "sse2";
    }
}

void scion_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    for (int i = 0; i < 4; i++) __builtin_ia32_pause();
#endif
}
