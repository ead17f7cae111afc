import ArgumentParser
import Foundation
import Scion
import ScionPasses

/// Where and how a surgery command writes its result.
struct OutputOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .long], help: "The file to write (.h5, .keras, .onnx); its extension picks the format.")
    var output: String

    @Flag(help: "Replace OUTPUT if it exists.")
    var force = false

    @Option(help: "ONNX: opset to write (13 to 21).")
    var opset: Int64 = 17

    func write(_ model: Model) throws {
        try model.write(to: output, options: Model.WriteOptions(opset: opset, force: force))
    }
}

/// A wrong combination of options: reported like every other error (one line, exit status 1).
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Parses a head specification, reporting mistakes against the option.
func parseHead(_ text: String) throws -> HeadSpec {
    do {
        return try HeadSpec(parsing: text)
    } catch let error as HeadSpecError {
        throw UsageError("--head \(text): \(error)")
    }
}

struct CutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cut",
        abstract: "Keep a layer and all it depends on; its output becomes the model's output.")

    @Argument(help: "The model to read (.h5, .keras, .onnx).")
    var input: String

    @Option(help: "The layer to cut after (full name, nested name, or a unique suffix).")
    var after: String?

    @Flag(help: "Drop the classifier, as keras.applications' include_top=False does.")
    var dropTop = false

    @OptionGroup var destination: OutputOptions

    func run() throws {
        try reportingErrors {
            guard (after != nil) != dropTop else { throw UsageError("cut: give exactly one of --after LAYER or --drop-top") }
            var model = try Model.load(input)
            try model.apply(CutPass(dropTop ? .dropTop : .after(after ?? "")))
            try destination.write(model)
        }
    }
}

struct GraftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "Append new layers with Keras's default initialisers, e.g. --head gap,dropout:0.2,dense:5:softmax.",
        discussion: "Head items: gap, gmp, flatten, dense:UNITS[:ACTIVATION], dropout:RATE, bn, relu, sigmoid, softmax, tanh, swish, gelu (docs/surgery.md).")

    @Argument(help: "The model to read (.h5, .keras, .onnx).")
    var input: String

    @Option(help: "The layers to append, comma-separated.")
    var head: String

    @Option(help: "Graft onto this layer's output instead of the model's output (the rest is cut).")
    var at: String?

    @Option(help: "Seed for the new weights (the same seed gives the same weights).")
    var seed: UInt64?

    @OptionGroup var destination: OutputOptions

    func run() throws {
        try reportingErrors {
            let spec = try parseHead(head)
            var model = try Model.load(input)
            try model.apply(GraftPass(head: spec, at: at, seed: seed))
            try destination.write(model)
        }
    }
}

struct FreezeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freeze",
        abstract: "Mark layers frozen or trainable (moving statistics are never trainable).")

    @Argument(help: "The model to read (.h5, .keras, .onnx).")
    var input: String

    @Option(help: "Freeze this layer and every layer it depends on.")
    var upTo: String?

    @Option(help: "Freeze the layers whose name matches this regular expression.")
    var layers: String?

    @Flag(help: "Freeze every layer.")
    var all = false

    @Option(help: "Make the layers matching this regular expression trainable (applied last).")
    var unfreeze: String?

    @Option(help: "Make the last N layers of the base trainable (the base: every layer before the first trainable one).")
    var unfreezeTop: Int?

    @Flag(help: "With --unfreeze or --unfreeze-top, leave BatchNormalization layers frozen (inference mode), as Keras's guide advises.")
    var keepBatchNormFrozen = false

    @OptionGroup var destination: OutputOptions

    func run() throws {
        try reportingErrors {
            var model = try Model.load(input)
            try model.apply(FreezePass(all: all, upTo: upTo, layers: layers, unfreeze: unfreeze, unfreezeTop: unfreezeTop,
                                       keepBatchNormFrozen: keepBatchNormFrozen))
            try destination.write(model)
        }
    }
}

struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "The transfer-learning recipe in one step: cut, graft a head, freeze the base.")

    @Argument(help: "The model to read (.h5, .keras, .onnx).")
    var input: String

    @Option(help: "Cut after this layer.")
    var cutAfter: String?

    @Flag(help: "Drop the classifier, as keras.applications' include_top=False does.")
    var dropTop = false

    @Option(help: "The layers to append, comma-separated (see `scion graft --help`).")
    var head: String?

    @Option(help: "Freeze this layer and every layer it depends on.")
    var freezeUpTo: String?

    @Flag(help: "Freeze everything but the new head.")
    var freezeBase = false

    @Option(help: "Seed for the new weights.")
    var seed: UInt64?

    @OptionGroup var destination: OutputOptions

    func checkOptions() throws {
        if cutAfter != nil && dropTop { throw UsageError("edit: give at most one of --cut-after LAYER and --drop-top") }
        if freezeUpTo != nil && freezeBase { throw UsageError("edit: give at most one of --freeze-up-to LAYER and --freeze-base") }
        if cutAfter == nil && !dropTop && head == nil && freezeUpTo == nil && !freezeBase {
            throw UsageError("edit: nothing to do; give --cut-after/--drop-top, --head and/or --freeze-up-to/--freeze-base")
        }
    }

    func run() throws {
        try reportingErrors {
            try checkOptions()
            let spec = try head.map(parseHead)
            var model = try Model.load(input)
            var cutPoint = cutAfter
            if dropTop { cutPoint = try model.resolving { try CutPass.dropTopLayer(in: $0) } }
            // The base ends where the head starts: the cut point, or the producer of the output.
            let baseEnd = cutPoint ?? (model.graph.outputs.count == 1
                ? model.graph.nodes.first { $0.outputs.contains(model.graph.outputs[0]) }?.name : nil)
            if let spec {
                // Cutting and grafting in one pass keeps the removed classifier's names out of the head.
                try model.apply(GraftPass(head: spec, at: cutPoint, seed: seed))
            } else if let cutPoint {
                try model.apply(CutPass(.after(cutPoint)))
            }
            if let freezeUpTo { try model.apply(FreezePass(upTo: freezeUpTo)) }
            if freezeBase {
                guard let baseEnd else { throw ScionError(file: input, "--freeze-base needs a model with one output") }
                try model.apply(FreezePass(upTo: baseEnd))
            }
            try destination.write(model)
        }
    }
}

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two models: layers removed, added, changed; weights; trainability.")

    @Argument(help: "The model before (.h5, .keras, .onnx).")
    var before: String

    @Argument(help: "The model after.")
    var after: String

    @Flag(help: "Print one JSON object (removed, added, changed, weightsChanged, trainabilityChanged...).")
    var json = false

    func run() throws {
        try reportingErrors {
            let diff = try ModelDiff(try Model.load(before), try Model.load(after))
            if json {
                try printJSON(diff)
            } else {
                print(diff.text())
            }
        }
    }
}
