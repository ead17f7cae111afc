// libpng behind setjmp. libpng reports a fatal error by calling the error function, which must not
// return: it longjmps back to the setjmp in the function that called libpng. Swift frames must never
// lie between the two (a longjmp across them skips their cleanup and is undefined), so every libpng
// call lives here, and Swift only sees a status and a message.
#include "scion_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char *message;
    size_t message_size;
} reader;

static void copy_message(reader *source, const char *text) {
    if (source->message != NULL && source->message_size > 0) {
        snprintf(source->message, source->message_size, "%s", text);
    }
}

static void on_error(png_structp png, png_const_charp text) {
    copy_message((reader *)png_get_error_ptr(png), text);
    png_longjmp(png, 1);
}

// Warnings (a bad CRC in an ancillary chunk, an unknown chunk...) do not stop decoding; libpng
// would print them to stderr, which a command must keep clean.
static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void read_bytes(png_structp png, png_bytep into, png_size_t count) {
    reader *source = (reader *)png_get_io_ptr(png);
    if (count > source->size - source->offset) {
        png_error(png, "truncated file");
    }
    memcpy(into, source->data + source->offset, count);
    source->offset += count;
}

// Creates the read structures over the bytes; NULL when libpng could not allocate them.
static int open_png(reader *source, png_structp *png, png_infop *info) {
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, source, on_error, on_warning);
    if (*png == NULL) {
        copy_message(source, "libpng could not start");
        return -1;
    }
    *info = png_create_info_struct(*png);
    if (*info == NULL) {
        png_destroy_read_struct(png, NULL, NULL);
        copy_message(source, "libpng could not start");
        return -1;
    }
    png_set_read_fn(*png, source, read_bytes);
    // Bounds before any row memory: libpng refuses larger IHDR sizes itself (the pixel budget is
    // checked by the caller against the header), and ancillary chunks stay small.
    png_set_user_limits(*png, 1u << 24, 1u << 24);
    png_set_chunk_malloc_max(*png, 8u << 20);
    return 0;
}

static int check_signature(reader *source) {
    if (source->size < 8 || png_sig_cmp(source->data, 0, 8) != 0) {
        copy_message(source, "not a PNG file");
        return -1;
    }
    return 0;
}

static void fill_header(png_structp png, png_infop info, scion_png_header *header) {
    header->width = png_get_image_width(png, info);
    header->height = png_get_image_height(png, info);
    header->bit_depth = png_get_bit_depth(png, info);
    header->color_type = png_get_color_type(png, info);
    header->interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    header->has_transparency = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
}

int scion_png_read_header(const uint8_t *data, size_t size, scion_png_header *header,
                          char *message, size_t message_size) {
    reader source = {data, size, 0, message, message_size};
    if (check_signature(&source) != 0) return -1;
    png_structp png;
    png_infop info;
    if (open_png(&source, &png, &info) != 0) return -1;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_read_info(png, info);
    fill_header(png, info, header);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int scion_png_decode(const uint8_t *data, size_t size, int channels, uint64_t max_pixels,
                     uint8_t *output, size_t output_size, char *message, size_t message_size) {
    reader source = {data, size, 0, message, message_size};
    if (channels < 1 || channels > 4) {
        copy_message(&source, "channels must be 1 to 4");
        return -1;
    }
    if (check_signature(&source) != 0) return -1;
    png_structp png;
    png_infop info;
    if (open_png(&source, &png, &info) != 0) return -1;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_read_info(png, info);
    scion_png_header header;
    fill_header(png, info, &header);
    if (header.width == 0 || header.height == 0) png_error(png, "image has no pixels");
    if ((uint64_t)header.width * header.height > max_pixels) png_error(png, "more pixels than allowed");
    size_t row_bytes = (size_t)header.width * (size_t)channels;
    if (output_size != row_bytes * header.height) png_error(png, "output size does not match the header");

    // TensorFlow's order (core/lib/png/png_io.cc, CommonInitDecode).
    int has_alpha = (header.color_type & PNG_COLOR_MASK_ALPHA) != 0;
    int is_gray = (header.color_type & PNG_COLOR_MASK_COLOR) == 0;
    if (channels == 2 || channels == 4) {
        if (!has_alpha) {
            if (header.has_transparency) png_set_tRNS_to_alpha(png);
            else png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
        }
    } else if (has_alpha || header.has_transparency) {
        png_set_strip_alpha(png);
    }
    if (header.bit_depth > 8) png_set_strip_16(png);
    png_set_packing(png);
    int passes = png_set_interlace_handling(png);
    if (header.color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (is_gray && header.bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (channels < 3) {
        if (!is_gray) png_set_rgb_to_gray(png, 1, 0.299, 0.587);
    } else if (is_gray) {
        png_set_gray_to_rgb(png);
    }
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected row size after transformations");
    for (int pass = 0; pass < passes; pass++) {
        for (uint32_t row = 0; row < header.height; row++) {
            png_read_row(png, output + row * row_bytes, NULL);
        }
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
