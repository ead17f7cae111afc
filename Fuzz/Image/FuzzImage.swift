import FuzzSupport
import ScionImages

/// libFuzzer target: bytes as an image file (JPEG or PNG by their first bytes), decoded to RGB and to
/// gray with EXIF orientation applied, then resized. Any thrown ImageError is a correct answer; a
/// crash, a libpng longjmp escaping its shim, or an allocation the header budget did not allow is
/// a bug. The pixel budget is lowered so that each input stays fast.
@_cdecl("FuzzImage_main")
public func fuzzImageMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        let bytes = fuzzBytes(data, size)
        for (channels, orientation) in [(3, true), (1, false)] {
            let options = DecodeOptions(channels: channels, maxPixels: 1 << 20, applyEXIFOrientation: orientation)
            if let image = try? ImageDecoder.decode(bytes, file: "fuzz", options: options) {
                _ = ImageResizer.resize(image, ResizeOptions(height: 7, width: 5, interpolation: channels == 3 ? .area : .bilinear,
                                                             cropToAspectRatio: orientation))
            }
        }
        return 0
    }
}
