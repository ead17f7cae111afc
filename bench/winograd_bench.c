/* CVectorKernels' Winograd F(2x2,3x3) and F(4x4,3x3) (winograd.c) against the unfolded GEMM Scion runs
 * otherwise (windows unfolded 128 pixels at a time, then OpenBLAS's sgemm, or the narrow product for at
 * most 64 filters) on the 3x3 stride-1 convolutions of ResNet50, InceptionV3, DenseNet121 and VGG16:
 * one thread, thread CPU time, fastest of 3, and the largest difference relative to the unfolded GEMM's
 * result. docs/benchmarks.md (issue #18, session 13) has the numbers.
 *
 *   clang -O2 bench/winograd_bench.c Sources/CVectorKernels/vector_kernels.c Sources/CVectorKernels/winograd.c \
 *         -ISources/CVectorKernels/include -o .build/winograd_bench -lopenblas -lm
 *   OPENBLAS_CORETYPE=Cooperlake .build/winograd_bench     # the BLAS kernel Scion runs on this machine
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vector_kernels.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/* 'same' padding, [N, H, W, C] in, [N, H, W, F] out, kernel [3, 3, C, F]. */
static void unfolded(const float *x, const float *k, const float *packed, float *y, int n, int h, int w, int c, int f, float *rows) {
    const long pixels = (long)n * h * w, depth = 9L * c;
    for (long first = 0; first < pixels; first += 128) {
        const int count = pixels - first < 128 ? (int)(pixels - first) : 128;
        for (int l = 0; l < count; l++) {
            const long p = first + l; const int ox = p % w, oy = (p / w) % h, s = p / ((long)w * h);
            for (int ky = 0; ky < 3; ky++) for (int kx = 0; kx < 3; kx++) {
                const int yy = oy + ky - 1, xx = ox + kx - 1; float *to = rows + l * depth + (ky * 3 + kx) * c;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) memset(to, 0, sizeof(float) * c);
                else memcpy(to, x + (((long)s * h + yy) * w + xx) * c, sizeof(float) * c);
            }
        }
        if (f <= 64) scion_gemm_narrow(rows, depth, packed, y + first * f, f, count, f, depth);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, f, depth, 1, rows, depth, k, f, 0, y + first * f, f);
    }
}

static double winograd(int tile, const float *x, const float *k, float *y, int n, int h, int w, int c, int f) {
    float *weights = malloc(sizeof(float) * scion_winograd_weights_count(tile, c, f));
    scion_winograd_transform_weights(tile, k, (long)c * f, f, 1, c, f, NULL, weights);
    scion_winograd_arguments a = {x, weights, y, n, h, w, c, f, 1, 1, h, w, tile};
    const ptrdiff_t rows = scion_winograd_tile_rows(&a), per_row = scion_winograd_scratch_count(&a, 1);
    ptrdiff_t block = (1 << 18) / per_row; if (block < 1) block = 1; if (block > rows) block = rows;
    float *scratch = malloc(sizeof(float) * per_row * block);
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        const double t = now();
        for (ptrdiff_t first = 0; first < rows; first += block) scion_winograd_rows(&a, first, rows - first < block ? rows - first : block, scratch);
        if (now() - t < best) best = now() - t;
    }
    free(weights); free(scratch);
    return best;
}

int main(void) {
    openblas_set_num_threads(1);
    /* batch, height, width, channels, filters */
    const int shapes[][5] = {{2, 56, 56, 64, 64}, {2, 28, 28, 128, 128}, {2, 14, 14, 256, 256}, {2, 7, 7, 512, 512}, {32, 7, 7, 512, 512},
                             {2, 147, 147, 32, 64}, {2, 35, 35, 64, 96}, {2, 8, 8, 384, 384}, {2, 56, 56, 128, 32}, {2, 7, 7, 128, 32},
                             {2, 224, 224, 64, 64}, {2, 224, 224, 3, 64}, {2, 224, 224, 8, 16}, {2, 56, 56, 16, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], h = shapes[s][1], w = shapes[s][2], c = shapes[s][3], f = shapes[s][4];
        const long xs = (long)n * h * w * c, ys = (long)n * h * w * f;
        float *x = malloc(sizeof(float) * xs), *k = malloc(sizeof(float) * 9 * c * f), *reference = malloc(sizeof(float) * ys),
              *y = malloc(sizeof(float) * ys), *rows = malloc(sizeof(float) * 128 * 9 * c), *packed = malloc(sizeof(float) * 9 * c * 64);
        for (long i = 0; i < xs; i++) x[i] = ((i * 7919) % 13) * 0.1f - 0.6f;
        for (long i = 0; i < 9L * c * f; i++) k[i] = ((i * 31) % 17) * 0.01f - 0.08f;
        if (f <= 64) for (long d = 0; d < 9L * c; d++) for (int j = 0; j < scion_narrow_padded(f); j++) packed[d * scion_narrow_padded(f) + j] = j < f ? k[d * f + j] : 0;
        double direct = 1e9;
        for (int r = 0; r < 3; r++) { const double t = now(); unfolded(x, k, packed, reference, n, h, w, c, f, rows); if (now() - t < direct) direct = now() - t; }
        printf("N=%d %dx%d C=%d F=%d  unfolded %.2f ms", n, h, w, c, f, direct * 1e3);
        for (int tile = 2; tile <= 4; tile += 2) {
            const double t = winograd(tile, x, k, y, n, h, w, c, f);
            double error = 0, largest = 0;
            for (long i = 0; i < ys; i++) { error = fmax(error, fabs(y[i] - reference[i])); largest = fmax(largest, fabs(reference[i])); }
            printf(" | F(%dx%d) %.2f ms (%.2fx) rel err %.1e", tile, tile, t * 1e3, direct / t, error / largest);
        }
        printf("\n");
        free(x); free(k); free(reference); free(y); free(rows); free(packed);
    }
    return 0;
}
