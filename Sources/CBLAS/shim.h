#ifndef SCION_CBLAS_SHIM_H
#define SCION_CBLAS_SHIM_H
#include <cblas.h>
// OpenBLAS's own: stops its worker threads (it starts them again by itself for the next product
// that wants them). Not in cblas.h; BLAS.stopIdleThreads says why Scion calls it.
int blas_thread_shutdown_(void);
#ifdef __linux__
// glibc's mallopt, for the trainer's allocator setting (Trainer+Memory.swift): the runtime's one C shim.
#include <malloc.h>
#endif
#endif
