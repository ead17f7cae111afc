import ArgumentParser
import Foundation
import Scion
import ScionRuntime

/// `--preprocess`: keras.applications' input preprocessing, by mode or model family, applied to raw
/// 0-255 arrays before the model sees them (predict, evaluate, finetune).
struct PreprocessOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Preprocess raw 0-255 RGB inputs as keras.applications does: caffe, tf, torch, none, or a family "
                               + "(resnet50, vgg16, mobilenet_v2, inception_v3, xception, densenet, efficientnet, convnext...). "
                               + "Default: none.", valueName: "mode"))
    var preprocess: String?

    func validate() throws {
        if let preprocess, InputPreprocessing(named: preprocess) == nil {
            throw ValidationError("--preprocess \(preprocess): not a mode or family (\(InputPreprocessing.acceptedNames.joined(separator: ", ")))")
        }
    }

    /// The mode to apply to `model`'s inputs, and a note when the model scales its own inputs (then
    /// the default, none, is what it needs; an explicit mode is applied as asked, with a warning).
    func resolve(for model: Model) -> (mode: InputPreprocessing, note: String?) {
        let mode = preprocess.flatMap(InputPreprocessing.init(named:)) ?? .none
        guard let layer = InputPreprocessing.preprocessingLayer(in: model.graph) else { return (mode, nil) }
        if mode == .none {
            return (mode, "the model scales its own inputs (layer '\(layer)'): no preprocessing applied")
        }
        return (mode, "warning: the model scales its own inputs (layer '\(layer)') and --preprocess \(preprocess ?? "") scales them too")
    }

    /// Applies `mode` to `x`, a batch for `model` (channels where its layout puts them).
    static func apply(_ mode: InputPreprocessing, to x: RuntimeTensor, model: Model, file: String) throws -> RuntimeTensor {
        try mode.apply(to: x, channelAxis: InputPreprocessing.channelAxis(of: model.graph, rank: x.rank), what: file)
    }
}

/// `--class-names`: the classes' names in output order, as a comma-separated list or a text file of
/// one name a line.
struct ClassNamesOption: ParsableArguments {
    @Option(help: ArgumentHelp("Class names in output order: a,b,c, or a text file with one name a line.", valueName: "names|file"))
    var classNames: String?

    /// The names, or nil when not given; an empty name or a repeated one is refused.
    func names() throws -> [String]? {
        guard let classNames else { return nil }
        var isDirectory: ObjCBool = false
        let names: [String]
        if FileManager.default.fileExists(atPath: classNames, isDirectory: &isDirectory), !isDirectory.boolValue {
            guard let text = try? String(contentsOfFile: classNames, encoding: .utf8) else {
                throw ScionError(file: classNames, "cannot be read as UTF-8 text (--class-names takes a list or a file of one name a line)")
            }
            names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } else {
            names = classNames.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if names.contains(where: \.isEmpty) { throw UsageError("--class-names \(classNames): a name is empty") }
        }
        guard !names.isEmpty else { throw UsageError("--class-names \(classNames): no names") }
        if let repeated = names.enumerated().first(where: { names[..<$0.offset].contains($0.element) }) {
            throw UsageError("--class-names: '\(repeated.element)' is given twice")
        }
        return names
    }

    /// The class names for `classifier`: these options' names, else the model's stored ones, else
    /// the indices as text. Names that do not match the class count are refused, naming their source.
    func resolve(for classifier: Classifier) throws -> (names: [String], named: Bool) {
        try Self.resolve(try names(), for: classifier)
    }

    /// `resolve(for:)` with the given names (nil: none given).
    static func resolve(_ given: [String]?, for classifier: Classifier) throws -> (names: [String], named: Bool) {
        let count = classifier.classCount
        if let given {
            guard given.count == count else {
                throw ScionError(file: classifier.model.path, "has \(count) classes; --class-names gives \(given.count) names")
            }
            return (given, true)
        }
        if let stored = classifier.model.graph.classNames {
            guard stored.count == count else {
                throw ScionError(file: classifier.model.path, "stores \(stored.count) class names for \(count) classes")
            }
            return (stored, true)
        }
        return ((0..<count).map(String.init), false)
    }
}

/// What `predict` and `evaluate` both read their samples with: the batch size, the preprocessing,
/// the class names and the image options.
struct ClassifierInputOptions: ParsableArguments {
    @Option(help: "Samples run through the model at once.")
    var batchSize: Int = 32

    @OptionGroup var preprocessing: PreprocessOptions

    @OptionGroup var names: ClassNamesOption

    @OptionGroup(title: "Image inputs") var images: ImageFolderOptions

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be 1 or more") }
    }
}
