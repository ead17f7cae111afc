import Foundation

/// A decoded image: 8-bit samples, rows top to bottom, `channels` interleaved per pixel (HWC).
public struct DecodedImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// How libjpeg-turbo runs the inverse DCT. TensorFlow's decode_image (and so Keras's
/// image_dataset_from_directory) uses the fast integer one; Pillow the accurate one. They differ by a
/// few units per channel.
public enum JPEGDCT: Sendable {
    case fast
    case accurate
}

public struct DecodeOptions: Sendable {
    /// 1 (gray), 3 (RGB) or 4 (RGBA): Keras's color_mode "grayscale", "rgb", "rgba". Conversions are
    /// TensorFlow's decode_image(channels:) ones.
    public var channels: Int
    /// The most pixels (width x height) a file may declare, checked from its header before any pixel
    /// memory is allocated. Default: Pillow's Image.MAX_IMAGE_PIXELS (89,478,485, about 256 MB of RGB).
    public var maxPixels: Int
    /// Keras and TensorFlow ignore EXIF orientation (the pixels as stored); image viewers and Pillow's
    /// ImageOps.exif_transpose apply it. Off by default, for Keras parity.
    public var applyEXIFOrientation: Bool
    public var jpegDCT: JPEGDCT

    public static let pillowPixelLimit = 89_478_485

    public init(channels: Int = 3, maxPixels: Int = DecodeOptions.pillowPixelLimit, applyEXIFOrientation: Bool = false,
                jpegDCT: JPEGDCT = .fast) {
        self.channels = channels
        self.maxPixels = maxPixels
        self.applyEXIFOrientation = applyEXIFOrientation
        self.jpegDCT = jpegDCT
    }
}

public enum ImageFormat: Equatable, Sendable {
    case jpeg, png, gif, bmp

    /// By the first bytes, as TensorFlow's decode_image does (the extension is not trusted).
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        func starts(_ prefix: [UInt8]) -> Bool { bytes.count >= prefix.count && zip(bytes, prefix).allSatisfy { $0 == $1 } }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(Array("GIF8".utf8)) { return .gif }
        if starts(Array("BM".utf8)) { return .bmp }
        return nil
    }
}

public enum ImageDecoder {
    /// Reads and decodes one file. Wraps `decode(_:file:options:)`.
    public static func decode(file: String, options: DecodeOptions = DecodeOptions()) throws(ImageError) -> DecodedImage {
        let data: Data
        do {
            // Read, not mapped: mapping and unmapping thousands of small files from several threads
            // costs more than the copy.
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ImageError(file: file, reason: .unreadable((error as NSError).localizedDescription))
        }
        let result = data.withUnsafeBytes { bytes in
            Result { () throws(ImageError) -> DecodedImage in try decode(bytes, file: file, options: options) }
        }
        return try result.get()
    }

    /// Decodes JPEG or PNG bytes; `file` names them in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, file: String, options: DecodeOptions = DecodeOptions()) throws(ImageError) -> DecodedImage {
        guard [1, 3, 4].contains(options.channels) else {
            throw ImageError(file: file, reason: .damaged("cannot be decoded to \(options.channels) channels (1, 3 or 4)"))
        }
        if bytes.isEmpty { throw ImageError(file: file, reason: .empty) }
        switch ImageFormat.sniff(bytes) {
        case .jpeg?:
            var image = try JPEGDecoder.decode(bytes, file: file, options: options)
            if options.applyEXIFOrientation, let orientation = image.orientation {
                image.image = image.image.oriented(orientation)
            }
            return image.image
        case .png?:
            return try PNGDecoder.decode(bytes, file: file, options: options)
        case .gif?: throw ImageError(file: file, reason: .unsupportedFormat("GIF"))
        case .bmp?: throw ImageError(file: file, reason: .unsupportedFormat("BMP"))
        case nil: throw ImageError(file: file, reason: .notAnImage)
        }
    }

    /// Refuses a declared size before anything is allocated from it.
    static func checkSize(width: Int, height: Int, options: DecodeOptions, file: String) throws(ImageError) {
        if width <= 0 || height <= 0 { throw ImageError(file: file, reason: .noPixels) }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        if overflow || pixels > options.maxPixels {
            throw ImageError(file: file, reason: .tooManyPixels(width: width, height: height, limit: options.maxPixels))
        }
    }
}
