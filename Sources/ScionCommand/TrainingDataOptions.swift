import ArgumentParser
import Foundation
import Scion
import ScionRuntime

/// Where `scion finetune` reads its samples, and how. Which options apply depends on the files'
/// formats, all known from the command line, so a flag that would be ignored (`--x` with a CSV) is
/// refused before anything is read.
struct TrainingDataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Training data: an .npz of arrays x and y, an .npy of inputs (with --labels), a numeric .csv, or a folder of images.",
                               valueName: "file"),
            completion: .file(extensions: ["npz", "npy", "csv"]))
    var data: String

    @Option(help: ArgumentHelp("With an .npy of inputs: the .npy of targets.", valueName: "file"), completion: .file(extensions: ["npy"]))
    var labels: String?

    @Option(help: ArgumentHelp("With .csv data: the label column, a header name or 0-based index (default: the last).", valueName: "column"))
    var labelColumn: String?

    @Option(help: ArgumentHelp("Validation data, measured after each epoch: an .npz (same array names) or a .csv (same label column).",
                               valueName: "file"),
            completion: .file(extensions: ["npz", "csv"]))
    var validation: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Hold out this fraction of the training data (its last samples, as Keras does) "
                                                        + "for validation; between 0 and 1.", valueName: "fraction"))
    var validationSplit: Double?

    @Option(help: ArgumentHelp("With .npz data: the name of the input array (default: x).", valueName: "name"))
    var x: String?

    @Option(help: ArgumentHelp("With .npz data: the name of the target array (default: y).", valueName: "name"))
    var y: String?

    func validate() throws {
        if ImageFolderOptions.isFolder(data) { return try validateImageFolder() }
        guard let format = TrainingData.Format(path: data) else {
            throw ValidationError("--data \(data): training data must be an .npz, .npy or .csv file")
        }
        let validationFormat = try validation.map { path -> TrainingData.Format in
            guard let format = TrainingData.Format(path: path), format != .npy else {
                throw ValidationError("--validation \(path): validation data must be an .npz or .csv file")
            }
            return format
        }
        let formats = [format] + [validationFormat].compactMap { $0 }
        if format == .npy && labels == nil { throw ValidationError("--data \(data): an .npy of inputs needs --labels Y.npy for its targets") }
        if format != .npy && labels != nil { throw ValidationError("--labels applies to .npy data, not to \(data)") }
        if let labels, TrainingData.Format(path: labels) != .npy { throw ValidationError("--labels \(labels): targets must be an .npy file") }
        if !formats.contains(.csv) && labelColumn != nil { throw ValidationError("--label-column applies to .csv data, not to \(data)") }
        if !formats.contains(.npz) {
            if x != nil { throw ValidationError("--x applies to .npz data, not to \(data)") }
            if y != nil { throw ValidationError("--y applies to .npz data, not to \(data)") }
        }
        if let validationSplit {
            guard validationSplit > 0 && validationSplit < 1 else {
                throw ValidationError("--validation-split \(Readable.setting(validationSplit)): must be between 0 and 1 (exclusive)")
            }
            if validation != nil { throw ValidationError("give either --validation or --validation-split, not both") }
        }
    }

    /// A folder of images takes none of the array options; its validation data is a folder too.
    func validateImageFolder() throws {
        for (given, option) in [(labels, "--labels"), (labelColumn, "--label-column"), (x, "--x"), (y, "--y")] where given != nil {
            throw ValidationError("\(option) applies to array files, not to the image folder \(data)")
        }
        if let validation, !ImageFolderOptions.isFolder(validation) {
            throw ValidationError("--validation \(validation): with an image folder as --data, validation data must be a folder too")
        }
        if let validationSplit {
            guard validationSplit > 0 && validationSplit < 1 else {
                throw ValidationError("--validation-split \(Readable.setting(validationSplit)): must be between 0 and 1 (exclusive)")
            }
            if validation != nil { throw ValidationError("give either --validation or --validation-split, not both") }
        }
    }

    typealias Pair = (x: RuntimeTensor, y: RuntimeTensor)

    /// The training samples and the validation ones (from --validation, or the last part of the
    /// training data with --validation-split), each checked as it is read.
    func load() throws -> (training: Pair, validation: Pair?) {
        var training = try TrainingData.load(data, xName: x ?? "x", yName: y ?? "y", labels: labels, labelColumn: labelColumn)
        var held = try validation.map { try TrainingData.load($0, xName: x ?? "x", yName: y ?? "y", labelColumn: labelColumn) }
        if let validationSplit {
            let count = training.x.shape[0]
            let heldCount = Int((Double(count) * validationSplit).rounded(.down)), kept = count - heldCount
            guard heldCount > 0, kept > 0 else {
                throw ScionError(file: data, "has \(count) samples: --validation-split \(Readable.setting(validationSplit)) "
                    + "would hold out \(heldCount) and keep \(kept); both need at least one")
            }
            held = (training.x.rows(kept..<count), training.y.rows(kept..<count))
            training = (training.x.rows(0..<kept), training.y.rows(0..<kept))
        }
        return (training, held)
    }

    /// The data as the report describes it.
    var description: String {
        data + (validation.map { ", validation \($0)" } ?? "")
            + (validationSplit.map { ", its last \(Readable.percent($0)) held out for validation" } ?? "")
    }
}
