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
    /// neighbours clamped to the image, lerps in x then y. Each output value reads its 2x2 source
    /// samples straight from the 8-bit image (no float copy of the whole image, which at phone sizes
    /// would be 10 to 20 times the output); the float arithmetic is TensorFlow's, in its order.
    static func bilinear(_ source: Window, _ outHeight: Int, _ outWidth: Int, _ out: UnsafeMutableBufferPointer<Float>) {
        let ys = bilinearTaps(outHeight, source.height), xs = bilinearTaps(outWidth, source.width)
        let channels = source.channels
        // Where each output column's left and right neighbours start within a source row.
        let leftColumns = xs.map { (source.left + $0.lower) * channels }, rightColumns = xs.map { (source.left + $0.upper) * channels }
        let columnLerps = xs.map(\.lerp)
        // Columns whose four-lane reads stay inside their row and whose four-lane write is followed
        // by another pixel's (the right neighbour grows with x, so they come first).
        let rowBytes = source.rowLength * channels
        let vectorColumns = min(outWidth - 1, rightColumns.firstIndex { $0 + 4 > rowBytes } ?? outWidth)
        guard let pixels = source.pixels.baseAddress, let output = out.baseAddress else { return }
        leftColumns.withUnsafeBufferPointer { lefts in
            rightColumns.withUnsafeBufferPointer { rights in
                columnLerps.withUnsafeBufferPointer { lerps in
                    for (y, row) in ys.enumerated() {
                        let upper = pixels + (source.top + row.lower) * source.rowLength * channels
                        let lower = pixels + (source.top + row.upper) * source.rowLength * channels
                        let rowLerp = row.lerp
                        var target = output + y * outWidth * channels
                        var x = 0
                        if channels == 3 {
                            // RGB, the common case: a pixel's three values at once, as four lanes (the
                            // fourth reads the next sample and writes a value the next pixel overwrites).
                            let rowLerps = SIMD4<Float>(repeating: rowLerp)
                            while x < vectorColumns {
                                let lerp = SIMD4<Float>(repeating: lerps[x])
                                let topLeft = lanes(upper + lefts[x]), topRight = lanes(upper + rights[x])
                                let bottomLeft = lanes(lower + lefts[x]), bottomRight = lanes(lower + rights[x])
                                let top = topLeft + (topRight - topLeft) * lerp
                                let bottom = bottomLeft + (bottomRight - bottomLeft) * lerp
                                UnsafeMutableRawPointer(target).storeBytes(of: top + (bottom - top) * rowLerps, as: SIMD4<Float>.self)
                                target += 3
                                x += 1
                            }
                        }
                        while x < outWidth {
                            let left = lefts[x], right = rights[x], lerp = lerps[x]
                            for c in 0..<channels { target[c] = blend(upper + c, lower + c, left, right, lerp, rowLerp) }
                            target += channels
                            x += 1
                        }
                    }
                }
            }
        }
    }

    /// Four consecutive 8-bit samples as floats.
    @inline(__always)
    private static func lanes(_ samples: UnsafePointer<UInt8>) -> SIMD4<Float> {
        let bytes = UnsafeRawPointer(samples).loadUnaligned(as: SIMD4<UInt8>.self)
        return SIMD4<Float>(SIMD4<Int32>(truncatingIfNeeded: bytes))
    }

    /// One output value of `bilinear`: `top + (bottom - top) * rowLerp`, each of top and bottom a
    /// lerp between the left and right samples of its row (resize_bilinear_op.cc's compute_lerp).
    @inline(__always)
    private static func blend(_ upper: UnsafePointer<UInt8>, _ lower: UnsafePointer<UInt8>, _ left: Int, _ right: Int,
                              _ lerp: Float, _ rowLerp: Float) -> Float {
        let topLeft = Float(upper[left]), topRight = Float(upper[right])
        let bottomLeft = Float(lower[left]), bottomRight = Float(lower[right])
        let top = topLeft + (topRight - topLeft) * lerp
        let bottom = bottomLeft + (bottomRight - bottomLeft) * lerp
        return top + (bottom - top) * rowLerp
    }

    /// For each output index along one axis: the two source indices it reads (clamped to the image)
    /// and the weight of the second, as resize_bilinear_op.cc's compute_interpolation_weights.
    static func bilinearTaps(_ outSize: Int, _ inSize: Int) -> [(lower: Int, upper: Int, lerp: Float)] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { i in
            let position = (Float(i) + 0.5) * scale - 0.5
            let floorPosition = position.rounded(.down)
            return (max(Int(floorPosition), 0), min(Int(position.rounded(.up)), inSize - 1), position - floorPosition)
        }
    }

    /// resize_nearest_neighbor_op.cc with half-pixel centers: floor((out + 0.5) * scale), clamped.
    static func nearest(_ source: Window, _ outHeight: Int, _ outWidth: Int, _ out: UnsafeMutableBufferPointer<Float>) {
        func indices(_ outSize: Int, _ inSize: Int) -> [Int] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { i in max(0, min(Int(((Float(i) + 0.5) * scale).rounded(.down)), inSize - 1)) }
        }
        let channels = source.channels
        let columns = indices(outWidth, source.width).map { (source.left + $0) * channels }
        guard let pixels = source.pixels.baseAddress, let output = out.baseAddress else { return }
        columns.withUnsafeBufferPointer { columns in
            for (y, sourceY) in indices(outHeight, source.height).enumerated() {
                let row = pixels + (source.top + sourceY) * source.rowLength * channels
                var target = output + y * outWidth * channels
                for x in 0..<outWidth {
                    for c in 0..<channels { target[c] = Float(row[columns[x] + c]) }
                    target += channels
                }
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
