#ifndef SCION_PNG_H
#define SCION_PNG_H
#include <stddef.h>
#include <stdint.h>

/// What a PNG's IHDR declares, read before any pixel memory is allocated.
typedef struct {
    uint32_t width;
    uint32_t height;
    int bit_depth;
    int color_type;   /// PNG_COLOR_TYPE_*: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
    int interlaced;
    int has_transparency;   /// a tRNS chunk before IDAT
} scion_png_header;

/// Reads the signature and the chunks up to the first IDAT. Returns 0, or -1 with libpng's message
/// (or ours: "truncated file") in `message`.
int scion_png_read_header(const uint8_t *data, size_t size, scion_png_header *header,
                          char *message, size_t message_size);

/// Decodes to 8-bit samples with `channels` (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) per pixel, with the
/// transformations TensorFlow's DecodePng applies (png_io.cc): alpha added (from tRNS, or opaque) or
/// stripped, 16 bits reduced to their high byte, palettes and low bit depths expanded, RGB to gray by
/// libpng's rgb_to_gray (0.299, 0.587), gray to RGB by copying. `output` must hold exactly
/// width * height * channels bytes of the header that `max_pixels` allows. Returns 0, or -1 with the
/// reason in `message`. Every libpng call runs inside this function, under its setjmp.
int scion_png_decode(const uint8_t *data, size_t size, int channels, uint64_t max_pixels,
                     uint8_t *output, size_t output_size, char *message, size_t message_size);

#endif
