import Foundation
import ScionIR

/// Keras's augmentation layers while training: each draws its random transform per image (per value
/// for the noise layers) from the trainer's seeded generator, with Keras 3's formulas, defaults and
/// ranges (keras/src/layers/preprocessing/image_preprocessing). The numbers are Scion's own draws,
/// not JAX's: a seed repeats a run of Scion exactly, and a run's statistics match Keras's.
///
/// Gradient: the transforms are treated as fixed transforms of the input. They are usually the
/// model's first layers, so no gradient is needed through them and the VJP stops there; when a
/// trainable layer precedes one, the noise layers, flips and Brightness pass the gradient (Dropout's
/// multipliers saved), and the resampling ones (Rotation, Zoom, Translation, Contrast) refuse.
extension Trainer {
    func augmentationTraining(_ node: Node, _ a: AugmentationAttributes, _ inputs: [RuntimeTensor],
                              random: inout SplitMix64) throws -> (RuntimeTensor, Saved?) {
        guard let x = inputs.first else { throw RuntimeError(node.name, "has no input") }
        let settings = try AugmentationSettings(a, node: node.name)
        switch a.kind {
        case .gaussianNoise:
            let stddev = settings.float("stddev", 0)
            return (RuntimeTensor(shape: x.shape, data: x.data.map { $0 + stddev * random.normal() }), nil)
        case .gaussianDropout:
            let rate = settings.float("rate", 0)
            guard rate > 0 && rate < 1 else { return (x, nil) }
            let deviation = (rate / (1 - rate)).squareRoot()
            let multipliers = x.data.map { _ in 1 + deviation * random.normal() }
            return (RuntimeTensor(shape: x.shape, data: zip(x.data, multipliers).map(*)), .mask(multipliers))
        case .randomBrightness:
            let (low, high) = settings.range("factor", symmetric: true)
            let range = settings.valueRange()
            var y = x
            let image = try ImageAxes(x, a.layout, node: node.name)
            for n in 0..<image.batch {
                PixelTransforms.brighten(x, into: &y, image: image, sample: n, delta: random.uniform(low, high) * (range.1 - range.0), range: range)
            }
            return (y, nil)
        case .randomContrast:
            let factor = settings.range("factor", symmetric: false)
            let range = settings.valueRange()
            let image = try ImageAxes(x, a.layout, node: node.name)
            var y = x
            for n in 0..<image.batch {
                PixelTransforms.contrast(x, into: &y, image: image, sample: n, factor: random.uniform(1 - factor.0, 1 + factor.1), range: range)
            }
            return (y, nil)
        case .randomFlip:
            let mode = settings.string("mode", "horizontal_and_vertical")
            let image = try ImageAxes(x, a.layout, node: node.name)
            var y = x
            for n in 0..<image.batch {
                // Keras 3 draws one coin per image (probability one half) and, in
                // horizontal_and_vertical mode, flips both directions on it together.
                guard random.unit() < 0.5 else { continue }
                PixelTransforms.flip(x, into: &y, image: image, sample: n,
                                     horizontal: mode.contains("horizontal"), vertical: mode.contains("vertical"))
            }
            return (y, nil)
        case .randomRotation, .randomZoom, .randomTranslation, .resizeAndCrop:
            let image = try ImageAxes(x, a.layout, node: node.name)
            let sampler = try AffineSampler(settings, node: node.name)
            var y = x
            for n in 0..<image.batch {
                let map = sampler.draw(a.kind, settings, height: image.height, width: image.width, random: &random)
                sampler.resample(x, into: &y, image: image, sample: n, map: map)
            }
            return (y, nil)
        }
    }

    /// The VJP while augmenting: see the type's comment.
    func augmentationBackward(_ node: Node, _ a: AugmentationAttributes, _ x: RuntimeTensor, dy: RuntimeTensor,
                              saved: Saved?, wanted: Bool) throws -> StepGradients {
        guard wanted else { return StepGradients(inputs: [nil]) }
        switch a.kind {
        case .gaussianNoise, .randomBrightness:
            return StepGradients(like: x, dy.data)
        case .gaussianDropout:
            if case .mask(let multipliers) = saved { return StepGradients(like: x, zip(dy.data, multipliers).map(*)) }
            return StepGradients(like: x, dy.data)
        case .randomFlip, .randomRotation, .randomZoom, .randomTranslation, .randomContrast, .resizeAndCrop:
            throw RuntimeError(node.name, "a trainable layer comes before this \(a.kind.rawValue), and Scion stops the gradient at "
                               + "augmentation layers while augmenting: freeze the layers before it, or train with augmentation off")
        }
    }
}

/// The transforms that move or change pixel values without resampling, for one image with its
/// parameters given (Keras 3's `transform_images`): tests compare each with Keras's output.
enum PixelTransforms {
    /// RandomBrightness: `delta` added to every value, clipped to `range`.
    static func brighten(_ x: RuntimeTensor, into y: inout RuntimeTensor, image: ImageAxes, sample n: Int, delta: Float, range: (Float, Float)) {
        for index in image.range(of: n) { y.data[index] = min(max(x.data[index] + delta, range.0), range.1) }
    }

    /// RandomContrast: each channel's values moved away from (or toward) the channel's mean over the
    /// image by `factor`, clipped to `range`.
    static func contrast(_ x: RuntimeTensor, into y: inout RuntimeTensor, image: ImageAxes, sample n: Int, factor: Float, range: (Float, Float)) {
        for c in 0..<image.channels {
            var sum: Float = 0
            for row in 0..<image.height { for column in 0..<image.width { sum += x.data[image.offset(n, c, row, column)] } }
            let mean = sum / Float(image.height * image.width)
            for row in 0..<image.height {
                for column in 0..<image.width {
                    let index = image.offset(n, c, row, column)
                    y.data[index] = min(max((x.data[index] - mean) * factor + mean, range.0), range.1)
                }
            }
        }
    }

    /// RandomFlip: the image mirrored left-right and/or upside down.
    static func flip(_ x: RuntimeTensor, into y: inout RuntimeTensor, image: ImageAxes, sample n: Int, horizontal: Bool, vertical: Bool) {
        for c in 0..<image.channels {
            for row in 0..<image.height {
                for column in 0..<image.width {
                    let source = image.offset(n, c, vertical ? image.height - 1 - row : row,
                                              horizontal ? image.width - 1 - column : column)
                    y.data[image.offset(n, c, row, column)] = x.data[source]
                }
            }
        }
    }
}

/// One image batch's axes in either layout.
struct ImageAxes {
    let batch: Int, channels: Int, height: Int, width: Int
    let channelsFirst: Bool

    init(_ x: RuntimeTensor, _ layout: Layout, node: String) throws {
        guard x.rank == 4 else { throw RuntimeError(node, "augments images (rank 4) while training, got \(x.shape)") }
        channelsFirst = layout == .channelsFirst
        batch = x.shape[0]
        (channels, height, width) = channelsFirst ? (x.shape[1], x.shape[2], x.shape[3]) : (x.shape[3], x.shape[1], x.shape[2])
    }

    func offset(_ n: Int, _ c: Int, _ row: Int, _ column: Int) -> Int {
        channelsFirst ? ((n * channels + c) * height + row) * width + column : ((n * height + row) * width + column) * channels + c
    }

    /// The indices of image `n`'s values.
    func range(of n: Int) -> Range<Int> { (n * channels * height * width)..<((n + 1) * channels * height * width) }
}

/// A layer's Keras config, read with Keras's defaults.
struct AugmentationSettings {
    let values: [String: Any]

    init(_ a: AugmentationAttributes, node: String) throws {
        guard let data = a.configuration.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuntimeError(node, "has a configuration that is not a JSON object")
        }
        values = object
    }

    func float(_ key: String, _ fallback: Float) -> Float { (values[key] as? NSNumber)?.floatValue ?? fallback }

    func string(_ key: String, _ fallback: String) -> String { values[key] as? String ?? fallback }

    /// Keras's factor convention: one number `f` is `(-f, f)` (`symmetric`) or `(f, f)`; two are
    /// `(lower, upper)`. Nil or absent is `(0, 0)`.
    func range(_ key: String, symmetric: Bool) -> (Float, Float) {
        if let pair = values[key] as? [NSNumber], pair.count == 2 { return (pair[0].floatValue, pair[1].floatValue) }
        guard let single = (values[key] as? NSNumber)?.floatValue else { return (0, 0) }
        return symmetric ? (-abs(single), abs(single)) : (single, single)
    }

    /// `value_range`, Keras's default (0, 255).
    func valueRange() -> (Float, Float) {
        if let pair = values["value_range"] as? [NSNumber], pair.count == 2 { return (pair[0].floatValue, pair[1].floatValue) }
        return (0, 255)
    }
}

extension SplitMix64 {
    /// Standard normal, by Box and Muller.
    mutating func normal() -> Float {
        let u = max(unit(), Float.leastNormalMagnitude), v = unit()
        return (-2 * log(u)).squareRoot() * cos(2 * Float.pi * v)
    }
}
