#ifndef SCION_CTURBOJPEG_SHIM_H
#define SCION_CTURBOJPEG_SHIM_H
// libjpeg-turbo's TurboJPEG API, version 2 (tj*2/tj*3 of libturbojpeg0 2.1: tjDecompressHeader3,
// tjDecompress2). It returns errors as values, so Swift calls it directly (ScionImages/JPEGDecoder).
#include <stddef.h>
#include <turbojpeg.h>
#endif
