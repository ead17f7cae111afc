import Foundation
import Scion
import ScionImages
import ScionRuntime

/// Images as `predict` and `evaluate` samples: one image file; a folder of class sub-folders
/// (labels from the folders, Keras's image_dataset_from_directory rules, or the model's stored
/// class names when it has them); or, for `predict`, a folder of images without sub-folders (no
/// labels). Decoded and resized to the model's input as `finetune --data DIR` does, all at once in
/// parallel batches; each sample is named by its path.
struct ImageSamples: SampleSource {
    let origin: String
    let inputs: RuntimeTensor
    let labels: [Float]?
    let names: [String]
    let skipped: [SkippedSample]
    /// The class folders in label order; nil for unlabelled images.
    let classNames: [String]?
    var count: Int { names.count }
    var sampleShape: [Int] { Array(inputs.shape.dropFirst()) }
    var hasLabels: Bool { labels != nil }

    func batch(_ range: Range<Int>) throws -> SampleBatch {
        let size = sampleShape.reduce(1, *)
        return SampleBatch(inputs: RuntimeTensor(shape: [range.count] + sampleShape, data: Array(inputs.data[(range.lowerBound * size)..<(range.upperBound * size)])),
                           labels: labels.map { Array($0[range]) }, names: Array(names[range]))
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
        } else if Self.hasSubfolders(path) || requireLabels {
            let index = try ImageFolderIndex(folder: path, classNames: classNames, followLinks: followLinks)
            (listed, problems, folderClasses) = (index.samples, index.skipped, index.classNames)
        } else {
            (listed, problems) = Self.flatImages(in: path)
        }
        guard !listed.isEmpty else { throw ScionError(file: path, "holds no image files (.jpg, .jpeg, .png)") }
        try report(problems)
        let images = try decoded(listed, pipeline: pipeline(for: input), input: input, folder: path)
        return ImageSamples(origin: path, inputs: images.x, labels: folderClasses == nil ? nil : images.labels, names: images.files,
                            skipped: (problems + images.failures).map { SkippedSample(name: $0.file, reason: "\($0)") },
                            classNames: folderClasses)
    }

    /// Whether the folder holds a sub-folder (then it is read as one folder per class).
    static func hasSubfolders(_ path: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return entries.contains { name in
            guard !name.hasPrefix(".") else { return false }
            var isDirectory: ObjCBool = false
            let entry = (path as NSString).appendingPathComponent(name)
            let attributes = try? FileManager.default.attributesOfItem(atPath: entry)
            return attributes?[.type] as? FileAttributeType != .typeSymbolicLink
                && FileManager.default.fileExists(atPath: entry, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    /// The image files directly in `path`, sorted; symbolic links are reported, not followed.
    static func flatImages(in path: String) -> ([ImageSample], [ImageError]) {
        var samples: [ImageSample] = [], problems: [ImageError] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() where !name.hasPrefix(".") {
            guard ImageSamples.imageExtensions.contains((name as NSString).pathExtension.lowercased()) else { continue }
            let entry = (path as NSString).appendingPathComponent(name)
            if let attributes = try? FileManager.default.attributesOfItem(atPath: entry), attributes[.type] as? FileAttributeType == .typeSymbolicLink {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: entry)) ?? "?"
                problems.append(ImageError(file: entry, reason: .symbolicLink(target: target)))
                continue
            }
            samples.append(ImageSample(path: entry, relativePath: name, label: 0))
        }
        return (samples, problems)
    }
}
