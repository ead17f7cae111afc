import Foundation
import ScionRuntime

/// Samples a command reads in batches (`predict`, `evaluate`): inputs in the model's layout, their
/// class labels when the source has them, and a name for each sample that a person can find again
/// (`x.npy[3]`, or an image's path). Arrays are one source; a folder of images is another, decoded
/// batch by batch, which may skip files it cannot read and says which.
public protocol SampleSource {
    /// The file or folder, as messages name it.
    var origin: String { get }
    /// How many samples `batch` serves (skipped ones excluded).
    var count: Int { get }
    /// The shape of one sample.
    var sampleShape: [Int] { get }
    /// Whether every sample has a label.
    var hasLabels: Bool { get }
    /// The samples in `range` (within `0..<count`).
    func batch(_ range: Range<Int>) throws -> SampleBatch
    /// Samples the source could not read, by name with the reason (broken images); empty for arrays.
    /// A streamed source knows them once `forEachBatch` has gone through it.
    var skipped: [SkippedSample] { get }
    /// Every sample in order, `size` at a time (the last batch may be smaller). A streamed source
    /// (a folder of images) decodes each batch only now, so memory holds a few batches, not the data.
    func forEachBatch(size: Int, _ body: (SampleBatch) throws -> Void) throws
}

extension SampleSource {
    /// Batches of `batch(_:)` over `0..<count`: what an in-memory source serves.
    public func forEachBatch(size: Int, _ body: (SampleBatch) throws -> Void) throws {
        for start in stride(from: 0, to: count, by: max(1, size)) {
            try body(try batch(start..<min(start + size, count)))
        }
    }
}

/// A run of samples: `inputs` is `[names.count, sampleShape...]`.
public struct SampleBatch: Sendable {
    /// The samples, first axis the sample.
    public var inputs: RuntimeTensor
    /// Each sample's class label (a class index as stored, or the position of a one-hot row's 1);
    /// nil when the source has none.
    public var labels: [Float]?
    /// Each sample's name.
    public var names: [String]
    /// A batch from its parts.
    public init(inputs: RuntimeTensor, labels: [Float]?, names: [String]) {
        self.inputs = inputs; self.labels = labels; self.names = names
    }
}

/// A sample left out, and why.
public struct SkippedSample: Encodable, Sendable {
    /// The sample's name (a path).
    public var name: String
    /// Why it was left out.
    public var reason: String
    /// A skipped sample.
    public init(name: String, reason: String) { self.name = name; self.reason = reason }
}

/// Samples from NumPy files: an `.npy` of inputs (optionally with an `.npy` of labels), or an `.npz`
/// holding the inputs (array `x`, or its only array) and, when present, labels (array `y`). Sample i
/// is named `FILE[i]`.
public struct ArraySamples: SampleSource {
    public let origin: String
    public let inputs: RuntimeTensor
    /// One label per sample, as `SampleBatch.labels` describes; nil without labels.
    public let labels: [Float]?
    public var skipped: [SkippedSample] { [] }
    public var count: Int { inputs.shape.first ?? 0 }
    public var sampleShape: [Int] { Array(inputs.shape.dropFirst()) }
    public var hasLabels: Bool { labels != nil }

    /// Reads `path` (`.npy` or `.npz`). `xName`/`yName` name the `.npz` arrays; `labelsPath` is an
    /// `.npy` of labels for an `.npy` of inputs. Labels are class indices (`[N]` or `[N, 1]`) or
    /// one-hot rows (`[N, C]`); anything else is refused with the file named.
    public init(path: String, xName: String = "x", yName: String = "y", labelsPath: String? = nil) throws {
        origin = path
        for file in [path] + [labelsPath].compactMap({ $0 }) where !FileManager.default.fileExists(atPath: file) {
            throw ScionError(file: file, "does not exist")
        }
        var x: RuntimeTensor, y: RuntimeTensor?
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "npy":
            x = try NumpyFile.read(path)
            y = try labelsPath.map { try NumpyFile.read($0) }
        case "npz":
            guard labelsPath == nil else { throw ScionError(file: path, "an .npz holds its own labels (array '\(yName)'); --labels is for .npy inputs") }
            let arrays = try NumpyArchive.read(path)
            guard let inputs = arrays.first(where: { $0.name == xName })?.tensor ?? (arrays.count == 1 ? arrays[0].tensor : nil) else {
                throw ScionError(file: path, "has no input array '\(xName)' (arrays: \(arrays.map(\.name).joined(separator: ", ")))")
            }
            x = inputs
            y = arrays.first(where: { $0.name == yName })?.tensor
        default:
            throw ScionError(file: path, "is not an .npy or .npz file")
        }
        guard x.rank >= 1, x.shape[0] > 0 else { throw ScionError(file: path, "holds no samples (shape \(x.shape))") }
        if let bad = x.data.firstIndex(where: { !$0.isFinite }) {
            throw ScionError(file: path, "holds \(x.data[bad]) at flat index \(bad); inputs must be finite")
        }
        inputs = x
        labels = try y.map { try Self.classLabels($0, samples: x.shape[0], file: labelsPath ?? path) }
    }

    /// Class indices from `[N]`, `[N, 1]` or one-hot `[N, C]` targets.
    static func classLabels(_ y: RuntimeTensor, samples: Int, file: String) throws -> [Float] {
        guard y.shape.first == samples else {
            throw ScionError(file: file, "has \(samples) input samples and \(y.shape.first ?? 0) labels")
        }
        if y.rank == 1 || (y.rank == 2 && y.shape[1] == 1) {
            if let bad = y.data.firstIndex(where: { !$0.isFinite || $0 < 0 || $0 != $0.rounded() }) {
                throw ScionError(file: file, "label \(bad) is \(y.data[bad]); labels must be class indices (whole numbers from 0)")
            }
            return y.data
        }
        guard y.rank == 2 else { throw ScionError(file: file, "labels have shape \(y.shape); expected [N] class indices or [N, classes] one-hot rows") }
        let width = y.shape[1]
        return try (0..<samples).map { row in
            let values = y.data[(row * width)..<((row + 1) * width)]
            guard values.allSatisfy({ $0 == 0 || $0 == 1 }), values.filter({ $0 == 1 }).count == 1,
                  let hot = values.firstIndex(of: 1) else {
                throw ScionError(file: file, "label row \(row) is not one-hot (one 1, the rest 0)")
            }
            return Float(hot - row * width)
        }
    }

    public func batch(_ range: Range<Int>) throws -> SampleBatch {
        SampleBatch(inputs: inputs.rows(range), labels: labels.map { Array($0[range]) },
                    names: range.map { "\(origin)[\($0)]" })
    }
}
