#define _GNU_SOURCE
#include "vector_kernels.h"
#if defined(__linux__)
#include <sched.h>
#endif

int scion_allowed_cpus(void) {
#if defined(__linux__)
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) return CPU_COUNT(&allowed);
#endif
    return 0;
}
