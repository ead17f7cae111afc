import ArgumentParser
import Foundation
import Scion
import ScionRuntime

/// `scion finetune`'s class names (stored in the written model), input preprocessing (applied to the
/// training and validation arrays) and `--test` set (evaluated on the trained model at the end, as
/// `scion evaluate` would).
struct FinetuneExtras: ParsableArguments {
    @OptionGroup var names: ClassNamesOption

    @OptionGroup var preprocessing: PreprocessOptions

    @Option(help: ArgumentHelp("After training, evaluate the trained model on this .npz (arrays x and y) or folder of class folders "
                               + "of images, as scion evaluate does.", valueName: "file|folder"),
            completion: .file(extensions: ["npz"]))
    var test: String?

    /// The test samples and the mode, checked before training.
    struct Prepared {
        var samples: any SampleSource
        var mode: InputPreprocessing
    }

    /// Stores the class names in `model` (checked against its `classes` output units, 2 for one
    /// unit), preprocesses `inputs` and `validation` in place, and reads the test set, checking its
    /// samples and labels against the model now rather than after training.
    func prepare(_ model: inout Model, classes: Int?, inputs: inout RuntimeTensor, validation: inout TrainingDataOptions.Pair?,
                 file: String, images: ImageFolderOptions) throws -> Prepared? {
        let mode = try prepareModel(&model, classes: classes)
        inputs = try PreprocessOptions.apply(mode, to: inputs, model: model, file: file)
        if let pair = validation {
            validation = (try PreprocessOptions.apply(mode, to: pair.x, model: model, file: file), pair.y)
        }
        return try prepareTest(model, classes: classes, mode: mode, images: images)
    }

    /// Stores the class names in `model` (checked against its `classes` output units, 2 for one
    /// unit) and says which preprocessing the inputs take (a note when the model holds its own).
    func prepareModel(_ model: inout Model, classes: Int?) throws -> InputPreprocessing {
        let classCount = classes.map { $0 == 1 ? 2 : $0 }
        if let given = try names.names() {
            if let classCount, given.count != classCount {
                throw ScionError(file: model.path, "has \(classCount) classes; --class-names gives \(given.count) names")
            }
            model.graph.classNames = given
        }
        let (mode, note) = preprocessing.resolve(for: model)
        if let note, preprocessing.preprocess != nil || mode != .none { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        return mode
    }

    /// The `--test` set, checked against the model now rather than after training: an .npz's
    /// samples and labels, or a folder of class folders (labelled in the model's class-name order
    /// when it has names; streamed when evaluated, as `scion evaluate` reads it).
    func prepareTest(_ model: Model, classes: Int?, mode: InputPreprocessing, images: ImageFolderOptions) throws -> Prepared? {
        guard let test else { return nil }
        let classCount = classes.map { $0 == 1 ? 2 : $0 }
        if ImageFolderOptions.isFolder(test) {
            let folder = try images.samples(at: test, model: model, classNames: model.graph.classNames, requireLabels: true)
            if let classCount, let found = folder.classNames?.count, found > classCount {
                throw ScionError(file: test, "has \(found) class folders; the model has \(classCount) classes")
            }
            return Prepared(samples: folder, mode: mode)
        }
        let samples = try ArraySamples(path: test)
        guard let labels = samples.labels else { throw ScionError(file: test, "has no labels (array y)") }
        try TrainingOptions.checkInputs(samples.inputs, model: model, file: test)
        if let classCount, let bad = labels.firstIndex(where: { Int($0) >= classCount }) {
            throw ScionError(file: test, "\(test)[\(bad)] has label \(Int(labels[bad])); the model has \(classCount) classes (labels 0 to \(classCount - 1))")
        }
        return Prepared(samples: samples, mode: mode)
    }

    /// The trained model scored on the test set.
    func evaluate(_ model: Model, on prepared: Prepared) throws -> Evaluation {
        try EvaluateCommand.evaluate(model, on: prepared.samples, mode: prepared.mode, names: nil, batchSize: 32).evaluation
    }
}
