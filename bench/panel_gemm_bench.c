/* Filter matrices packed once into panels of 64 filters (scion_pack_panels) and multiplied by the narrow
 * kernel per panel (scion_gemm_panels), against OpenBLAS's cblas_sgemm, which packs the filters again on
 * every call, on the 1x1 and unfolded products of ResNet50, MobileNetV2 and InceptionV3: rows in blocks
 * of 256 (as each core's share runs in Scion), one thread, thread CPU time, fastest of 5. Depth at least
 * 128 is where the panels win (Kernels.runsOnPanels); docs/benchmarks.md (issue #18, session 13).
 *
 *   clang -O2 bench/panel_gemm_bench.c Sources/CVectorKernels/vector_kernels.c -ISources/CVectorKernels/include \
 *         -o .build/panel_gemm_bench -lopenblas -lm
 *   OPENBLAS_CORETYPE=Cooperlake .build/panel_gemm_bench
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "vector_kernels.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(void) {
    openblas_set_num_threads(1);
    /* rows (pixels), depth (kh·kw·C), columns (filters) */
    const int shapes[][3] = {{25088, 64, 256}, {25088, 256, 64}, {6272, 512, 128}, {6272, 128, 512}, {1568, 1024, 256}, {1568, 256, 1024},
                             {392, 2048, 512}, {392, 512, 2048}, {49, 2048, 512}, {49, 512, 2048}, {98, 4608, 512}, {6272, 288, 96},
                             {6272, 192, 320}, {1568, 768, 192}, {6272, 24, 144}, {1568, 32, 192}, {392, 96, 576}, {98, 960, 320}, {98, 320, 1280},
                             {394, 768, 2304}, {394, 768, 3072}, {394, 3072, 768}, {394, 768, 768}, {6272, 96, 384}, {6272, 384, 96}, {392, 768, 3072}, {392, 3072, 768}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n),
              *d = malloc(sizeof(float) * m * n), *packed = malloc(sizeof(float) * scion_panels_count(n, k));
        for (long i = 0; i < (long)m * k; i++) a[i] = ((i * 7919) % 13) * 0.1f - 0.6f;
        for (long i = 0; i < (long)k * n; i++) b[i] = ((i * 31) % 17) * 0.01f - 0.08f;
        scion_pack_panels(b, 1, k, n, 0, n, 1, NULL, packed);   /* b is [K, F]: channel stride F, filter stride 1 */
        const int block = m < 256 ? m : 256;
        double blas = 1e9, panels = 1e9;
        for (int r = 0; r < 5; r++) {
            double t = now();
            for (int first = 0; first < m; first += block) {
                const int rows = m - first < block ? m - first : block;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, k, 1, a + (long)first * k, k, b, n, 0, c + (long)first * n, n);
            }
            if (now() - t < blas) blas = now() - t;
            t = now();
            for (int first = 0; first < m; first += block) {
                const int rows = m - first < block ? m - first : block;
                scion_gemm_panels(a + (long)first * k, k, packed, d + (long)first * n, n, rows, n, k, 0, (n + 63) / 64);
            }
            if (now() - t < panels) panels = now() - t;
        }
        double error = 0, largest = 0;
        for (long i = 0; i < (long)m * n; i++) { error = fmax(error, fabs(c[i] - d[i])); largest = fmax(largest, fabs(c[i])); }
        printf("M=%d K=%d N=%d  openblas %.1f  panels %.1f GFLOP/s (%.2fx)  rel err %.1e\n", m, k, n,
               2.0 * m * n * k / blas / 1e9, 2.0 * m * n * k / panels / 1e9, blas / panels, error / largest);
        free(a); free(b); free(c); free(d); free(packed);
    }
    return 0;
}
