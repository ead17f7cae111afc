import ArgumentParser
import Foundation
import Scion
import ScionImages
import ScionRuntime

/// `--data DIR`: a folder of images, one sub-folder per class (Keras's image_dataset_from_directory
/// layout), read with ScionImages: decoded as TensorFlow decodes them, resized to the model's input
/// as Keras resizes, split as Keras splits (docs/images.md).
struct ImageFolderOptions: ParsableArguments {
    @Option(help: ArgumentHelp("With an image folder: how images are resized to the model's input (Keras's interpolation).",
                               valueName: "method"))
    var resize: Interpolation = .bilinear

    @Flag(help: "With an image folder: crop each image to the input's aspect ratio before resizing (Keras's crop_to_aspect_ratio).")
    var cropToAspectRatio = false

    @Option(help: ArgumentHelp("With an image folder: a broken image or a symbolic link is reported and skipped, or ends the run.",
                               valueName: "skip|fail"))
    var onBadImage: BadImagePolicy = .fail

    @Flag(help: "With an image folder: follow symbolic links that stay inside it.")
    var followLinks = false

    @Flag(help: "With an image folder: turn JPEGs as their EXIF orientation says (Keras and TensorFlow do not).")
    var exifOrientation = false

    static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    typealias Pair = (x: RuntimeTensor, y: RuntimeTensor)

    /// Training (and validation) arrays from image folders, in the model's input shape: `data`, split
    /// by Keras's seeded shuffle when `validationSplit` is given, or `validation` (a folder with the same
    /// classes), and the class names in label order (`names` when given, else the sub-folders, sorted).
    /// Every image is decoded now, in parallel batches: the trainer takes arrays.
    func load(data: String, validation: String?, validationSplit: Double?, seed: UInt64, model: Model,
              names: [String]?) throws -> (training: Pair, validation: Pair?, classNames: [String]) {
        let input = try inputGeometry(model, file: data)
        let (training, held, classNames) = try lists(data: data, validation: validation, validationSplit: validationSplit, seed: seed, names: names)
        let pipeline = pipeline(for: input)
        let trainingPair = try arrays(training, pipeline: pipeline, input: input, folder: data)
        return (trainingPair, try held.map { try arrays($0, pipeline: pipeline, input: input, folder: validation ?? data) }, classNames)
    }

    struct InputGeometry {
        var height: Int, width: Int, channels: Int
        var channelsFirst: Bool
    }

    /// The image size and channel count the model's first input takes, NHWC or NCHW: the axis of 1, 3
    /// or 4 says which (a Keras model converted to ONNX keeps its NHWC input; a PyTorch export takes
    /// NCHW); when both could be, the graph's layout decides.
    func inputGeometry(_ model: Model, file: String) throws -> InputGeometry {
        guard let input = model.graph.inputs.first, let dimensions = input.shape?.dimensions, dimensions.count == 4 else {
            throw ScionError(file: file, "is a folder of images, but the model's input is not an image batch (rank 4)")
        }
        func isChannelCount(_ dimension: Int?) -> Bool { dimension.map { [1, 3, 4].contains($0) } ?? false }
        let channelsFirst = isChannelCount(dimensions[1]) && (!isChannelCount(dimensions[3]) || model.graph.layout == .channelsFirst)
        let (height, width, channels) = channelsFirst ? (dimensions[2], dimensions[3], dimensions[1]) : (dimensions[1], dimensions[2], dimensions[3])
        guard let height, let width, let channels, [1, 3, 4].contains(channels) else {
            throw ScionError(file: file, "is a folder of images, but the model's input '\(input.name)' has shape "
                + "\(dimensions.map { $0.map(String.init) ?? "?" }): a fixed height, width and 1, 3 or 4 channels are needed")
        }
        return InputGeometry(height: height, width: width, channels: channels, channelsFirst: channelsFirst)
    }

    /// Decoding and resizing to the model's input, as these options say, in its layout; `transform`
    /// (preprocessing) runs on each image as it is decoded.
    func pipeline(for input: InputGeometry, transform: PixelTransform? = nil) -> ImagePipeline {
        ImagePipeline(decode: DecodeOptions(channels: input.channels, applyEXIFOrientation: exifOrientation),
                      resize: ResizeOptions(height: input.height, width: input.width, interpolation: resize, cropToAspectRatio: cropToAspectRatio),
                      transform: transform, channelsFirst: input.channelsFirst)
    }

    /// Images in the model's layout: what the pipeline's batches hold.
    static func shape(_ count: Int, _ input: InputGeometry) -> [Int] {
        input.channelsFirst ? [count, input.channels, input.height, input.width] : [count, input.height, input.width, input.channels]
    }

    /// A broken or skipped file: the run ends on the first (`--on-bad-image fail`), or each is a warning.
    func report(_ problems: [ImageError]) throws {
        guard let first = problems.first else { return }
        if onBadImage == .fail { throw BadImage(error: first) }
        for problem in problems { FileHandle.standardError.write(Data("warning: \(problem) (skipped)\n".utf8)) }
    }

    private func arrays(_ samples: [ImageSample], pipeline: ImagePipeline, input: InputGeometry, folder: String) throws -> Pair {
        let images = try decoded(samples, pipeline: pipeline, input: input, folder: folder)
        return (images.x, RuntimeTensor(shape: [images.labels.count], data: images.labels))
    }

    /// The samples decoded in parallel batches into one tensor in the model's layout, with each
    /// image's label and path; a file that cannot be decoded is reported (`report`) and left out.
    func decoded(_ samples: [ImageSample], pipeline: ImagePipeline, input: InputGeometry,
                 folder: String) throws -> (x: RuntimeTensor, labels: [Float], files: [String], failures: [ImageError]) {
        let stream = ImageBatches(samples: samples, batchSize: 64, pipeline: pipeline, policy: onBadImage).makeStream()
        let all: (pixels: [Float], labels: [Float], files: [String], failures: [ImageError])
        do {
            all = try Self.decodeAll(stream, count: samples.count * pipeline.valuesPerImage, stopAtFailure: onBadImage == .fail)
        } catch {
            throw BadImage(error: error)
        }
        try report(all.failures)
        guard !all.labels.isEmpty else { throw ScionError(file: folder, "holds no image that could be read") }
        return (RuntimeTensor(shape: Self.shape(all.labels.count, input), data: all.pixels), all.labels, all.files, all.failures)
    }

    /// Every batch of the stream joined (up to the first failing one with `stopAtFailure`).
    private static func decodeAll(_ stream: ImageBatchStream, count: Int,
                                  stopAtFailure: Bool) throws(ImageError) -> (pixels: [Float], labels: [Float], files: [String], failures: [ImageError]) {
        var pixels: [Float] = [], labels: [Float] = [], files: [String] = [], failures: [ImageError] = []
        pixels.reserveCapacity(count)
        while var batch = try stream.next() {
            failures += batch.failures
            let batchPixels = batch.pixels
            batch.pixels = []
            pixels += batchPixels
            stream.recycle(consume batchPixels)
            labels += batch.labels.map(Float.init)
            files += batch.files
            if stopAtFailure && !failures.isEmpty { break }
        }
        return (pixels, labels, files, failures)
    }

    /// `samples` decoded `size` at a time (a few batches ahead, in the background) and handed to
    /// `body` in the model's layout with their labels and paths; the failures of each batch are
    /// reported (`report`: a warning, or the end of the run) before the batch is handed on.
    func streamBatches(_ samples: [ImageSample], size: Int, pipeline: ImagePipeline, input: InputGeometry, reporting: Bool = true,
                       _ body: (_ x: RuntimeTensor, _ labels: [Float], _ files: [String], _ failures: [ImageError]) throws -> Void) throws {
        let stream = ImageBatches(samples: samples, batchSize: size, pipeline: pipeline, policy: onBadImage).makeStream()
        while true {
            let next: ImageBatch?
            do { next = try stream.next() } catch { throw BadImage(error: error) }
            guard var batch = next else { break }
            if reporting { try report(batch.failures) }
            let pixels = batch.pixels
            batch.pixels = []
            try body(RuntimeTensor(shape: Self.shape(batch.count, input), data: pixels), batch.labels.map(Float.init), batch.files, batch.failures)
            // The tensor is gone (unless `body` kept it: then the stream copies rather than overwrite it).
            stream.recycle(consume pixels)
        }
    }

    /// A bad image ends the run: the one line names it, with a hint when skipping was possible.
    struct BadImage: Error, CustomStringConvertible {
        var error: ImageError
        var description: String { "\(error) (--on-bad-image skip leaves such files out)" }
    }
}

extension Interpolation: ExpressibleByArgument {}
extension BadImagePolicy: ExpressibleByArgument {}
