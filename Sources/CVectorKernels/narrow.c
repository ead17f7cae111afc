#include "vector_kernels.h"
#include "kernels_internal.h"
#include <string.h>

// Products by at most 64 columns (a convolution's filters), with the filters packed into panels of
// 64: the kernel behind the channels-last convolutions, the depthwise blocks, Winograd's products
// and the dense layers on packed weights.

// No a*b+c fused into one rounding outside the product tiles (the packing scales filters).
#pragma clang fp contract(off)

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
        for (ptrdiff_t s = 0; s < segments; s++) {                                                \
            const float *row = a + m * lda + s * segment_stride, *filters = b + s * run * padded;  \
            for (ptrdiff_t k = 0; k < run; k++) {                                                 \
                const float *packed = filters + k * padded;                                       \
                v16 w[VECTORS];                                                                   \
                for (int v = 0; v < VECTORS; v++) w[v] = *(const v16 *)(packed + 16 * v);         \
                for (int r = 0; r < ROWS; r++) {                                                  \
                    const float x = row[r * lda + k];                                             \
                    for (int v = 0; v < VECTORS; v++) sum[r][v] += x * w[v];                      \
                }                                                                                 \
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

// Windows: row m's values are `segments` runs of `run`, run s at `a + m·lda + s·segment_stride`.
#define WINDOWS_PARAMETERS                                                                        \
    const float *restrict a, ptrdiff_t lda, ptrdiff_t segments, ptrdiff_t run, ptrdiff_t segment_stride, \
    const float *restrict b, float *restrict c, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t columns

// A plain matrix is one run of `depth`: the segment loop folds away, the loop as it was (a
// segment count known only at run time cost the small products 3-8%).
#define PLAIN_BODY const ptrdiff_t segments = 1, run = depth, segment_stride = 0; NARROW_BODY
#define WINDOWS_BODY const float *bias = NULL; const int relu = 0; const float cap = 0.0f; NARROW_BODY

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
static void gemm_narrow_avx512(NARROW_PARAMETERS) { PLAIN_BODY }

__attribute__((target("avx2,fma")))
static void gemm_narrow_avx2(NARROW_PARAMETERS) { PLAIN_BODY }

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
static void windows_narrow_avx512(WINDOWS_PARAMETERS) { WINDOWS_BODY }

__attribute__((target("avx2,fma")))
static void windows_narrow_avx2(WINDOWS_PARAMETERS) { WINDOWS_BODY }

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
    switch (scion_chosen_level()) {
    case 3: gemm_narrow_avx512(a, lda, b, c, ldc, rows, columns, depth, bias, relu, cap); return 0;
    case 2: gemm_narrow_avx2(a, lda, b, c, ldc, rows, columns, depth, bias, relu, cap); return 0;
    default: return -1;
    }
}

int scion_gemm_narrow_windows(const float *a, ptrdiff_t lda, ptrdiff_t segments, ptrdiff_t run, ptrdiff_t segment_stride,
                              const float *b, float *c, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t columns) {
    if (columns < 1 || columns > 64) return -1;
    switch (scion_chosen_level()) {
    case 3: windows_narrow_avx512(a, lda, segments, run, segment_stride, b, c, ldc, rows, columns); return 0;
    case 2: windows_narrow_avx2(a, lda, segments, run, segment_stride, b, c, ldc, rows, columns); return 0;
    default: return -1;
    }
}

// 0: not chosen yet; then 1 sse2, 2 avx2, 3 avx512. A race between threads writes the same value.
