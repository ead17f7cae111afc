import CTurboJPEG

/// JPEG through libjpeg-turbo's TurboJPEG API (tjDecompressHeader3, tjDecompress2), with
/// TensorFlow's conventions (core/lib/jpeg/jpeg_mem.cc): the fast integer DCT by default, CMYK and
/// YCCK decoded to CMYK and converted here (inverted when an Adobe segment is present), gray from
/// libjpeg's own color conversion, a premature end of data an error.
enum JPEGDecoder {
    struct Result {
        var image: DecodedImage
        var orientation: Int?
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, file: String, options: DecodeOptions) throws(ImageError) -> Result {
        guard let source = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { throw ImageError(file: file, reason: .empty) }
        let markers = JPEGMarkers(bytes)
        // A frame header Scion can read is checked before libjpeg-turbo sees the file.
        if let width = markers.width, let height = markers.height {
            try ImageDecoder.checkSize(width: width, height: height, options: options, file: file)
        }
        guard let handle = tjInitDecompress() else { throw ImageError(file: file, reason: .damaged("libjpeg-turbo could not start")) }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        if tjDecompressHeader3(handle, source, UInt(bytes.count), &width, &height, &subsampling, &colorspace) != 0 {
            throw markers.endsBeforeScan ? ImageError(file: file, reason: .truncated) : failure(handle, file: file)
        }
        try ImageDecoder.checkSize(width: Int(width), height: Int(height), options: options, file: file)
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let decodedChannels = isCMYK ? 4 : options.channels
        let format: TJPF = isCMYK ? TJPF_CMYK : options.channels == 1 ? TJPF_GRAY : options.channels == 3 ? TJPF_RGB : TJPF_RGBA
        // Not cleared first: tjDecompress2 writes every row unless it fails, and then the pixels are dropped.
        let count = Int(width) * Int(height) * decodedChannels
        var pixels = [UInt8](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        let flags = options.jpegDCT == .fast ? TJFLAG_FASTDCT : TJFLAG_ACCURATEDCT
        let status = pixels.withUnsafeMutableBufferPointer { output in
            tjDecompress2(handle, source, UInt(bytes.count), output.baseAddress, width, 0, height, Int32(format.rawValue), flags)
        }
        // A warning (extraneous bytes before a marker...) leaves a whole image, which TensorFlow
        // accepts too; a premature end leaves gray rows, which it refuses.
        if status != 0 && (tjGetErrorCode(handle) != Int32(TJERR_WARNING.rawValue) || message(handle).contains("Premature end")) {
            throw failure(handle, file: file)
        }
        if isCMYK {
            pixels = cmykToChannels(pixels, inverted: markers.hasAdobeSegment, channels: options.channels)
        }
        return Result(image: DecodedImage(width: Int(width), height: Int(height), channels: options.channels, pixels: pixels),
                      orientation: markers.orientation)
    }

    /// TensorFlow's CMYK to RGB (integer division, as jpeg_mem.cc); gray then by libjpeg's RGB to
    /// gray weights (TensorFlow refuses a CMYK file in grayscale mode; Scion reads it).
    static func cmykToChannels(_ cmyk: [UInt8], inverted: Bool, channels: Int) -> [UInt8] {
        let count = cmyk.count / 4
        var out = [UInt8](repeating: 255, count: count * channels)
        for i in 0..<count {
            let c = Int(cmyk[4 * i]), m = Int(cmyk[4 * i + 1]), y = Int(cmyk[4 * i + 2]), k = Int(cmyk[4 * i + 3])
            let r, g, b: Int
            if inverted {
                (r, g, b) = (k * c / 255, k * m / 255, k * y / 255)
            } else {
                (r, g, b) = ((255 - k) * (255 - c) / 255, (255 - k) * (255 - m) / 255, (255 - k) * (255 - y) / 255)
            }
            if channels == 1 {
                out[i] = UInt8((19595 * r + 38470 * g + 7471 * b + 32768) >> 16)
            } else {
                out[channels * i] = UInt8(r)
                out[channels * i + 1] = UInt8(g)
                out[channels * i + 2] = UInt8(b)
            }
        }
        return out
    }

    private static func message(_ handle: tjhandle) -> String {
        guard let text = tjGetErrorStr2(handle) else { return "unknown error" }
        return String(cString: text)
    }

    private static func failure(_ handle: tjhandle, file: String) -> ImageError {
        let text = message(handle)
        if text.contains("Premature end") { return ImageError(file: file, reason: .truncated) }
        return ImageError(file: file, reason: .damaged("libjpeg-turbo: \(text)"))
    }
}
