#include "vector_kernels.h"
#include <string.h>

// Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) on channels-last values: each (m+2)×(m+2) input tile d becomes V = Bᵀ d B, each
// 3×3 filter g becomes U = G g Gᵀ (once, at preparation), and for each of the (m+2)² positions one
// matrix product sums V·U over the channels; the output tile is Aᵀ M A. A 3×3 convolution then
// multiplies 16/(4·9) (m = 2) or 36/(16·9) (m = 4) as much as the direct one. The transforms are
// written out below for the points 0, ±1 (m = 2) and 0, ±1, ±2 (m = 4), vectorised over 16
// channels; the products are CVectorKernels' narrow product, 64 filters at a time.

// The transforms add and scale in a fixed order, so every instruction set gives the same bits.
#pragma clang fp contract(off)

typedef float v16 __attribute__((vector_size(64), aligned(4)));

enum { PANEL = 64, LANES = 16 };

// Through pointers: a v16 passed by value would change the calling convention between targets.
static inline void load_lanes(v16 *v, const float *p, ptrdiff_t width) {
    if (width == LANES) { *v = *(const v16 *)p; return; }
    *v = (v16){0};
    memcpy(v, p, sizeof(float) * (size_t)width);
}

static inline void store_lanes(float *p, const v16 *v, ptrdiff_t width) {
    if (width == LANES) { *(v16 *)p = *v; return; }
    memcpy(p, v, sizeof(float) * (size_t)width);
}

// ---- The 1-D transforms, applied to columns and then to rows ----

// Bᵀ for m = 2 (points 0, 1, -1).
static inline void input_1d_2(const v16 *d, v16 *r, ptrdiff_t step) {
    r[0] = d[0] - d[2 * step];
    r[step] = d[step] + d[2 * step];
    r[2 * step] = d[2 * step] - d[step];
    r[3 * step] = d[step] - d[3 * step];
}

// Bᵀ for m = 4 (points 0, 1, -1, 2, -2).
static inline void input_1d_4(const v16 *d, v16 *r, ptrdiff_t step) {
    const v16 d0 = d[0], d1 = d[step], d2 = d[2 * step], d3 = d[3 * step], d4 = d[4 * step], d5 = d[5 * step];
    r[0] = (d0 * 4.0f - d2 * 5.0f) + d4;
    r[step] = (d3 + d4) - (d1 + d2) * 4.0f;
    r[2 * step] = (d4 - d3) + (d1 - d2) * 4.0f;
    r[3 * step] = (d4 - d2) + (d3 - d1) * 2.0f;
    r[4 * step] = (d4 - d2) + (d1 - d3) * 2.0f;
    r[5 * step] = (d1 * 4.0f - d3 * 5.0f) + d5;
}

// Aᵀ for m = 2.
static inline void output_1d_2(const v16 *s, v16 *y, ptrdiff_t step) {
    y[0] = (s[0] + s[step]) + s[2 * step];
    y[step] = (s[step] - s[2 * step]) - s[3 * step];
}

// Aᵀ for m = 4.
static inline void output_1d_4(const v16 *s, v16 *y, ptrdiff_t step) {
    const v16 s1 = s[step], s2 = s[2 * step], s3 = s[3 * step], s4 = s[4 * step];
    const v16 sum12 = s1 + s2, difference12 = s1 - s2, sum34 = s3 + s4, difference34 = s3 - s4;
    y[0] = (s[0] + sum12) + sum34;
    y[step] = difference12 + difference34 * 2.0f;
    y[2 * step] = sum12 + sum34 * 4.0f;
    y[3 * step] = (difference12 + difference34 * 8.0f) + s[5 * step];
}

// G for m = 2 and m = 4: three taps to alpha values.
static inline void filter_1d_2(const v16 *g, v16 *u, ptrdiff_t step) {
    u[0] = g[0];
    u[step] = ((g[0] + g[step]) + g[2 * step]) * 0.5f;
    u[2 * step] = ((g[0] - g[step]) + g[2 * step]) * 0.5f;
    u[3 * step] = g[2 * step];
}

static inline void filter_1d_4(const v16 *g, v16 *u, ptrdiff_t step) {
    const v16 g0 = g[0], g1 = g[step], g2 = g[2 * step];
    u[0] = g0 * 0.25f;
    u[step] = ((g0 + g1) + g2) * (-1.0f / 6.0f);
    u[2 * step] = ((g0 - g1) + g2) * (-1.0f / 6.0f);
    u[3 * step] = (g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f)) + g2 * (1.0f / 6.0f);
    u[4 * step] = (g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f)) + g2 * (1.0f / 6.0f);
    u[5 * step] = g2;
}

size_t scion_winograd_weights_count(int tile, ptrdiff_t channels, ptrdiff_t filters) {
    const ptrdiff_t alpha = tile + 2;
    return (size_t)(alpha * alpha * channels * scion_narrow_padded(filters));
}

// U = G g Gᵀ for 16 filters `f ..< f + 16` of channel `c`: each kernel row's 3 taps to alpha
// values, then each column of those; written to the filters' panel (`[C][width rounded up to 16]`
// per position, zeros past the last filter: the lanes load_lanes and the gather leave at zero).
#define WEIGHTS_BLOCK(TILE)                                                                            \
    {                                                                                                  \
        const ptrdiff_t width = filters - f < LANES ? filters - f : LANES;                             \
        const ptrdiff_t panel = f / PANEL, in_panel = filters - panel * PANEL;                         \
        const ptrdiff_t panel_width = scion_narrow_padded(in_panel < PANEL ? in_panel : PANEL);        \
        v16 scale = {0}, g[3][3], rows[3][ALPHA], u[ALPHA][ALPHA];                                     \
        if (scales) load_lanes(&scale, scales + f, width);                                             \
        for (int tap = 0; tap < 9; tap++) {                                                            \
            const float *first = kernel + tap * tap_stride + c * channel_stride + f * filter_stride;   \
            v16 *lanes = &g[tap / 3][tap % 3];                                                         \
            if (filter_stride == 1) load_lanes(lanes, first, width);                                   \
            else {                                                                                     \
                *lanes = (v16){0};                                                                     \
                for (ptrdiff_t l = 0; l < width; l++) (*lanes)[l] = first[l * filter_stride];          \
            }                                                                                          \
            if (scales) *lanes = *lanes * scale;                                                       \
        }                                                                                              \
        for (int ky = 0; ky < 3; ky++) filter_1d_##TILE(&g[ky][0], &rows[ky][0], 1);                   \
        for (int j = 0; j < ALPHA; j++) filter_1d_##TILE(&rows[0][j], &u[0][j], ALPHA);                \
        float *target = weights + channels * panel * PANEL + c * panel_width + f % PANEL;              \
        for (int i = 0; i < ALPHA; i++)                                                                \
            for (int j = 0; j < ALPHA; j++) *(v16 *)(target + (i * ALPHA + j) * matrix) = u[i][j];     \
    }

// Reading along the kernel's contiguous axis: the filters (HWIO) innermost, or the channels (OIHW).
#define WEIGHTS_BODY(TILE)                                                                             \
    enum { ALPHA = TILE + 2 };                                                                         \
    const ptrdiff_t matrix = channels * scion_narrow_padded(filters);                                  \
    if (filter_stride == 1) {                                                                          \
        for (ptrdiff_t c = 0; c < channels; c++)                                                       \
            for (ptrdiff_t f = 0; f < filters; f += LANES) WEIGHTS_BLOCK(TILE)                         \
    } else {                                                                                           \
        for (ptrdiff_t f = 0; f < filters; f += LANES)                                                 \
            for (ptrdiff_t c = 0; c < channels; c++) WEIGHTS_BLOCK(TILE)                               \
    }

#define WEIGHTS_PARAMETERS                                                                             \
    const float *restrict kernel, ptrdiff_t tap_stride, ptrdiff_t channel_stride, ptrdiff_t filter_stride, \
    ptrdiff_t channels, ptrdiff_t filters, const float *restrict scales, float *restrict weights

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void weights_2_avx512(WEIGHTS_PARAMETERS) { WEIGHTS_BODY(2) }
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void weights_4_avx512(WEIGHTS_PARAMETERS) { WEIGHTS_BODY(4) }
static void weights_2_baseline(WEIGHTS_PARAMETERS) { WEIGHTS_BODY(2) }
static void weights_4_baseline(WEIGHTS_PARAMETERS) { WEIGHTS_BODY(4) }

void scion_winograd_transform_weights(int tile, const float *kernel, ptrdiff_t tap_stride, ptrdiff_t channel_stride,
                                      ptrdiff_t filter_stride, ptrdiff_t channels, ptrdiff_t filters,
                                      const float *scales, float *weights) {
    const int wide = scion_vector_level()[3] == '5';
    if (tile == 2) (wide ? weights_2_avx512 : weights_2_baseline)(kernel, tap_stride, channel_stride, filter_stride, channels, filters, scales, weights);
    else (wide ? weights_4_avx512 : weights_4_baseline)(kernel, tap_stride, channel_stride, filter_stride, channels, filters, scales, weights);
}

static ptrdiff_t tiles_across(const scion_winograd_arguments *a) { return (a->output_width + a->tile - 1) / a->tile; }
static ptrdiff_t tiles_down(const scion_winograd_arguments *a) { return (a->output_height + a->tile - 1) / a->tile; }

ptrdiff_t scion_winograd_tile_rows(const scion_winograd_arguments *a) { return a->batch * tiles_down(a); }

size_t scion_winograd_scratch_count(const scion_winograd_arguments *a, ptrdiff_t tile_rows) {
    const ptrdiff_t alpha = a->tile + 2, tiles = tile_rows * tiles_across(a);
    return (size_t)(alpha * alpha * tiles * (a->channels + a->filters));
}

// V[position][tile][channel] for the tiles of `tile_rows` rows from `first_row` (over [N, tiles down]).
#define INPUT_TRANSFORM_BODY(TILE)                                                                     \
    enum { ALPHA = TILE + 2 };                                                                         \
    const ptrdiff_t across = tiles_across(a), down = tiles_down(a), tiles = tile_rows * across;        \
    for (ptrdiff_t r = 0; r < tile_rows; r++) {                                                        \
        const ptrdiff_t n = (first_row + r) / down, ty = (first_row + r) % down;                       \
        const float *image = a->input + n * a->height * a->width * a->channels;                        \
        for (ptrdiff_t tx = 0; tx < across; tx++) {                                                    \
            const ptrdiff_t t = r * across + tx, y0 = ty * TILE - a->top, x0 = tx * TILE - a->left;    \
            for (ptrdiff_t c = 0; c < a->channels; c += LANES) {                                       \
                const ptrdiff_t width = a->channels - c < LANES ? a->channels - c : LANES;             \
                v16 d[ALPHA][ALPHA], e[ALPHA][ALPHA];                                                  \
                for (int i = 0; i < ALPHA; i++) {                                                      \
                    const ptrdiff_t y = y0 + i;                                                        \
                    for (int j = 0; j < ALPHA; j++) {                                                  \
                        const ptrdiff_t x = x0 + j;                                                    \
                        if (y < 0 || y >= a->height || x < 0 || x >= a->width) d[i][j] = (v16){0};    \
                        else load_lanes(&d[i][j], image + (y * a->width + x) * a->channels + c, width); \
                    }                                                                                  \
                }                                                                                      \
                for (int j = 0; j < ALPHA; j++) input_1d_##TILE(&d[0][j], &e[0][j], ALPHA);            \
                for (int i = 0; i < ALPHA; i++) input_1d_##TILE(&e[i][0], &d[i][0], 1);                \
                for (int i = 0; i < ALPHA; i++)                                                        \
                    for (int j = 0; j < ALPHA; j++)                                                    \
                        store_lanes(v + ((i * ALPHA + j) * tiles + t) * a->channels + c, &d[i][j], width); \
            }                                                                                          \
        }                                                                                              \
    }

// The output tiles from M[position][tile][filter], clipped at the output's bottom and right edges.
#define OUTPUT_TRANSFORM_BODY(TILE)                                                                    \
    enum { ALPHA = TILE + 2 };                                                                         \
    const ptrdiff_t across = tiles_across(a), down = tiles_down(a), tiles = tile_rows * across;        \
    for (ptrdiff_t r = 0; r < tile_rows; r++) {                                                        \
        const ptrdiff_t n = (first_row + r) / down, ty = (first_row + r) % down;                       \
        float *image = a->output + n * a->output_height * a->output_width * a->filters;               \
        for (ptrdiff_t tx = 0; tx < across; tx++) {                                                    \
            const ptrdiff_t t = r * across + tx;                                                       \
            for (ptrdiff_t f = 0; f < a->filters; f += LANES) {                                        \
                const ptrdiff_t width = a->filters - f < LANES ? a->filters - f : LANES;               \
                v16 s[ALPHA][ALPHA], e[TILE][ALPHA], y[TILE][TILE];                                    \
                for (int i = 0; i < ALPHA; i++)                                                        \
                    for (int j = 0; j < ALPHA; j++)                                                    \
                        load_lanes(&s[i][j], m + ((i * ALPHA + j) * tiles + t) * a->filters + f, width); \
                for (int j = 0; j < ALPHA; j++) output_1d_##TILE(&s[0][j], &e[0][j], ALPHA);           \
                for (int i = 0; i < TILE; i++) output_1d_##TILE(&e[i][0], &y[i][0], 1);                \
                for (int i = 0; i < TILE && ty * TILE + i < a->output_height; i++) {                   \
                    const ptrdiff_t oy = ty * TILE + i;                                                \
                    for (int j = 0; j < TILE && tx * TILE + j < a->output_width; j++)                  \
                        store_lanes(image + (oy * a->output_width + tx * TILE + j) * a->filters + f, &y[i][j], width); \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }

#define TRANSFORM_PARAMETERS \
    const scion_winograd_arguments *a, ptrdiff_t first_row, ptrdiff_t tile_rows, float *restrict v
#define OUTPUT_PARAMETERS \
    const scion_winograd_arguments *a, ptrdiff_t first_row, ptrdiff_t tile_rows, const float *restrict m

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void input_2_avx512(TRANSFORM_PARAMETERS) { INPUT_TRANSFORM_BODY(2) }
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void input_4_avx512(TRANSFORM_PARAMETERS) { INPUT_TRANSFORM_BODY(4) }
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void output_2_avx512(OUTPUT_PARAMETERS) { OUTPUT_TRANSFORM_BODY(2) }
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
static void output_4_avx512(OUTPUT_PARAMETERS) { OUTPUT_TRANSFORM_BODY(4) }
__attribute__((target("avx2")))
static void input_2_avx2(TRANSFORM_PARAMETERS) { INPUT_TRANSFORM_BODY(2) }
__attribute__((target("avx2")))
static void input_4_avx2(TRANSFORM_PARAMETERS) { INPUT_TRANSFORM_BODY(4) }
__attribute__((target("avx2")))
static void output_2_avx2(OUTPUT_PARAMETERS) { OUTPUT_TRANSFORM_BODY(2) }
__attribute__((target("avx2")))
static void output_4_avx2(OUTPUT_PARAMETERS) { OUTPUT_TRANSFORM_BODY(4) }

int scion_winograd_rows(const scion_winograd_arguments *a, ptrdiff_t first_row, ptrdiff_t tile_rows, float *scratch) {
    const char *level = scion_vector_level();
    const int wide = level[3] == '5';   // "avx512"
    if (level[0] == 's' || (a->tile != 2 && a->tile != 4)) return -1;
    const ptrdiff_t alpha = a->tile + 2, tiles = tile_rows * tiles_across(a);
    float *v = scratch, *m = scratch + alpha * alpha * tiles * a->channels;
    if (a->tile == 2) (wide ? input_2_avx512 : input_2_avx2)(a, first_row, tile_rows, v);
    else (wide ? input_4_avx512 : input_4_avx2)(a, first_row, tile_rows, v);
    const ptrdiff_t matrix = a->channels * scion_narrow_padded(a->filters);
    for (ptrdiff_t p = 0; p < alpha * alpha; p++) {
        for (ptrdiff_t first = 0; first < a->filters; first += PANEL) {
            const ptrdiff_t width = a->filters - first < PANEL ? a->filters - first : PANEL;
            if (scion_gemm_narrow(v + p * tiles * a->channels, a->channels, a->weights + p * matrix + a->channels * first,
                                  m + p * tiles * a->filters + first, a->filters, tiles, width, a->channels)) return -1;
        }
    }
    if (a->tile == 2) (wide ? output_2_avx512 : output_2_avx2)(a, first_row, tile_rows, m);
    else (wide ? output_4_avx512 : output_4_avx2)(a, first_row, tile_rows, m);
    return 0;
}
