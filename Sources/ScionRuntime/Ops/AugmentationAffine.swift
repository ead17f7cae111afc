import Foundation
import ScionIR

/// RandomRotation, RandomZoom and RandomTranslation while training: a random affine map per image
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
        let centreX = Float(width - 1) / 2, centreY = Float(height - 1) / 2
        switch kind {
        case .randomRotation:
            let (low, high) = settings.range("factor", symmetric: true)
            let angle = random.uniform(low, high) * 2 * Float.pi
            let (c, s) = (cos(angle), sin(angle))
            return [c, -s, centreX - c * centreX + s * centreY, s, c, centreY - s * centreX - c * centreY]
        case .randomZoom:
            let (low, high) = settings.range("height_factor", symmetric: true)
            let zoomY = 1 + random.uniform(low, high)
            var zoomX = zoomY
            if settings.values["width_factor"] is NSNumber || settings.values["width_factor"] is [NSNumber] {
                let (wLow, wHigh) = settings.range("width_factor", symmetric: true)
                zoomX = 1 + random.uniform(wLow, wHigh)
            }
            return [zoomX, 0, centreX * (1 - zoomX), 0, zoomY, centreY * (1 - zoomY)]
        case .randomTranslation:
            let (low, high) = settings.range("height_factor", symmetric: true)
            let (wLow, wHigh) = settings.range("width_factor", symmetric: true)
            let shiftY = random.uniform(low, high) * Float(height), shiftX = random.uniform(wLow, wHigh) * Float(width)
            return [1, 0, -shiftX, 0, 1, -shiftY]
        case .randomFlip, .randomContrast, .randomBrightness, .gaussianNoise, .gaussianDropout:
            return [1, 0, 0, 0, 1, 0]
        }
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
