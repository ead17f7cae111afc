/* The channels-last depthwise rows (scion_depthwise_row) on EfficientNetB0's and MobileNetV2's depthwise
 * shapes at batch 1 (every output row of one image, 'same' padding, stride 1), one thread, fastest of 300,
 * and a hash of the outputs' bits: two builds of the kernel give the same hash when they give the same bits.
 * docs/benchmarks.md (issue #18, session 20).
 *
 *   clang -O2 bench/depthwise_row_bench.c Sources/CVectorKernels/vector_kernels.c Sources/CVectorKernels/cpus.c \
 *         -ISources/CVectorKernels/include -ISources/CVectorKernels -o .build/depthwise_row_bench -lm
 *   taskset -c 1 .build/depthwise_row_bench
 *   # another revision's kernel, for comparison:
 *   git show REV:Sources/CVectorKernels/vector_kernels.c > /tmp/vector_kernels_rev.c
 *   clang -O2 bench/depthwise_row_bench.c /tmp/vector_kernels_rev.c Sources/CVectorKernels/cpus.c \
 *         -ISources/CVectorKernels/include -ISources/CVectorKernels -o .build/depthwise_row_bench_rev -lm
 *   # the input and output moved off 64-byte alignment by 16 bytes (as a Swift array's storage can be; session 21):
 *   clang -O2 -DOFFSET=16 bench/depthwise_row_bench.c ... -o .build/depthwise_row_bench_16 -lm
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vector_kernels.h"

#ifndef OFFSET
#define OFFSET 0 /* bytes past a 64-byte boundary where the input and output start */
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/* Every output row of a `size`x`size`x`channels` image, a `kernel`x`kernel` window, 'same' padding. */
static void image(const float *input, const float *weights, float *output, int size, int channels, int kernel,
                  ptrdiff_t *low, ptrdiff_t *high) {
    const int pad = kernel / 2;
    for (int ox = 0; ox < size; ox++) {
        low[ox] = pad - ox > 0 ? pad - ox : 0;
        high[ox] = size + pad - ox < kernel ? size + pad - ox : kernel;
    }
    for (int oy = 0; oy < size; oy++) {
        const int first = pad - oy > 0 ? pad - oy : 0, last = size + pad - oy < kernel ? size + pad - oy : kernel;
        scion_depthwise_row_arguments a = {input, weights, output + (ptrdiff_t)oy * size * channels, channels, size, size, 1, pad, kernel,
                                           oy - pad, (ptrdiff_t)size * channels, channels, first, last, low, high, 0, channels};
        scion_depthwise_row(&a);
    }
}

int main(void) {
    /* size, channels, kernel: EfficientNetB0's blocks 1a-7a and MobileNetV2's 112, 56, 28, 14 and 7 maps */
    const int shapes[][3] = {{112, 32, 3}, {56, 144, 3}, {28, 144, 5}, {28, 240, 5}, {14, 480, 3}, {14, 672, 5}, {7, 672, 5},
                             {7, 1152, 5}, {7, 1152, 3}, {112, 96, 3}, {56, 96, 3}, {28, 192, 3}, {14, 384, 3}, {14, 576, 3}, {7, 960, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int size = shapes[s][0], channels = shapes[s][1], kernel = shapes[s][2];
        const size_t values = (size_t)size * size * channels;
        char *inputBlock = aligned_alloc(64, values * sizeof(float) + 64), *outputBlock = aligned_alloc(64, values * sizeof(float) + 64);
        float *input = (float *)(inputBlock + OFFSET), *output = (float *)(outputBlock + OFFSET);
        float *weights = aligned_alloc(64, (size_t)kernel * kernel * channels * sizeof(float));
        ptrdiff_t *low = malloc(sizeof(ptrdiff_t) * size), *high = malloc(sizeof(ptrdiff_t) * size);
        for (size_t i = 0; i < values; i++) input[i] = (float)((i * 7919) % 23) * 0.05f - 0.5f;
        for (int i = 0; i < kernel * kernel * channels; i++) weights[i] = (float)((i * 31) % 17) * 0.02f - 0.15f;
        double best = 1e9;
        for (int r = 0; r < 300; r++) {
            const double t = now();
            image(input, weights, output, size, channels, kernel, low, high);
            if (now() - t < best) best = now() - t;
        }
        uint64_t hash = 1469598103934665603ULL;
        for (size_t i = 0; i < values; i++) {
            uint32_t bits;
            memcpy(&bits, output + i, sizeof bits);
            hash = (hash ^ bits) * 1099511628211ULL;
        }
        printf("%3dx%-3d x %4d  %dx%d  %7.1f us  %5.1f MAC/ns  bits %016llx\n", size, size, channels, kernel, kernel, best * 1e6,
               (double)values * kernel * kernel / best * 1e-9, (unsigned long long)hash);
        free(inputBlock); free(outputBlock); free(weights); free(low); free(high);
    }
    return 0;
}
