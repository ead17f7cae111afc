#ifndef SCION_CBLAS_SHIM_H
#define SCION_CBLAS_SHIM_H
#include <cblas.h>
#ifdef __linux__
// glibc's mallopt, for the trainer's allocator setting (Trainer+Memory.swift): the runtime's one C shim.
#include <malloc.h>
#endif
#endif
