import Foundation
import Scion
import ScionImages
import ScionRuntime

/// A folder's images as training samples that are never all in memory: each pass decodes them in
/// order, a few batches ahead and in parallel, each image preprocessed by the task that decoded it; an epoch's
/// shuffled rows are decoded again only when the trainer keeps neither features nor pixels
/// (`Trainer.features(streaming:)`). Images that fail to decode (`--on-bad-image skip`) are left
/// out from the first pass on; the warnings are printed once.
final class StreamedImages: StreamedSamples, @unchecked Sendable {
    let folder: String
    let samples: [ImageSample]
    let options: ImageFolderOptions
    let pipeline: ImagePipeline
    let input: ImageFolderOptions.InputGeometry
    let mode: InputPreprocessing
    /// What is left to apply to each batch: none when the decoding tasks preprocess each image.
    let batchMode: InputPreprocessing
    let model: Model
    /// Indices in `samples` of the images the last full pass decoded.
    private var kept: [Int]
    private var reported = false
    private let indexOfPath: [String: Int]

    init(folder: String, samples: [ImageSample], options: ImageFolderOptions, input: ImageFolderOptions.InputGeometry,
         mode: InputPreprocessing, model: Model) {
        self.folder = folder; self.samples = samples; self.options = options; self.input = input
        self.mode = mode; self.model = model
        // Preprocessing each image as it is decoded (in parallel, in place) gives the same bits as a
        // pass over the batch; done so whenever the mode's channel axis is the batch's. A mode the
        // input cannot take (caffe on gray images) stays on the batch, which reports it.
        let channelAxis = InputPreprocessing.channelAxis(of: model.graph, rank: 4)
        let perImage = mode != .none && (mode == .tf || input.channels == 3) && channelAxis == (input.channelsFirst ? 1 : 3)
        let channels = input.channels
        let preprocess: PixelTransform = { pixels in mode.applyInPlace(channelsLast: pixels, channels: channels) }
        pipeline = options.pipeline(for: input, transform: perImage ? preprocess : nil)
        batchMode = perImage ? .none : mode
        kept = Array(samples.indices)
        indexOfPath = Dictionary(samples.enumerated().map { ($1.path, $0) }, uniquingKeysWith: { first, _ in first })
    }

    var listedCount: Int { samples.count }
    var keptCount: Int { kept.count }
    var sampleShape: [Int] { input.channelsFirst ? [input.channels, input.height, input.width] : [input.height, input.width, input.channels] }
    /// Every listed label: what `checkTargets` sees before any image is decoded.
    var listedTargets: RuntimeTensor { RuntimeTensor(shape: [samples.count], data: samples.map { Float($0.label) }) }
    var targets: RuntimeTensor { RuntimeTensor(shape: [kept.count], data: kept.map { Float(samples[$0].label) }) }

    func forEachBatch(size: Int, _ body: (RuntimeTensor) throws -> Void) throws {
        var keptNow: [Int] = []
        try options.streamBatches(samples, size: size, pipeline: pipeline, input: input, reporting: !reported) { x, _, files, _ in
            keptNow += files.compactMap { indexOfPath[$0] }
            try body(try PreprocessOptions.apply(batchMode, to: x, model: model, file: folder))
        }
        reported = true
        kept = keptNow
        guard !kept.isEmpty else { throw ScionError(file: folder, "holds no image that could be read") }
    }

    func rows(_ rows: [Int]) throws -> RuntimeTensor {
        let chosen = rows.map { samples[kept[$0]] }
        let batch: ImageBatch
        do {
            batch = try ImageBatches(samples: chosen, batchSize: max(1, chosen.count), pipeline: pipeline, policy: .fail).batch(0)
        } catch {
            throw ImageFolderOptions.BadImage(error: error)
        }
        let x = RuntimeTensor(shape: ImageFolderOptions.shape(batch.count, input), data: batch.pixels)
        return try PreprocessOptions.apply(batchMode, to: x, model: model, file: folder)
    }
}

extension ImageFolderOptions {
    /// The training and validation image lists (`--validation-split` by Keras's seeded shuffle, or
    /// the `--validation` folder) and the class names in label order, nothing decoded yet.
    func lists(data: String, validation: String?, validationSplit: Double?, seed: UInt64,
               names: [String]?) throws -> (training: [ImageSample], validation: [ImageSample]?, classNames: [String]) {
        let index = try ImageFolderIndex(folder: data, classNames: names, followLinks: followLinks)
        try report(index.skipped)
        var training = index.samples, held: [ImageSample]?
        if let validationSplit {
            guard let keyed = UInt32(exactly: seed) else {
                throw ScionError(file: data, "--seed \(seed): a validation split shuffles as numpy's RandomState, whose seeds end at \(UInt32.max)")
            }
            (training, held) = try index.split(validationFraction: validationSplit, seed: keyed)
        } else if let validation {
            let other = try ImageFolderIndex(folder: validation, classNames: index.classNames, followLinks: followLinks)
            try report(other.skipped)
            held = other.samples
        }
        return (training, held, index.classNames)
    }
}
