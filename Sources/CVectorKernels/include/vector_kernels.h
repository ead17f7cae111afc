#ifndef SCION_VECTOR_KERNELS_H
#define SCION_VECTOR_KERNELS_H
#include <stddef.h>

/// Loops that the executor runs on every value of large activations, compiled three times (AVX-512,
/// AVX2, baseline SSE2) and chosen once from the CPU's features: Swift compiles the whole module
/// for baseline x86-64 (4 lanes), and a function-level target needs C. Each version does the same
/// IEEE operations in the same order (no fused multiply-add: contraction is off), so the results
/// are the same bits whichever runs, and the same as the Swift loops they replace.

/// What `scion_activate_rows` applies after adding the bias.
typedef enum {
    SCION_ACTIVATION_SWISH = 0,     ///< v / (1 + e^-v)
    SCION_ACTIVATION_SIGMOID = 1,   ///< 1 / (1 + e^-v)
} scion_activation;

/// In place over `rows` rows of `count` values `stride` floats apart: `values[r·stride + i] =
/// f(values[r·stride + i] + bias[i])`, bias optional (NULL), with the exponential of
/// `Kernels.exponential` (Cephes's single-precision method, relative error under 3e-7).
void scion_activate_rows(float *values, size_t rows, size_t count, size_t stride, const float *bias,
                         scion_activation activation);

/// One output row of a channels-last depthwise convolution with one filter per channel, channels
/// `first ..< last`: `output[ox·channels + c] = Σ_kx Σ_ky kernel[(ky·kw + kx)·channels + c] ·
/// image[base(ox) + ky·row_stride + kx·tap_stride + c]` over the valid taps `kx_low[ox] ..<
/// kx_high[ox]` (outer) and `ky_low ..< ky_high` (inner), each product added to a sum starting
/// at zero in that order (the channels-first kernel's order, so the same bits), with
/// `base(ox) = (row_start·width + ox·stride − left)·channels`.
typedef struct {
    const float *image;      ///< the sample's `[H, W, C]` values
    const float *kernel;     ///< `[kh, kw, C]`
    float *output;           ///< the output row, `[OW, C]`
    ptrdiff_t channels, width, output_width, stride, left, kernel_width;
    ptrdiff_t row_start, row_stride, tap_stride, ky_low, ky_high;
    const ptrdiff_t *kx_low, *kx_high;   ///< per output column
    ptrdiff_t first, last;
} scion_depthwise_row_arguments;

void scion_depthwise_row(const scion_depthwise_row_arguments *arguments);

/// The instruction set chosen: "avx512", "avx2" or "sse2" (for reports and tests).
const char *scion_vector_level(void);

#endif
