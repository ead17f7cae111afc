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

/// `c[m·ldc + n] = Σ_k a[m·lda + k] · b[k·columns_padded + n]` for `m < rows`, `n < columns`, with
/// `columns` at most 64 and `b` packed by `scion_pack_narrow` (`[k][columns_padded]`, zeros past
/// `columns`). A matrix product with few columns (a convolution with at most 64 filters) where
/// OpenBLAS spends most of its time packing the many rows (`rows` pixels): here each row of `a` is
/// read where it lies, 8 rows at a time against the whole packed `b` held in registers' reach.
/// Sums run over k in order with fused multiply-adds. Returns 0, or -1 when this CPU has no
/// AVX2/AVX-512 (the caller uses its BLAS then) or `columns` is out of range.
int scion_gemm_narrow(const float *a, ptrdiff_t lda, const float *b, float *c, ptrdiff_t ldc,
                      ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t depth);

/// `b` (`[columns][depth]`, a convolution's filters row by row) packed for `scion_gemm_narrow` into
/// `packed` (`depth · scion_narrow_padded(columns)` floats).
void scion_pack_narrow(const float *b, ptrdiff_t columns, ptrdiff_t depth, float *packed);

/// `columns` rounded up to a multiple of 16.
ptrdiff_t scion_narrow_padded(ptrdiff_t columns);

/// The instruction set chosen: "avx512", "avx2" or "sse2" (for reports and tests).
const char *scion_vector_level(void);

#endif
