#ifndef SCION_KERNELS_INTERNAL_H
#define SCION_KERNELS_INTERNAL_H
// What CVectorKernels' C files share and do not export: the vector types, the capped ReLU and the
// instruction set chosen for this CPU.
#include <stdint.h>

// Vectors of 16 and 4 floats that may sit at any float's address; in each target's function the
// compiler lowers them to one zmm, two ymm or four xmm registers.
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v4 __attribute__((vector_size(16), aligned(4)));

// The ReLU capped at `cap`, written as Swift's max and min are (`y >= x ? y : x`, `y < x ? y : x`):
// a NaN stays NaN, -0 becomes +0, as in the Swift loops these replaced.
static inline __attribute__((always_inline)) float relu_capped(float x, float cap) {
    x = 0.0f >= x ? 0.0f : x;
    return cap < x ? cap : x;
}

// 3: AVX-512 (with FMA), 2: AVX2 (with FMA), 1: neither; read from the CPU once (vector_kernels.c).
int scion_chosen_level(void);

#endif
