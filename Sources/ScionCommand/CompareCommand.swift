import ArgumentParser
import Foundation
import Scion
import ScionRuntime

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run two models on the same input and find the first layer whose outputs diverge.",
        discussion: """
            Layers are matched by name, then by position and kind where names differ (a Keras model and its \
            tf2onnx or torch export), allowing for folded BatchNormalization, fused activations and NCHW/NHWC \
            layouts. Without --input, both models run on 2 samples drawn at random (seed 0).

            Exit status 0 when every matched layer and output agrees within the tolerance, 3 when they differ \
            (the report says where), 1 on an error.
            """)

    @Argument(help: "The reference model (.h5, .keras, .onnx).", completion: .file(extensions: ["h5", "keras", "onnx"]))
    var reference: String

    @Argument(help: "The model to check against it.", completion: .file(extensions: ["h5", "keras", "onnx"]))
    var candidate: String

    @Option(name: .customLong("input"), help: "A .npy array per model input, or an .npz of them by name (default: random samples).",
            completion: .file(extensions: ["npy", "npz"]))
    var inputs: [String] = []

    @Option(parsing: .unconditional, help: "Largest max|a-b| / max|a| accepted.")
    var tolerance: Double = 1e-4

    @OptionGroup var report: ReportOptions

    func validate() throws {
        guard tolerance.isFinite, tolerance >= 0 else { throw ValidationError("--tolerance must be a finite number, 0 or more") }
    }

    func run() throws {
        BLAS.reexecIfNeeded()
        var agrees = true
        try reportingErrors {
            let reference = try Model.load(self.reference)
            let candidate = try Model.load(self.candidate)
            let arrays: [RuntimeTensor]
            let source: String
            if inputs.isEmpty {
                arrays = try SampleInputs.make(for: reference)
                source = SampleInputs.describe() + ", shape " + arrays.map { "\($0.shape)" }.joined(separator: ", ")
            } else {
                let named = try readInputs(inputs, for: reference.graph.inputs.map(\.name), model: self.reference)
                arrays = reference.graph.inputs.compactMap { named[$0.name] }
                source = inputs.joined(separator: ", ")
            }
            var comparison = try ModelComparison(reference, candidate, inputs: arrays, tolerance: tolerance)
            comparison.inputs = source
            try report.finish(comparison, line: comparison.text(), spellNonFinite: true)
            agrees = comparison.agrees
        }
        if !agrees { throw ExitStatus.differ }
    }
}
