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
    SCION_ACTIVATION_GELU = 2,      ///< 0.5·v·(1 + erf(v/√2)), erf within 1.5e-7 (absolute)
    SCION_ACTIVATION_GELU_TANH = 3, ///< 0.5·v·(1 + tanh(√(2/π)·(v + 0.044715·v³)))
    SCION_ACTIVATION_ERF = 4,       ///< erf(v): a Taylor series below 0.5, Abramowitz and Stegun 7.1.26 beyond
} scion_activation;

/// In place over `rows` rows of `count` values `stride` floats apart: `values[r·stride + i] =
/// f(values[r·stride + i] + bias[i])`, bias optional (NULL), with the exponential of
/// `Kernels.exponential` (Cephes's single-precision method, relative error under 3e-7).
void scion_activate_rows(float *values, size_t rows, size_t count, size_t stride, const float *bias,
                         scion_activation activation);

/// In place over `rows` rows of `count` values `stride` floats apart: `values[r·stride + i] +=
/// bias[i]` (bias optional), then with `relu` `min(max(·, 0), cap)` (`cap` infinity: uncapped), in
/// the order of Swift's `min` and `max` (a NaN stays NaN).
void scion_clamp_rows(float *values, size_t rows, size_t count, size_t stride, const float *bias, int relu, float cap);

/// In place over `rows` rows of `count` values `stride` floats apart: `values[r·stride + i] *=
/// scale[i]` (a squeeze-and-excitation's per-channel gate over a sample's pixels).
void scion_scale_rows(float *values, size_t rows, size_t count, size_t stride, const float *scale);

/// `scion_scale_rows` of `rows` rows of `count` values `stride` floats apart in `source`, written
/// into `target` as rows of `count` values (a 1x1 convolution's input gated block by block).
void scion_scale_rows_into(const float *source, size_t stride, float *target, size_t rows, size_t count, const float *scale);

/// In place over `rows` rows of `count` values `stride` floats apart: `values[r·stride + i] =
/// values[r·stride + i] · scale[i] + shift[i]` (a BatchNormalization channels-last), then with
/// `relu` the ReLU of `scion_clamp_rows`.
void scion_affine_rows(float *values, size_t rows, size_t count, size_t stride, const float *scale, const float *shift,
                       int relu, float cap);

/// `scion_affine_rows` of `rows` rows of `count` values `stride` floats apart in `source`, written
/// into `target` as rows of `count` values (a 1x1 convolution's input normalized block by block).
void scion_affine_rows_into(const float *source, size_t stride, float *target, size_t rows, size_t count, const float *scale,
                            const float *shift, int relu, float cap);

/// `target[c·target_stride + r] = source[r·source_stride + c]` for `r < rows`, `c < columns`: one
/// matrix transposed, in tiles that stay in L1.
void scion_transpose_block(const float *source, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t source_stride, float *target,
                           ptrdiff_t target_stride);

/// A training chain's dL/dz from its output `y` and dL/dy over `count` values: `dy · scale` where
/// `0 < y < cap` (with `capped`), 0 elsewhere; `dy · scale` everywhere without a ReLU.
void scion_chain_gradient_rows(const float *y, const float *dy, float *gradient, size_t count, float scale, int capped, float cap);

/// A depthwise convolution's backward pass (the trainer's depthwise chains) over channels `first
/// ..< last`; every array is channels innermost (`[N, H·W, C]`, the kernel `[taps, C]`). Adds into
/// `kernel_gradient`, `input_gradient` and `bias_gradient` (each may be NULL but the first).
typedef struct {
    const float *input, *weights, *gradient;
    float *kernel_gradient, *input_gradient, *bias_gradient;
    ptrdiff_t batch, height, width, channels, kh, kw, sh, sw, dh, dw, top, left, oh, ow;
    ptrdiff_t first, last;
} scion_depthwise_backward_arguments;

void scion_depthwise_backward(const scion_depthwise_backward_arguments *arguments);

/// In place over `rows` contiguous rows of `count` values: each row's softmax, or with `logarithm`
/// its log-softmax (the maximum subtracted first). The same bits on every instruction set.
void scion_softmax_rows(float *values, size_t rows, size_t count, int logarithm);

/// In place over `rows` contiguous rows of `count` values: each row normalised by its own mean and
/// variance, `(x - mean) / sqrt(variance + epsilon) · gamma[i] + beta[i]` (a LayerNormalization over
/// the trailing axes). The same bits on every instruction set.
void scion_layer_norm_rows(float *values, size_t rows, size_t count, const float *gamma, const float *beta, float epsilon);

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

/// `scion_gemm_narrow` of a convolution's windows read where they lie, without unfolding them: row `m`
/// is `segments` runs of `run` values, run `s` at `a + m·lda + s·segment_stride` (a channels-last
/// image: the window's rows `ky`, each `kw·C` adjacent values, `lda` the step between the output
/// pixels of one output row), `depth` `segments·run`. The runs in order are exactly the row
/// `scion_unfold_rows` writes, so the same bits as unfolding then `scion_gemm_narrow`.
int scion_gemm_narrow_windows(const float *a, ptrdiff_t lda, ptrdiff_t segments, ptrdiff_t run, ptrdiff_t segment_stride,
                              const float *b, float *c, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t columns);

/// `b` (`[columns][depth]`, a convolution's filters row by row) packed for `scion_gemm_narrow` into
/// `packed` (`depth · scion_narrow_padded(columns)` floats).
void scion_pack_narrow(const float *b, ptrdiff_t columns, ptrdiff_t depth, float *packed);

/// A convolution's filters packed once for `scion_gemm_panels`: panels of 64 filters (the last
/// narrower), each `[depth][width rounded up to 16]` with zeros past the last filter, panel `p` at
/// `packed + depth·64·p`; `scion_panels_count` floats in all. Row `k = t·channels + c` of the
/// filter matrix (tap `t`, channel `c`: the order channels-last windows are unfolded in) and
/// filter `f` is `kernel[t·tap_stride + c·channel_stride + f·filter_stride]` times `scales[f]`
/// (when `scales` is not NULL): Keras's HWIO is strides `(C·F, F, 1)`, ONNX's OIHW `(1, taps, C·taps)`.
void scion_pack_panels(const float *kernel, ptrdiff_t taps, ptrdiff_t channels, ptrdiff_t filters, ptrdiff_t tap_stride,
                       ptrdiff_t channel_stride, ptrdiff_t filter_stride, const float *scales, float *packed);

size_t scion_panels_count(ptrdiff_t columns, ptrdiff_t depth);

/// `c[m·ldc + n] = Σ_k a[m·lda + k] · filter[k][n]` for the columns of panels `first_panel ..<
/// first_panel + panel_count`, by `scion_gemm_narrow` per panel against `packed`
/// (`scion_pack_panels`). Returns 0, or -1 without AVX2/AVX-512.
int scion_gemm_panels(const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, ptrdiff_t rows,
                      ptrdiff_t columns, ptrdiff_t depth, ptrdiff_t first_panel, ptrdiff_t panel_count);

/// `scion_gemm_panels`, then each product value's bias (`bias[n]`, when not NULL) and, with `relu`,
/// `min(max(·, 0), cap)` applied in registers before the store: what `scion_clamp_rows` would do
/// to the stored values after, the same bits, without reading them back.
int scion_gemm_panels_then(const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, ptrdiff_t rows,
                           ptrdiff_t columns, ptrdiff_t depth, ptrdiff_t first_panel, ptrdiff_t panel_count,
                           const float *bias, int relu, float cap);

/// `columns` rounded up to a multiple of 16.
ptrdiff_t scion_narrow_padded(ptrdiff_t columns);

/// Winograd's F(m×m, 3×3) for a channels-last 3x3 convolution with stride 1, no dilation, one group
/// (winograd.c): `tile` m is 2 or 4. Any padding: `top` and `left` are the padding before the
/// rows and columns, `output_height`/`output_width` the output's size (cells past the input read
/// as zeros).
typedef struct {
    const float *input;      ///< `[N, H, W, C]`
    const float *weights;    ///< made by `scion_winograd_transform_weights`
    float *output;           ///< `[N, OH, OW, F]`
    ptrdiff_t batch, height, width, channels, filters, top, left, output_height, output_width;
    int tile;
} scion_winograd_arguments;

/// How many floats `scion_winograd_transform_weights` writes: `(m+2)² · C · F` rounded up to 16 filters.
size_t scion_winograd_weights_count(int tile, ptrdiff_t channels, ptrdiff_t filters);

/// A 3x3 kernel transformed (`G g Gᵀ` per filter and channel), filter `f` scaled by `scales[f]`
/// first when `scales` is not NULL, and laid out for the products: per position `[panel of 64
/// filters][C][panel width rounded up to 16]`. Tap `t` (`ky·3 + kx`) of channel `c` and filter `f`
/// is `kernel[t·tap_stride + c·channel_stride + f·filter_stride]`: Keras's HWIO `[3, 3, C, F]` is
/// strides `(C·F, F, 1)`, ONNX's OIHW `[F, C, 3, 3]` is `(1, 9, 9·C)`.
void scion_winograd_transform_weights(int tile, const float *kernel, ptrdiff_t tap_stride, ptrdiff_t channel_stride,
                                      ptrdiff_t filter_stride, ptrdiff_t channels, ptrdiff_t filters,
                                      const float *scales, float *weights);

/// Rows of output tiles over the batch (`N · ⌈OH / m⌉`): the unit the work is split in.
ptrdiff_t scion_winograd_tile_rows(const scion_winograd_arguments *arguments);

/// Floats of scratch `scion_winograd_rows` needs for `tile_rows` rows.
size_t scion_winograd_scratch_count(const scion_winograd_arguments *arguments, ptrdiff_t tile_rows);

/// The output rows of tile rows `first_row ..< first_row + tile_rows` (output rows `first_row·m`
/// on, in `[N·OH]` order, clipped at each sample's bottom). Returns 0, or -1 without AVX2/AVX-512
/// (the caller convolves otherwise).
int scion_winograd_rows(const scion_winograd_arguments *arguments, ptrdiff_t first_row, ptrdiff_t tile_rows, float *scratch);

/// A few `pause` instructions (about 0.1 µs): the wait in a spinning loop (`CorePool`), which lets
/// the core's other hyperthread run and saves power.
void scion_spin_pause(void);

/// A convolution's windows unfolded into rows, channels-last: for each of the output pixels
/// `first_pixel ..< first_pixel + pixel_count` (row-major over `[N, OH, OW]`), `kh·kw·channels` values
/// (taps row by row, each tap's channels together) written to `target`, a row after another;
/// taps in the padding read zeros. The input is `[N, height, width, channels]`.
typedef struct {
    const float *source;
    float *target;
    ptrdiff_t height, width, channels;
    ptrdiff_t kh, kw, sh, sw, dh, dw, top, left, oh, ow;
    ptrdiff_t first_pixel, pixel_count;
} scion_unfold_arguments;

void scion_unfold_rows(const scion_unfold_arguments *arguments);

/// The CPUs this process may run on (`sched_getaffinity`: `taskset`, a container's cpuset), or 0
/// where that cannot be known.
int scion_allowed_cpus(void);

/// The instruction set chosen: "avx512", "avx2" or "sse2" (for reports and tests).
const char *scion_vector_level(void);

#endif
