#ifndef SCION_CPROTOBUFC_SHIM_H
#define SCION_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
