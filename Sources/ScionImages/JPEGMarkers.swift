/// What Scion reads itself from a JPEG's segments before the first scan: the frame's size (to check
/// the pixel budget and refuse zero sizes before libjpeg-turbo allocates), whether an Adobe APP14
/// segment is present (CMYK samples are then stored inverted, TensorFlow's and Photoshop's
/// convention), and the EXIF orientation. Damaged segments end the walk quietly: libjpeg-turbo then
/// reports them with its own message.
struct JPEGMarkers {
    var width: Int?
    var height: Int?
    var hasAdobeSegment = false
    var orientation: Int?
    /// The segments ran past the end of the bytes before a scan started: the file is cut short.
    var endsBeforeScan = true

    init(_ bytes: UnsafeRawBufferPointer) {
        var position = 2   // after SOI
        while position + 4 <= bytes.count {
            guard bytes[position] == 0xFF else { endsBeforeScan = false; return }
            let marker = bytes[position + 1]
            if marker == 0xFF { position += 1; continue }   // fill byte
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { position += 2; continue }   // no length
            if marker == 0xDA || marker == 0xD9 { endsBeforeScan = false; return }   // start of scan, end of image
            let length = Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
            let start = position + 4, end = position + 2 + length
            guard length >= 2 else { endsBeforeScan = false; return }
            guard end <= bytes.count else { return }
            let segment = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            switch marker {
            case 0xC0...0xCF where marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
                // SOFn: precision, height, width.
                if segment.count >= 5 {
                    height = Int(segment[1]) << 8 | Int(segment[2])
                    width = Int(segment[3]) << 8 | Int(segment[4])
                }
            case 0xEE:
                if segment.count >= 5, Array(segment[0..<5]) == Array("Adobe".utf8) { hasAdobeSegment = true }
            case 0xE1:
                if orientation == nil, segment.count > 6, Array(segment[0..<6]) == [0x45, 0x78, 0x69, 0x66, 0, 0] {
                    orientation = Self.exifOrientation(UnsafeRawBufferPointer(rebasing: segment[6...]))
                }
            default: break
            }
            position = end
        }
    }

    /// Tag 0x0112 of IFD0 in a TIFF structure, when it holds 1...8.
    static func exifOrientation(_ tiff: UnsafeRawBufferPointer) -> Int? {
        guard tiff.count >= 8 else { return nil }
        let little: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= tiff.count else { return nil }
            return little ? Int(tiff[at]) | Int(tiff[at + 1]) << 8 : Int(tiff[at]) << 8 | Int(tiff[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let low = u16(little ? at : at + 2), let high = u16(little ? at + 2 : at) else { return nil }
            return high << 16 | low
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<count {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at) else { return nil }
            if tag == 0x0112 {
                guard let type = u16(at + 2), type == 3, let value = u16(at + 8), (1...8).contains(value) else { return nil }
                return value
            }
        }
        return nil
    }
}

extension DecodedImage {
    /// The image as a viewer shows it for an EXIF orientation (1...8), the transposes Pillow's
    /// ImageOps.exif_transpose applies: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
    /// clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
    public func oriented(_ orientation: Int) -> DecodedImage {
        guard (2...8).contains(orientation) else { return self }
        let swaps = orientation >= 5
        let outWidth = swaps ? height : width, outHeight = swaps ? width : height
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let (sourceY, sourceX): (Int, Int)
                switch orientation {
                case 2: (sourceY, sourceX) = (y, width - 1 - x)
                case 3: (sourceY, sourceX) = (height - 1 - y, width - 1 - x)
                case 4: (sourceY, sourceX) = (height - 1 - y, x)
                case 5: (sourceY, sourceX) = (x, y)
                case 6: (sourceY, sourceX) = (height - 1 - x, y)
                case 7: (sourceY, sourceX) = (height - 1 - x, width - 1 - y)
                default: (sourceY, sourceX) = (x, width - 1 - y)   // 8
                }
                let from = (sourceY * width + sourceX) * channels, to = (y * outWidth + x) * channels
                for c in 0..<channels { out[to + c] = pixels[from + c] }
            }
        }
        return DecodedImage(width: outWidth, height: outHeight, channels: channels, pixels: out)
    }
}
