#include "vector_kernels.h"
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

// The ReLU capped at `cap`, written as Swift's max and min are (`y >= x ? y : x`, `y < x ? y : x`):
// a NaN stays NaN, -0 becomes +0, as in the Swift loops these replaced.
static inline __attribute__((always_inline)) float relu_capped(float x, float cap) {
    x = 0.0f >= x ? 0.0f : x;
    return cap < x ? cap : x;
}

static int chosen_level(void);

// Each per-value loop below is one body compiled three times, for AVX-512, AVX2 and baseline SSE2
// (the compiler vectorises its inner loops for each), and one entry point that calls the version
// this CPU runs. The explicit fused multiply-adds (`exponential`) are one instruction on the first
// two and the C library's `fmaf` on SSE2: the same bits everywhere.
#define PER_INSTRUCTION_SET(NAME, PARAMETERS, BODY)                                               \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))) static void NAME##_avx512(PARAMETERS) { BODY } \
    __attribute__((target("avx2,fma"))) static void NAME##_avx2(PARAMETERS) { BODY }             \
    static void NAME##_sse2(PARAMETERS) { BODY }

#define CALL_CHOSEN(NAME, ...)                                                                    \
    switch (chosen_level()) {                                                                     \
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

// `x · scale + shift` per column (two roundings, as the Swift loop), then with `relu` `relu_capped`.
#define AFFINE_ROWS_BODY                                                                          \
    for (size_t row = 0; row < rows; row++) {                                                     \
        float *v = values + row * stride;                                                         \
        if (relu) {                                                                               \
            for (size_t i = 0; i < count; i++) {                                                  \
                v[i] = relu_capped(v[i] * scale[i] + shift[i], cap);                              \
            }                                                                                     \
        } else {                                                                                  \
            for (size_t i = 0; i < count; i++) v[i] = v[i] * scale[i] + shift[i];                \
        }                                                                                         \
    }

#define AFFINE_ROWS_PARAMETERS \
    float *restrict values, size_t rows, size_t count, size_t stride, const float *restrict scale, \
    const float *restrict shift, int relu, float cap

PER_INSTRUCTION_SET(affine_rows, AFFINE_ROWS_PARAMETERS, AFFINE_ROWS_BODY)

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

// Four neighbouring output pixels with the same valid taps (away from the edges): each weight
// vector loaded once for the four, whose windows are `stride` columns apart.
#define DEPTHWISE_BLOCK4(V)                                                                       \
    {                                                                                             \
        V sum0 = {0}, sum1 = {0}, sum2 = {0}, sum3 = {0};                                         \
        const ptrdiff_t step = a->stride * a->channels;                                           \
        for (ptrdiff_t kx = kx_low; kx < kx_high; kx++) {                                         \
            const float *tap = a->image + base + a->ky_low * a->row_stride + kx * a->tap_stride + c; \
            const float *weight = a->kernel + (a->ky_low * a->kernel_width + kx) * a->channels + c; \
            for (ptrdiff_t ky = a->ky_low; ky < a->ky_high; ky++) {                               \
                const V w = *(const V *)weight;                                                   \
                sum0 += w * *(const V *)tap;                                                      \
                sum1 += w * *(const V *)(tap + step);                                             \
                sum2 += w * *(const V *)(tap + 2 * step);                                         \
                sum3 += w * *(const V *)(tap + 3 * step);                                         \
                tap += a->row_stride;                                                             \
                weight += a->kernel_width * a->channels;                                          \
            }                                                                                     \
        }                                                                                         \
        *(V *)(target + c) = sum0;                                                                \
        *(V *)(target + a->channels + c) = sum1;                                                  \
        *(V *)(target + 2 * a->channels + c) = sum2;                                              \
        *(V *)(target + 3 * a->channels + c) = sum3;                                              \
    }

// One output pixel, every channel of the block (16, then 4, then one at a time).
#define DEPTHWISE_PIXEL                                                                           \
    {                                                                                             \
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

// Pixels four at a time where the four share their valid taps and the block's channels are a
// multiple of 4 (the interior of every MobileNet/EfficientNet row), else one at a time.
#define DEPTHWISE_ROW_BODY                                                                        \
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
            for (; c + 16 <= a->last; c += 16) DEPTHWISE_BLOCK4(v16)                              \
            for (; c + 4 <= a->last; c += 4) DEPTHWISE_BLOCK4(v4)                                 \
            ox += 4;                                                                              \
        } else {                                                                                  \
            DEPTHWISE_PIXEL                                                                       \
            ox += 1;                                                                              \
        }                                                                                         \
    }

PER_INSTRUCTION_SET(depthwise_row, const scion_depthwise_row_arguments *a, DEPTHWISE_ROW_BODY)

// ---- Narrow matrix products (scion_gemm_narrow) ----
typedef int32_t v16i __attribute__((vector_size(64), aligned(4)));

// `relu_capped` lane by lane, as bit masks: C has no vector `?:`. A macro, as a function taking a
// 64-byte vector changes the ABI outside AVX-512.
#define CLAMPED(x, cap)                                                                           \
    ({                                                                                            \
        const v16 zero_ = {0}, top_ = zero_ + (cap);                                              \
        const v16 y_ = (v16)((v16i)(x) & ~(v16i)(zero_ >= (x)));                                  \
        const v16i capped_ = (v16i)(top_ < y_);                                                   \
        (v16)(((v16i)top_ & capped_) | ((v16i)y_ & ~capped_));                                    \
    })

// Accumulators: ROWS rows x VECTORS vectors of 16 columns, all in registers (at most 24 of the 32
// zmm registers; on AVX2 each v16 is two ymm and the compiler spills some, still far ahead of the
// packing it replaces). The fused multiply-add is wanted here (contraction on in these functions).

#define NARROW_TILE(ROWS, VECTORS)                                                                \
    {                                                                                             \
        _Pragma("clang fp contract(fast)")                                                        \
        v16 sum[ROWS][VECTORS];                                                                   \
        for (int r = 0; r < ROWS; r++) for (int v = 0; v < VECTORS; v++) sum[r][v] = (v16){0};    \
        const float *row = a + m * lda;                                                           \
        for (ptrdiff_t k = 0; k < depth; k++) {                                                   \
            const float *packed = b + k * padded;                                                 \
            v16 w[VECTORS];                                                                       \
            for (int v = 0; v < VECTORS; v++) w[v] = *(const v16 *)(packed + 16 * v);             \
            for (int r = 0; r < ROWS; r++) {                                                      \
                const float x = row[r * lda + k];                                                 \
                for (int v = 0; v < VECTORS; v++) sum[r][v] += x * w[v];                          \
            }                                                                                     \
        }                                                                                         \
        for (int r = 0; r < ROWS; r++) {                                                          \
            float *target = c + (m + r) * ldc;                                                    \
            for (int v = 0; v < VECTORS; v++) {                                                   \
                v16 value = sum[r][v];                                                            \
                if (16 * (v + 1) <= columns) {                                                    \
                    if (bias) value += *(const v16 *)(bias + 16 * v);                             \
                    if (relu) value = CLAMPED(value, cap);                                        \
                    *(v16 *)(target + 16 * v) = value;                                            \
                    continue;                                                                     \
                }                                                                                 \
                const int count = (int)(columns - 16 * v);                                        \
                float lanes[16];                                                                  \
                memcpy(lanes, &value, sizeof lanes);                                              \
                for (int i = 0; bias && i < count; i++) lanes[i] += bias[16 * v + i];             \
                for (int i = 0; relu && i < count; i++) lanes[i] = relu_capped(lanes[i], cap);    \
                memcpy(target + 16 * v, lanes, sizeof(float) * (size_t)count);                    \
            }                                                                                     \
        }                                                                                         \
    }

#define NARROW_ROWS(VECTORS, BLOCK)                                                               \
    {                                                                                             \
        ptrdiff_t m = 0;                                                                          \
        for (; m + BLOCK <= rows; m += BLOCK) NARROW_TILE(BLOCK, VECTORS)                         \
        for (; m < rows; m++) NARROW_TILE(1, VECTORS)                                             \
    }

#define NARROW_BODY                                                                               \
    const ptrdiff_t padded = scion_narrow_padded(columns);                                        \
    switch (padded / 16) {                                                                        \
    case 1: NARROW_ROWS(1, 8) break;                                                              \
    case 2: NARROW_ROWS(2, 8) break;                                                              \
    case 3: NARROW_ROWS(3, 6) break;                                                              \
    default: NARROW_ROWS(4, 4) break;                                                             \
    }

#define NARROW_PARAMETERS                                                                         \
    const float *restrict a, ptrdiff_t lda, const float *restrict b, float *restrict c, ptrdiff_t ldc, \
    ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t depth, const float *restrict bias, int relu, float cap

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
static void gemm_narrow_avx512(NARROW_PARAMETERS) { NARROW_BODY }

__attribute__((target("avx2,fma")))
static void gemm_narrow_avx2(NARROW_PARAMETERS) { NARROW_BODY }

ptrdiff_t scion_narrow_padded(ptrdiff_t columns) { return (columns + 15) / 16 * 16; }

void scion_pack_narrow(const float *b, ptrdiff_t columns, ptrdiff_t depth, float *packed) {
    const ptrdiff_t padded = scion_narrow_padded(columns);
    for (ptrdiff_t k = 0; k < depth; k++) {
        for (ptrdiff_t n = 0; n < padded; n++) packed[k * padded + n] = n < columns ? b[n * depth + k] : 0.0f;
    }
}

size_t scion_panels_count(ptrdiff_t columns, ptrdiff_t depth) { return (size_t)(depth * scion_narrow_padded(columns)); }

void scion_pack_panels(const float *kernel, ptrdiff_t taps, ptrdiff_t channels, ptrdiff_t filters, ptrdiff_t tap_stride,
                       ptrdiff_t channel_stride, ptrdiff_t filter_stride, const float *scales, float *packed) {
    const ptrdiff_t depth = taps * channels;
    for (ptrdiff_t first = 0; first < filters; first += 64) {
        const ptrdiff_t width = filters - first < 64 ? filters - first : 64, padded = scion_narrow_padded(width);
        float *panel = packed + depth * first;
        for (ptrdiff_t k = 0; k < depth; k++) {
            for (ptrdiff_t n = width; n < padded; n++) panel[k * padded + n] = 0.0f;
        }
        if (filter_stride == 1) {
            // HWIO: each row of the panel is a contiguous run of the kernel.
            for (ptrdiff_t t = 0; t < taps; t++) {
                for (ptrdiff_t c = 0; c < channels; c++) {
                    float *row = panel + (t * channels + c) * padded;
                    const float *from = kernel + t * tap_stride + c * channel_stride + first;
                    for (ptrdiff_t n = 0; n < width; n++) row[n] = from[n] * (scales ? scales[first + n] : 1.0f);
                }
            }
        } else {
            // OIHW: 16 filters at a time, each read along its values (16 sequential streams), each
            // panel row's 16 columns written together.
            for (ptrdiff_t block = 0; block < width; block += 16) {
                const ptrdiff_t count = width - block < 16 ? width - block : 16;
                float scale[16];
                for (ptrdiff_t j = 0; j < count; j++) scale[j] = scales ? scales[first + block + j] : 1.0f;
                const float *filters_here = kernel + (first + block) * filter_stride;
                for (ptrdiff_t t = 0; t < taps; t++) {
                    for (ptrdiff_t c = 0; c < channels; c++) {
                        float *row = panel + (t * channels + c) * padded + block;
                        const float *value = filters_here + t * tap_stride + c * channel_stride;
                        for (ptrdiff_t j = 0; j < count; j++) row[j] = value[j * filter_stride] * scale[j];
                    }
                }
            }
        }
    }
}

static int gemm_narrow_then(const float *a, ptrdiff_t lda, const float *b, float *c, ptrdiff_t ldc, ptrdiff_t rows,
                            ptrdiff_t columns, ptrdiff_t depth, const float *bias, int relu, float cap);

int scion_gemm_panels(const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, ptrdiff_t rows,
                      ptrdiff_t columns, ptrdiff_t depth, ptrdiff_t first_panel, ptrdiff_t panel_count) {
    return scion_gemm_panels_then(a, lda, packed, c, ldc, rows, columns, depth, first_panel, panel_count, NULL, 0, 0.0f);
}

int scion_gemm_panels_then(const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, ptrdiff_t rows,
                           ptrdiff_t columns, ptrdiff_t depth, ptrdiff_t first_panel, ptrdiff_t panel_count,
                           const float *bias, int relu, float cap) {
    // Rows a chunk at a time (about 128 KB of them), every panel against the chunk while it is in
    // the core's cache: a panel at a time over all the rows read the rows from memory once per panel.
    ptrdiff_t chunk = (32768 / (depth > 0 ? depth : 1)) / 8 * 8;
    if (chunk < 8) chunk = 8;
    for (ptrdiff_t r = 0; r < rows; r += chunk) {
        const ptrdiff_t count = rows - r < chunk ? rows - r : chunk;
        for (ptrdiff_t p = first_panel; p < first_panel + panel_count; p++) {
            const ptrdiff_t first = p * 64, width = columns - first < 64 ? columns - first : 64;
            if (width < 1) break;
            if (gemm_narrow_then(a + r * lda, lda, packed + depth * first, c + r * ldc + first, ldc, count, width, depth,
                                 bias ? bias + first : NULL, relu, cap)) return -1;
        }
    }
    return 0;
}

int scion_gemm_narrow(const float *a, ptrdiff_t lda, const float *b, float *c, ptrdiff_t ldc,
                      ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t depth) {
    return gemm_narrow_then(a, lda, b, c, ldc, rows, columns, depth, NULL, 0, 0.0f);
}

static int gemm_narrow_then(const float *a, ptrdiff_t lda, const float *b, float *c, ptrdiff_t ldc, ptrdiff_t rows,
                            ptrdiff_t columns, ptrdiff_t depth, const float *bias, int relu, float cap) {
    if (columns < 1 || columns > 64) return -1;
    switch (chosen_level()) {
    case 3: gemm_narrow_avx512(a, lda, b, c, ldc, rows, columns, depth, bias, relu, cap); return 0;
    case 2: gemm_narrow_avx2(a, lda, b, c, ldc, rows, columns, depth, bias, relu, cap); return 0;
    default: return -1;
    }
}

// 0: not chosen yet; then 1 sse2, 2 avx2, 3 avx512. A race between threads writes the same value.
static int level;

static int chosen_level(void) {
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

void scion_scale_rows(float *values, size_t rows, size_t count, size_t stride, const float *scale) {
    CALL_CHOSEN(scale_rows, values, rows, count, stride, scale)
}

void scion_transpose_block(const float *source, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t source_stride, float *target,
                           ptrdiff_t target_stride) {
    // Tiles of 16 x 16: a tile's 16 source rows and 16 target rows stay in L1 while it is moved.
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += 16) {
        const ptrdiff_t r1 = r0 + 16 < rows ? r0 + 16 : rows;
        for (ptrdiff_t c0 = 0; c0 < columns; c0 += 16) {
            const ptrdiff_t c1 = c0 + 16 < columns ? c0 + 16 : columns;
            for (ptrdiff_t c = c0; c < c1; c++) {
                float *to = target + c * target_stride;
                for (ptrdiff_t r = r0; r < r1; r++) to[r] = source[r * source_stride + c];
            }
        }
    }
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

// `count` floats copied in vectors: a window's run is a few dozen values (an RGB 3x3 window's row:
// 9), for which a call to memmove per run cost more than the copy (no_builtin: the compiler would
// turn these loops back into memcpy and memset calls).
__attribute__((no_builtin("memcpy"), no_builtin("memset"), always_inline)) static inline void copy_run(float *restrict to, const float *restrict from, ptrdiff_t count) {
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) *(v16 *)(to + i) = *(const v16 *)(from + i);
    for (; i + 4 <= count; i += 4) *(v4 *)(to + i) = *(const v4 *)(from + i);
    for (; i < count; i++) to[i] = from[i];
}

__attribute__((no_builtin("memcpy"), no_builtin("memset"), always_inline)) static inline void zero_run(float *restrict to, ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) to[i] = 0.0f;
}

__attribute__((no_builtin("memcpy"), no_builtin("memset"))) void scion_unfold_rows(const scion_unfold_arguments *a) {
    const ptrdiff_t channels = a->channels, run = a->kw * channels;
    // The first pixel's coordinates, then each next one by a step (no division per pixel).
    ptrdiff_t ox = a->first_pixel % a->ow, oy = (a->first_pixel / a->ow) % a->oh, n = a->first_pixel / (a->ow * a->oh);
    float *row = a->target;
    for (ptrdiff_t local = 0; local < a->pixel_count; local++) {
        const float *image = a->source + n * a->height * a->width * channels;
        const ptrdiff_t first = ox * a->sw - a->left;
        for (ptrdiff_t ky = 0; ky < a->kh; ky++) {
            const ptrdiff_t y = oy * a->sh + ky * a->dh - a->top;
            if (y < 0 || y >= a->height) {
                zero_run(row, run);
            } else if (a->dw == 1 && first >= 0 && first + a->kw <= a->width) {
                // The window's row inside the image, taps adjacent: one run of kw·C values.
                copy_run(row, image + (y * a->width + first) * channels, run);
            } else {
                for (ptrdiff_t kx = 0; kx < a->kw; kx++) {
                    const ptrdiff_t x = first + kx * a->dw;
                    if (x < 0 || x >= a->width) zero_run(row + kx * channels, channels);
                    else copy_run(row + kx * channels, image + (y * a->width + x) * channels, channels);
                }
            }
            row += run;
        }
        if (++ox == a->ow) {
            ox = 0;
            if (++oy == a->oh) { oy = 0; n++; }
        }
    }
}

void scion_depthwise_row(const scion_depthwise_row_arguments *arguments) {
    CALL_CHOSEN(depthwise_row, arguments)
}

const char *scion_vector_level(void) {
    switch (chosen_level()) {
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
