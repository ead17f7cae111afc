#ifndef SCION_CPNG_SHIM_H
#define SCION_CPNG_SHIM_H
// libpng reports errors by longjmp; Swift never calls it directly: CImageCodecs wraps every call.
#include <png.h>
#endif
