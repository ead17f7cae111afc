/* scion_transpose_block on the matrices Scion transposes: MobileNetV2's 960x49 training planes both ways
 * (batch 32), a 1024x1024 matrix, 64x64 tiles in cache and a 192x196 attention-sized one; one thread,
 * fastest of 30, every value checked against the index definition. docs/benchmarks.md (issue #18, session 20).
 *
 *   clang -O2 bench/transpose_bench.c Sources/CVectorKernels/vector_kernels.c Sources/CVectorKernels/cpus.c \
 *         -ISources/CVectorKernels/include -ISources/CVectorKernels -o .build/transpose_bench -lm
 *   taskset -c 1 .build/transpose_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "vector_kernels.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(void) {
    const int shapes[][3] = {{960, 49, 32}, {49, 960, 32}, {1024, 1024, 1}, {64, 64, 100}, {192, 196, 8}};  /* rows, columns, matrices */
    int failed = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], columns = shapes[s][1], count = shapes[s][2];
        const size_t each = (size_t)rows * columns, values = each * count;
        float *source = aligned_alloc(64, values * sizeof(float)), *target = aligned_alloc(64, values * sizeof(float));
        for (size_t i = 0; i < values; i++) source[i] = (float)i;
        double best = 1e9;
        for (int r = 0; r < 30; r++) {
            const double t = now();
            for (int m = 0; m < count; m++) scion_transpose_block(source + m * each, rows, columns, columns, target + m * each, rows);
            if (now() - t < best) best = now() - t;
        }
        size_t wrong = 0;
        for (int m = 0; m < count; m++)
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++) wrong += target[m * each + (size_t)c * rows + r] != source[m * each + (size_t)r * columns + c];
        printf("%4dx%-4d x%-3d  %7.3f ms  %.2f ns a value  %zu wrong\n", rows, columns, count, best * 1e3, best / values * 1e9, wrong);
        failed |= wrong != 0;
        free(source);
        free(target);
    }
    return failed;
}
