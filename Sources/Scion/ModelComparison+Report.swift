/// The report a person reads: how the layers were matched and how many values were compared, where
/// the models part (with the layers around it), and each output. Numbers as people read them
/// (`Readable`); the JSON keeps them whole.
extension ModelComparison {
    /// The report as text: around the first divergence, `context` compared pairs before it and at most
    /// `maximum` pairs in all.
    public func text(context: Int = 3, maximum: Int = 12) -> String {
        var lines = inputs.map { ["Inputs: \($0)"] } ?? []
        lines += notes.map { "note: \($0)" }
        lines.append("Layers matched: \(layersMatched) of \(referenceLayers) / \(candidateLayers) (\(matchedByName) by name, "
            + "\(matchedByStructure) by structure); values compared: \(layersCompared); tolerance \(Readable.setting(tolerance)) relative")
        if !unmatchedReference.isEmpty || !unmatchedCandidate.isEmpty {
            func some(_ names: [String]) -> String {
                names.isEmpty ? "" : " (" + names.prefix(5).joined(separator: ", ") + (names.count > 5 ? ", ..." : "") + ")"
            }
            lines.append("Not matched, so not compared: \(unmatchedReference.count) layer(s) of the reference\(some(unmatchedReference)), "
                + "\(unmatchedCandidate.count) of the candidate\(some(unmatchedCandidate))")
        }
        if layersMatched == 0 {
            lines.append("0 layers matched: only outputs compared")
        } else if layersCompared == 0 {
            lines.append("0 layers compared: only outputs compared")
        } else if let firstDivergence, let index = layers.firstIndex(of: firstDivergence) {
            lines.append("First divergence: \(Self.describe(firstDivergence))")
            let start = max(0, index - context)
            for layer in layers[start..<min(layers.count, index + maximum - context)] {
                lines.append("  \(layer.withinTolerance ? " " : "!") \(Self.describe(layer)) \(layer.shape): "
                    + "max |a-b| \(Readable.number(layer.maxAbs)), relative \(Readable.number(layer.maxRel))")
            }
        } else if let worst = layers.max(by: { $0.maxRel < $1.maxRel }) {
            lines.append("No layer diverges among the \(layersCompared) values compared; "
                + (worst.maxRel == 0 ? "all are identical" : "largest relative difference \(Readable.number(worst.maxRel)) at \(Self.describe(worst))"))
        }
        for output in outputs {
            if output.shapesDiffer {
                lines.append("Output \(output.name): output shapes differ: \(output.shape) vs \(output.candidateShape)")
                continue
            }
            var line = "Output \(output.name) \(output.shape): max |a-b| \(Readable.number(output.maxAbs ?? .nan)), "
                + "relative \(Readable.number(output.maxRel ?? .nan))"
            if let agreement = output.argmaxAgreement { line += ", argmax agrees on \(Readable.percent(agreement)) of rows" }
            lines.append(line + (output.withinTolerance ? "" : "  (beyond tolerance)"))
        }
        if !agrees {
            lines.append("The models differ.")
        } else {
            lines.append(layersCompared == 0 ? "The outputs agree within the tolerance; no layer was compared."
                : "The models agree within the tolerance.")
        }
        return lines.joined(separator: "\n")
    }

    /// `block_3_project`, or `block_3_project (= model/block_3_project/Conv2D)` when the candidate's
    /// layer is named otherwise.
    static func describe(_ layer: LayerError) -> String {
        layer.layer == layer.candidateLayer ? layer.layer : "\(layer.layer) (= \(layer.candidateLayer))"
    }
}
