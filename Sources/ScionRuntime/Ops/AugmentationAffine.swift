import Foundation
import ScionIR

/// RandomRotation, RandomZoom, RandomTranslation (and `--augment crop`) while training: a random affine map per image
/// from output pixels to input positions (Keras 3's matrices: rotation and zoom about the image's
/// centre, translation by a fraction of its size), sampled bilinearly or at the nearest pixel, with
/// Keras's fill modes for positions outside the image.
struct AffineSampler {
    enum Fill: String { case reflect, constant, nearest, wrap }
    let fill: Fill
    let fillValue: Float
    let bilinear: Bool

    init(_ settings: AugmentationSettings, node: String) throws {
        let mode = settings.string("fill_mode", "reflect")
        guard let fill = Fill(rawValue: mode) else {
            throw RuntimeError(node, "fill_mode '\(mode)' is not one Scion augments with (reflect, constant, nearest, wrap)")
        }
        let interpolation = settings.string("interpolation", "bilinear")
        guard interpolation == "bilinear" || interpolation == "nearest" else {
            throw RuntimeError(node, "interpolation '\(interpolation)' is not one Scion augments with (bilinear, nearest)")
        }
        self.fill = fill
        fillValue = settings.float("fill_value", 0)
        bilinear = interpolation == "bilinear"
    }

    /// One image's map `[a0, a1, a2, b0, b1, b2]`: input column `a0·x + a1·y + a2`, input row
    /// `b0·x + b1·y + b2` for output column x and row y.
    func draw(_ kind: AugmentationKind, _ settings: AugmentationSettings, height: Int, width: Int,
              random: inout SplitMix64) -> [Float] {
        switch kind {
        case .randomRotation:
            let (low, high) = settings.range("factor", symmetric: true)
            return Self.rotation(angle: random.uniform(low, high) * 2 * Float.pi, height: height, width: width)
        case .randomZoom:
            let (low, high) = settings.range("height_factor", symmetric: true)
            let zoomY = 1 + random.uniform(low, high)
            var zoomX = zoomY
            if settings.values["width_factor"] is NSNumber || settings.values["width_factor"] is [NSNumber] {
                let (wLow, wHigh) = settings.range("width_factor", symmetric: true)
                zoomX = 1 + random.uniform(wLow, wHigh)
            }
            return Self.zoom(x: zoomX, y: zoomY, height: height, width: width)
        case .randomTranslation:
            let (low, high) = settings.range("height_factor", symmetric: true)
            let (wLow, wHigh) = settings.range("width_factor", symmetric: true)
            let shiftY = random.uniform(low, high) * Float(height), shiftX = random.uniform(wLow, wHigh) * Float(width)
            return Self.translation(x: shiftX, y: shiftY)
        case .resizeAndCrop:
            let resized = Self.resizedSize(height: height, width: width, scale: settings.float("scale", 1.14))
            // Keras's RandomCrop: each offset uniform over the integers that keep the window inside.
            let top = min(Int(random.unit() * Float(resized.height - height + 1)), resized.height - height)
            let left = min(Int(random.unit() * Float(resized.width - width + 1)), resized.width - width)
            return Self.crop(top: top, left: left, resized: resized, height: height, width: width)
        case .randomFlip, .randomContrast, .randomBrightness, .gaussianNoise, .gaussianDropout:
            return [1, 0, 0, 0, 1, 0]
        }
    }

    /// Keras 3's rotation by `angle` radians about the image's centre (`_compute_affine_matrix`).
    static func rotation(angle: Float, height: Int, width: Int) -> [Float] {
        let centreX = Float(width - 1) / 2, centreY = Float(height - 1) / 2
        let (c, s) = (cos(angle), sin(angle))
        return [c, -s, centreX - c * centreX + s * centreY, s, c, centreY - s * centreX - c * centreY]
    }

    /// Keras 3's zoom matrix (`RandomZoom._get_zoom_matrix`): `x`, `y` are 1 + the drawn factors.
    static func zoom(x: Float, y: Float, height: Int, width: Int) -> [Float] {
        [x, 0, Float(width - 1) / 2 * (1 - x), 0, y, Float(height - 1) / 2 * (1 - y)]
    }

    /// Keras 3's translation by `x`, `y` pixels (`RandomTranslation`'s matrix).
    static func translation(x: Float, y: Float) -> [Float] { [1, 0, -x, 0, 1, -y] }

    /// The size `crop` resizes to first: `scale` times each side, rounded, at least the side.
    static func resizedSize(height: Int, width: Int, scale: Float) -> (height: Int, width: Int) {
        (max(Int((Float(height) * scale).rounded()), height), max(Int((Float(width) * scale).rounded()), width))
    }

    /// The window at (`top`, `left`) of the image resized bilinearly to `resized` (TensorFlow's and
    /// Keras's half-pixel centres, edge taps clamped: the `nearest` fill), as one map of the
    /// original: output row y reads row `(top + y + 0.5) · height / resized.height - 0.5`.
    static func crop(top: Int, left: Int, resized: (height: Int, width: Int), height: Int, width: Int) -> [Float] {
        let scaleY = Float(height) / Float(resized.height), scaleX = Float(width) / Float(resized.width)
        return [scaleX, 0, (Float(left) + 0.5) * scaleX - 0.5, 0, scaleY, (Float(top) + 0.5) * scaleY - 0.5]
    }

    /// Image `n` of `x` resampled through `map` into `y`.
    func resample(_ x: RuntimeTensor, into y: inout RuntimeTensor, image: ImageAxes, sample n: Int, map: [Float]) {
        for row in 0..<image.height {
            for column in 0..<image.width {
                let sourceX = map[0] * Float(column) + map[1] * Float(row) + map[2]
                let sourceY = map[3] * Float(column) + map[4] * Float(row) + map[5]
                for c in 0..<image.channels {
                    y.data[image.offset(n, c, row, column)] = value(x, image, n, c, sourceY, sourceX)
                }
            }
        }
    }

    private func value(_ x: RuntimeTensor, _ image: ImageAxes, _ n: Int, _ c: Int, _ row: Float, _ column: Float) -> Float {
        func at(_ r: Int, _ k: Int) -> Float {
            guard let r = fixed(r, image.height), let k = fixed(k, image.width) else { return fillValue }
            return x.data[image.offset(n, c, r, k)]
        }
        guard bilinear else { return at(Int(row.rounded()), Int(column.rounded())) }
        let r0 = Int(row.rounded(.down)), k0 = Int(column.rounded(.down))
        let fr = row - Float(r0), fk = column - Float(k0)
        return (1 - fr) * ((1 - fk) * at(r0, k0) + fk * at(r0, k0 + 1)) + fr * ((1 - fk) * at(r0 + 1, k0) + fk * at(r0 + 1, k0 + 1))
    }

    /// An index outside `0..<length` brought inside by the fill mode; nil for `constant`.
    private func fixed(_ index: Int, _ length: Int) -> Int? {
        if (0..<length).contains(index) { return index }
        switch fill {
        case .constant: return nil
        case .nearest: return min(max(index, 0), length - 1)
        case .wrap: return ((index % length) + length) % length
        case .reflect:
            // Half-sample symmetric, as Keras's `reflect`: (d c b a | a b c d | d c b a).
            let period = 2 * length, folded = ((index % period) + period) % period
            return folded < length ? folded : period - 1 - folded
        }
    }
}
