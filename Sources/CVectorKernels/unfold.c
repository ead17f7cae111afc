#include "vector_kernels.h"
#include "kernels_internal.h"

// A convolution's windows unfolded into rows, channels-last (scion_unfold_rows): the left matrix of
// the channels-last convolution's product when the kernel is larger than 1x1.

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
