import ArgumentParser
import Foundation
import Scion
import ScionIR
import ScionPasses

/// `finetune --augment flip,rotate:0.1,zoom:0.1,crop`: Keras's augmentation layers, with Keras's
/// factor meanings and defaults, put in front of the model for training only (see
/// `TrainingAugmentation`); validation and test images are never augmented, and the written model
/// does not hold them unless `--augment-into-model` asks.
struct AugmentOptions: ParsableArguments {
    @Option(help: ArgumentHelp("""
        Augment the training images, in this order, with Keras's layers (comma-separated): \
        flip[:horizontal|vertical|horizontal_and_vertical] (RandomFlip, default both), rotate:F (RandomRotation, \
        F of a full turn either way), zoom:F (RandomZoom, ±F), translate:F (RandomTranslation, ±F of the size), \
        contrast:F (RandomContrast, 1 ± F), brightness:F (RandomBrightness, ±F of 0-255), noise:S (GaussianNoise, \
        stddev S, at most 1 as Keras), crop[:S] (resize to S times the size, default 1.14, then a random crop back). Rotation, zoom \
        and translation fill by reflection, bilinear. Training images only (never validation or test), and not \
        written into the model unless --augment-into-model.
        """, valueName: "list"))
    var augment: String?

    @Flag(help: ArgumentHelp("Write --augment's layers into the model, first after its input, as Keras layers (RandomFlip, ...) "
                             + "that Keras 3 loads (the identity at inference; not with crop, which no Keras layer is)."))
    var augmentIntoModel = false

    func validate() throws {
        let steps = try steps()
        guard augmentIntoModel else { return }
        guard !steps.isEmpty else { throw ValidationError("--augment-into-model writes --augment's layers: give --augment too") }
        if steps.contains(where: { !$0.kind.isKerasLayer }) {
            throw ValidationError("--augment-into-model: crop is Scion's training-only resize and crop, not a Keras layer; "
                                  + "leave it out of --augment or write the model without the layers")
        }
    }

    /// The transforms given, in order; none without --augment.
    func steps() throws -> [TrainingAugmentation.Step] {
        guard let augment else { return [] }
        var steps: [TrainingAugmentation.Step] = []
        for entry in augment.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let step = try Self.step(entry)
            if steps.contains(where: { $0.label == step.label }) {
                throw ValidationError("--augment \(augment): '\(step.label)' is given twice")
            }
            steps.append(step)
        }
        return steps
    }

    static let names = ["flip", "rotate", "zoom", "translate", "contrast", "brightness", "noise", "crop"]

    /// One `name[:value]` entry as a Keras layer config.
    static func step(_ entry: String) throws -> TrainingAugmentation.Step {
        let parts = entry.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0], value = parts.count > 1 ? parts[1] : nil
        func fail(_ reason: String) -> ValidationError { ValidationError("--augment '\(entry)': \(reason)") }
        /// A factor in (0, maximum]; `fallback` when none is given (nil: one is required).
        func factor(_ maximum: Float, _ meaning: String, fallback: Float? = nil, above: Float = 0) throws -> Float {
            guard let value else {
                if let fallback { return fallback }
                throw fail("\(name) needs a factor, e.g. \(name):0.1 (\(meaning))")
            }
            guard let number = Float(value), number > above, number <= maximum else {
                throw fail("the factor must be a number above \(Int(above)) and at most \(Int(maximum)) (\(meaning))")
            }
            return number
        }
        func step(_ kind: AugmentationKind, _ config: [String: Any]) -> TrainingAugmentation.Step {
            let data = (try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])) ?? Data("{}".utf8)
            return TrainingAugmentation.Step(kind: kind, configuration: String(decoding: data, as: UTF8.self), label: name)
        }
        let affine: [String: Any] = ["fill_mode": "reflect", "interpolation": "bilinear", "fill_value": 0.0]
        switch name {
        case "flip":
            let mode = value ?? "horizontal_and_vertical"
            guard ["horizontal", "vertical", "horizontal_and_vertical"].contains(mode) else {
                throw fail("flip's mode is horizontal, vertical or horizontal_and_vertical (Keras's RandomFlip)")
            }
            return step(.randomFlip, ["mode": mode])
        case "rotate":
            let f = try factor(1, "RandomRotation: the angle is drawn from ±factor × 360°")
            return step(.randomRotation, affine.merging(["factor": f]) { $1 })
        case "zoom":
            let f = try factor(1, "RandomZoom: the zoom is drawn from 1 ± factor, the same for height and width")
            return step(.randomZoom, affine.merging(["height_factor": f, "width_factor": NSNull()]) { $1 })
        case "translate":
            let f = try factor(1, "RandomTranslation: each shift is drawn from ±factor of the image's side")
            return step(.randomTranslation, affine.merging(["height_factor": f, "width_factor": f]) { $1 })
        case "contrast":
            let f = try factor(1, "RandomContrast: the contrast is drawn from 1 ± factor")
            // As the pair (f, f): Keras 3's RandomContrast(f) keeps (0, f) and so only raises the
            // contrast, against its own documentation and tf.keras; the pair means 1 ± f in both.
            return step(.randomContrast, ["factor": [f, f], "value_range": [0, 255]])
        case "brightness":
            let f = try factor(1, "RandomBrightness: factor × 255 is added or taken away")
            return step(.randomBrightness, ["factor": f, "value_range": [0, 255]])
        case "noise":
            let f = try factor(1, "GaussianNoise: the standard deviation, in pixel values; Keras takes at most 1")
            return step(.gaussianNoise, ["stddev": f])
        case "crop":
            let scale = try factor(2, "the image is resized to this many times its size, then cropped back at random", fallback: 1.14, above: 1)
            return step(.resizeAndCrop, ["scale": scale, "fill_mode": "nearest", "interpolation": "bilinear"])
        case "":
            throw fail("an empty entry (two commas in a row, or one at an end)")
        default:
            throw fail("unknown transform '\(name)'; the transforms are \(names.joined(separator: ", "))")
        }
    }

    /// `model` with the transforms in front (nothing without --augment); `noAugment` conflicts.
    func prepared(_ model: Model, noAugment: Bool) throws -> Model {
        let steps = try steps()
        guard !steps.isEmpty else { return model }
        if noAugment { throw UsageError("--augment and --no-augment: give one") }
        var model = model
        do {
            try TrainingAugmentation(steps: steps).run(&model.graph)
        } catch let error as PassError {
            throw ScionError(file: model.path, "--augment: \(error.subject): \(error.reason)")
        }
        return model
    }

    /// contrast, brightness and noise assume pixel values 0 to 255 (their value range and scale);
    /// `--preprocess` changes the values before the training graph sees them, so they are refused
    /// with it. The resampling transforms commute with preprocessing's per-channel scale and shift.
    func checkPixelValues(preprocessing mode: InputPreprocessing) throws {
        guard mode != .none else { return }
        let valueTransforms: [AugmentationKind] = [.randomContrast, .randomBrightness, .gaussianNoise]
        guard let step = try steps().first(where: { valueTransforms.contains($0.kind) }) else { return }
        throw UsageError("--augment \(step.label) works on pixel values 0 to 255, and --preprocess \(mode.rawValue) changes them "
                         + "before augmentation: leave \(step.label) out, or give the model its own scaling layer instead of --preprocess")
    }

    /// What will augment the training images, said before training (nil when nothing will), and
    /// the one note when augmentation comes before frozen layers (their features cannot be cached).
    static func describe(_ model: Model, noAugment: Bool) throws -> (line: String?, note: String?) {
        let added = TrainingAugmentation.added(in: model.graph)
        let own = TrainingAugmentation.modelsOwnAugmentation(model.graph)
        guard !added.isEmpty || !own.isEmpty else { return (nil, nil) }
        if noAugment {
            return ("Augmentation off (--no-augment): the model's own \(own.joined(separator: ", ")) pass the images unchanged", nil)
        }
        var parts: [String] = []
        if !added.isEmpty { parts.append("--augment " + added.joined(separator: ", ")) }
        if !own.isEmpty { parts.append("the model's own " + own.joined(separator: ", ")) }
        let line = "Augmenting the training images (a new random transform per image and epoch; validation and test images are not): "
            + parts.joined(separator: "; ")
        let (before, frozen) = try TrainingAugmentation.augmentationBeforeFrozenLayers(model.graph)
        guard !frozen.isEmpty else { return (line, nil) }
        func shown(_ names: [String]) -> String { names.prefix(3).joined(separator: ", ") + (names.count > 3 ? " and \(names.count - 3) more" : "") }
        let note = "note: augmentation (\(shown(before))) transforms the images before frozen layers (\(shown(frozen))): their outputs "
            + "change every epoch, so they run for every batch instead of being cached once per image"
        return (line, note)
    }
}
