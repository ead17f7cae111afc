/// Resizing as Keras 3's image_dataset_from_directory does it: TensorFlow's tf.image.resize with
/// antialias=False (resize_bilinear, resize_nearest_neighbor and resize_bicubic with half-pixel centers,
/// resize_area),
/// in float32 arithmetic in TensorFlow's order, and Keras's smart_resize crop for
/// crop_to_aspect_ratio. The result is float32 in 0...255 (Keras does not rescale).
public enum Interpolation: String, CaseIterable, Sendable {
    case bilinear, nearest, bicubic, area
}

public struct ResizeOptions: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var interpolation: Interpolation
    /// Keras's crop_to_aspect_ratio: the largest centered box of the target's aspect ratio first.
    public var cropToAspectRatio: Bool

    public init(height: Int, width: Int, interpolation: Interpolation = .bilinear, cropToAspectRatio: Bool = false) {
        self.height = height
        self.width = width
        self.interpolation = interpolation
        self.cropToAspectRatio = cropToAspectRatio
    }
}

public enum ImageResizer {
    /// `height x width x channels` float32 values, row-major (HWC).
    public static func resize(_ image: DecodedImage, _ options: ResizeOptions) -> [Float] {
        [Float](unsafeUninitializedCapacity: options.height * options.width * image.channels) { buffer, count in
            resize(image, options, into: buffer)
            count = buffer.count
        }
    }

    /// Writes the resized image into `output` (exactly `height x width x channels` values): a batch
    /// fills its own buffer in place, without an array per image.
    public static func resize(_ image: DecodedImage, _ options: ResizeOptions, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(output.count == options.height * options.width * image.channels, "resize: output size")
        let box = options.cropToAspectRatio
            ? cropBox(height: image.height, width: image.width, targetHeight: options.height, targetWidth: options.width)
            : (top: 0, left: 0, height: image.height, width: image.width)
        image.pixels.withUnsafeBufferPointer { pixels in
            let source = Window(pixels: pixels, rowLength: image.width, channels: image.channels,
                                top: box.top, left: box.left, height: box.height, width: box.width)
            switch options.interpolation {
            case .bilinear: bilinear(source, options.height, options.width, output)
            case .nearest: nearest(source, options.height, options.width, output)
            case .bicubic: bicubic(source, options.height, options.width, output)
            case .area: area(source, options.height, options.width, output)
            }
        }
    }

    /// keras.src.utils.image_utils.smart_resize's box, as it computes it on TensorFlow tensors of
    /// unknown size (the dataset's case): products in int32, one float32 division, truncation.
    static func cropBox(height: Int, width: Int, targetHeight: Int, targetWidth: Int) -> (top: Int, left: Int, height: Int, width: Int) {
        let cropHeight = max(min(height, Int(Float(width * targetHeight) / Float(targetWidth))), 1)
        let cropWidth = max(min(width, Int(Float(height * targetWidth) / Float(targetHeight))), 1)
        return (Int(Float(height - cropHeight) / 2), Int(Float(width - cropWidth) / 2), cropHeight, cropWidth)
    }

    /// A rectangle of an image's samples, read without copying them.
    struct Window {
        let pixels: UnsafeBufferPointer<UInt8>
        let rowLength: Int, channels: Int
        let top: Int, left: Int, height: Int, width: Int

        func value(_ y: Int, _ x: Int, _ c: Int) -> Float {
            Float(pixels[((top + y) * rowLength + left + x) * channels + c])
        }
    }

    /// resize_bilinear_op.cc with HalfPixelScaler: in = (out + 0.5) * scale - 0.5, the two
    /// neighbours clamped to the image, lerps in x then y.
    static func bilinear(_ source: Window, _ outHeight: Int, _ outWidth: Int, _ out: UnsafeMutableBufferPointer<Float>) {
        func weights(_ outSize: Int, _ inSize: Int) -> [(lower: Int, upper: Int, lerp: Float)] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { i in
                let position = (Float(i) + 0.5) * scale - 0.5
                let floorPosition = position.rounded(.down)
                return (max(Int(floorPosition), 0), min(Int(position.rounded(.up)), inSize - 1), position - floorPosition)
            }
        }
        let ys = weights(outHeight, source.height), xs = weights(outWidth, source.width)
        let channels = source.channels
        for (y, yw) in ys.enumerated() {
            for (x, xw) in xs.enumerated() {
                for c in 0..<channels {
                    let topLeft = source.value(yw.lower, xw.lower, c), topRight = source.value(yw.lower, xw.upper, c)
                    let bottomLeft = source.value(yw.upper, xw.lower, c), bottomRight = source.value(yw.upper, xw.upper, c)
                    let top = topLeft + (topRight - topLeft) * xw.lerp
                    let bottom = bottomLeft + (bottomRight - bottomLeft) * xw.lerp
                    out[(y * outWidth + x) * channels + c] = top + (bottom - top) * yw.lerp
                }
            }
        }
    }

    /// resize_nearest_neighbor_op.cc with half-pixel centers: floor((out + 0.5) * scale), clamped.
    static func nearest(_ source: Window, _ outHeight: Int, _ outWidth: Int, _ out: UnsafeMutableBufferPointer<Float>) {
        func indices(_ outSize: Int, _ inSize: Int) -> [Int] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { i in max(0, min(Int(((Float(i) + 0.5) * scale).rounded(.down)), inSize - 1)) }
        }
        let ys = indices(outHeight, source.height), xs = indices(outWidth, source.width)
        let channels = source.channels
        for (y, sourceY) in ys.enumerated() {
            for (x, sourceX) in xs.enumerated() {
                for c in 0..<channels { out[(y * outWidth + x) * channels + c] = source.value(sourceY, sourceX, c) }
            }
        }
    }

    /// Keys's cubic (a = -0.5) sampled at 1,025 points as resize_bicubic_op.cc's table: pairs of the
    /// weights for distances t and 1 + t, t = i / 1024, computed in double and stored in float.
    static let bicubicTable: [Float] = (0...1024).flatMap { i -> [Float] in
        let a = -0.5
        var x = Float(Double(i) * 1.0 / 1024)
        let near = Float(((a + 2) * Double(x) - (a + 3)) * Double(x) * Double(x) + 1)
        x = Float(Double(x) + 1.0)
        let far = Float(((a * Double(x) - 5 * a) * Double(x) + 8 * a) * Double(x) - 4 * a)
        return [near, far]
    }

    /// resize_bicubic_op.cc with half-pixel centers (Keys's cubic): four neighbours per axis, those
    /// outside the image weighted 0 and the rest renormalized; rows interpolated first, then columns.
    static func bicubic(_ source: Window, _ outHeight: Int, _ outWidth: Int, _ out: UnsafeMutableBufferPointer<Float>) {
        func weights(_ outSize: Int, _ inSize: Int) -> [(indices: [Int], weights: [Float])] {
            let scale = Float(inSize) / Float(outSize), table = bicubicTable
            return (0..<outSize).map { i in
                let position = (Float(i) + 0.5) * scale - 0.5
                let base = Int(position.rounded(.down))
                let offset = Int(((position - Float(base)) * 1024).rounded(.toNearestOrEven))
                let wanted = [base - 1, base, base + 1, base + 2]
                let indices = wanted.map { min(inSize - 1, max(0, $0)) }
                let raw = [table[offset * 2 + 1], table[offset * 2], table[(1024 - offset) * 2], table[(1024 - offset) * 2 + 1]]
                var kept = (0..<4).map { indices[$0] == wanted[$0] ? raw[$0] : 0 }
                let sum = kept[0] + kept[1] + kept[2] + kept[3]
                if abs(sum) >= 1000 * Float.leastNormalMagnitude {
                    let inverse = 1 / sum
                    kept = kept.map { $0 * inverse }
                }
                return (indices, kept)
            }
        }
        let ys = weights(outHeight, source.height), xs = weights(outWidth, source.width)
        let channels = source.channels
        for (y, yw) in ys.enumerated() {
            for (x, xw) in xs.enumerated() {
                for c in 0..<channels {
                    var columns: [Float] = [0, 0, 0, 0]
                    for j in 0..<4 {
                        let column = xw.indices[j]
                        columns[j] = source.value(yw.indices[0], column, c) * yw.weights[0] + source.value(yw.indices[1], column, c) * yw.weights[1]
                            + source.value(yw.indices[2], column, c) * yw.weights[2] + source.value(yw.indices[3], column, c) * yw.weights[3]
                    }
                    out[(y * outWidth + x) * channels + c] = columns[0] * xw.weights[0] + columns[1] * xw.weights[1]
                        + columns[2] * xw.weights[2] + columns[3] * xw.weights[3]
                }
            }
        }
    }

    /// resize_area_op.cc: each output pixel the average of the input area it covers, partly covered
    /// pixels weighted by the covered fraction; float32 sums in its order (x within a row first).
    static func area(_ source: Window, _ outHeight: Int, _ outWidth: Int, _ out: UnsafeMutableBufferPointer<Float>) {
        struct Span { var start: Int; var end: Int; var startScale: Float; var endMinusOneScale: Float }
        func fraction(_ v: Int, _ low: Float, _ high: Float, _ scale: Float) -> Float {
            Float(v) < low ? (Float(v + 1) > high ? scale : Float(v + 1) - low) : (Float(v + 1) > high ? high - Float(v) : 1)
        }
        let heightScale = Float(source.height) / Float(outHeight), widthScale = Float(source.width) / Float(outWidth)
        let spans: [Span] = (0..<outWidth).map { x in
            let low = Float(x) * widthScale, high = Float(x + 1) * widthScale
            let start = Int(low.rounded(.down)), end = Int(high.rounded(.up))
            return Span(start: start, end: end, startScale: fraction(start, low, high, widthScale),
                        endMinusOneScale: fraction(end - 1, low, high, widthScale))
        }
        let scale = Float(1.0 / Double(heightScale * widthScale))
        let channels = source.channels
        func bound(_ v: Int, _ limit: Int) -> Int { min(limit - 1, max(0, v)) }
        for y in 0..<outHeight {
            let low = Float(y) * heightScale, high = Float(y + 1) * heightScale
            let rows = Array(Int(low.rounded(.down))..<Int(high.rounded(.up)))
            let rowScales = rows.map { fraction($0, low, high, heightScale) }
            for (x, span) in spans.enumerated() {
                for c in 0..<channels {
                    var sum: Float = 0
                    for (row, rowScale) in zip(rows, rowScales) {
                        let sourceY = bound(row, source.height)
                        var rowSum = source.value(sourceY, bound(span.start, source.width), c) * span.startScale
                        if span.start + 1 != span.end {
                            for column in (span.start + 1)..<max(span.start + 1, span.end - 1) {
                                rowSum += source.value(sourceY, bound(column, source.width), c)
                            }
                            rowSum += source.value(sourceY, bound(span.end - 1, source.width), c) * span.endMinusOneScale
                        }
                        sum += rowSum * rowScale
                    }
                    out[(y * outWidth + x) * channels + c] = sum * scale
                }
            }
        }
    }
}
