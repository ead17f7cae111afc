import CImageCodecs

/// PNG through libpng, every libpng call inside the C shim (CImageCodecs/png.c) under its setjmp.
enum PNGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String, options: DecodeOptions) throws(ImageError) -> DecodedImage {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { throw ImageError(file: file, reason: .empty) }
        // IHDR is the first chunk: its size is checked here before libpng reads anything, so a zero or
        // huge size gets its own reason rather than libpng's "Invalid IHDR data".
        if bytes.count >= 24, Array(bytes[12..<16]) == Array("IHDR".utf8) {
            func u32(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
            try ImageDecoder.checkSize(width: u32(16), height: u32(20), options: options, file: file)
        }
        var message = [CChar](repeating: 0, count: 256)
        var header = scion_png_header()
        if scion_png_read_header(base, bytes.count, &header, &message, message.count) != 0 {
            throw failure(message, file: file)
        }
        let width = Int(header.width), height = Int(header.height)
        try ImageDecoder.checkSize(width: width, height: height, options: options, file: file)
        var pixels = [UInt8](repeating: 0, count: width * height * options.channels)
        let status = pixels.withUnsafeMutableBufferPointer { output in
            scion_png_decode(base, bytes.count, Int32(options.channels), UInt64(options.maxPixels),
                             output.baseAddress, output.count, &message, message.count)
        }
        if status != 0 { throw failure(message, file: file) }
        return DecodedImage(width: width, height: height, channels: options.channels, pixels: pixels)
    }

    private static func failure(_ message: [CChar], file: String) -> ImageError {
        let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text == "truncated file" { return ImageError(file: file, reason: .truncated) }
        if text.contains("is zero") || text == "image has no pixels" { return ImageError(file: file, reason: .noPixels) }
        return ImageError(file: file, reason: .damaged("libpng: \(text)"))
    }
}
