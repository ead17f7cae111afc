import Foundation
import Scion
import ScionImages
import ScionRuntime

/// Images as `predict` and `evaluate` samples: one image file; a folder of class sub-folders
/// (labels from the folders, Keras's image_dataset_from_directory rules, or the model's stored
/// class names when it has them); or, for `predict`, a folder without class folders (no labels;
/// listed as Keras's labels=None lists it, with the same link rules as class folders). Decoded and resized to the model's input as `finetune --data DIR` does, streamed: each
/// batch is decoded (in parallel, a few batches ahead) only when `forEachBatch` reaches it, so a
/// folder larger than memory is read in a few batches' worth. Each sample is named by its path.
final class ImageSamples: SampleSource {
    let origin: String
    let listed: [ImageSample]
    let pipeline: ImagePipeline
    let input: ImageFolderOptions.InputGeometry
    let options: ImageFolderOptions
    /// The class folders in label order; nil for unlabelled images.
    let classNames: [String]?
    /// Files the listing or the decoding left out (the decoding's once `forEachBatch` has run).
    private(set) var skipped: [SkippedSample]
    /// The listed images: those that fail to decode are left out of the batches (and counted in `skipped`).
    var count: Int { listed.count }
    var sampleShape: [Int] { input.channelsFirst ? [input.channels, input.height, input.width] : [input.height, input.width, input.channels] }
    var hasLabels: Bool { classNames != nil }

    init(origin: String, listed: [ImageSample], pipeline: ImagePipeline, input: ImageFolderOptions.InputGeometry,
         options: ImageFolderOptions, classNames: [String]?, skipped: [SkippedSample]) {
        self.origin = origin; self.listed = listed; self.pipeline = pipeline; self.input = input
        self.options = options; self.classNames = classNames; self.skipped = skipped
    }

    func batch(_ range: Range<Int>) throws -> SampleBatch {
        var result: SampleBatch?
        try ImageSamples(origin: origin, listed: Array(listed[range]), pipeline: pipeline, input: input, options: options,
                         classNames: classNames, skipped: []).forEachBatch(size: range.count) { result = $0 }
        return result ?? SampleBatch(inputs: RuntimeTensor(shape: [0] + sampleShape, data: []), labels: hasLabels ? [] : nil, names: [])
    }

    func forEachBatch(size: Int, _ body: (SampleBatch) throws -> Void) throws {
        var decoded = 0
        try options.streamBatches(listed, size: size, pipeline: pipeline, input: input) { x, labels, files, failures in
            skipped += failures.map { SkippedSample(name: $0.file, reason: "\($0)") }
            decoded += files.count
            if !files.isEmpty { try body(SampleBatch(inputs: x, labels: hasLabels ? labels : nil, names: files)) }
        }
        guard decoded > 0 else { throw ScionError(file: origin, "holds no image that could be read") }
    }

    /// Whether `path` names images rather than NumPy arrays: a folder, or a file with an image extension.
    static func isImageInput(_ path: String) -> Bool {
        ImageFolderOptions.isFolder(path) || imageExtensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// What Keras's image_dataset_from_directory lists (BMP and GIF are listed, then reported: Scion decodes JPEG and PNG).
    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "bmp", "gif"]
}

extension ImageFolderOptions {
    /// The samples at `path` for `model`; `classNames` (given or stored) fix the label order of a
    /// folder of class folders. `requireLabels` (evaluate) refuses a folder without class folders.
    func samples(at path: String, model: Model, classNames: [String]?, requireLabels: Bool) throws -> ImageSamples {
        let input = try inputGeometry(model, file: path)
        let listed: [ImageSample]
        var problems: [ImageError] = []
        var folderClasses: [String]?
        if !ImageFolderOptions.isFolder(path) {
            listed = [ImageSample(path: path, relativePath: (path as NSString).lastPathComponent, label: 0)]
        } else if ImageFolderIndex.hasClassFolders(path, followLinks: followLinks) || requireLabels {
            let index = try ImageFolderIndex(folder: path, classNames: classNames, followLinks: followLinks)
            (listed, problems, folderClasses) = (index.samples, index.skipped, index.classNames)
        } else {
            (listed, problems) = try ImageFolderIndex.unlabelled(folder: path, followLinks: followLinks)
        }
        guard !listed.isEmpty else { throw ScionError(file: path, "holds no image files (.jpg, .jpeg, .png)") }
        try report(problems)
        return ImageSamples(origin: path, listed: listed, pipeline: pipeline(for: input), input: input, options: self,
                            classNames: folderClasses, skipped: problems.map { SkippedSample(name: $0.file, reason: "\($0)") })
    }
}
