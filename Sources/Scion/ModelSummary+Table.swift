import Foundation
import ScionIR

/// The human table, in the spirit of Keras's `model.summary()`: where the model comes from, its
/// interface, then its layers; every line within `TextFitting.lineWidth` columns.
extension ModelSummary {
    /// The summary as the text table `scion inspect` prints.
    public func table() -> String {
        var lines = headerLines()
        if weightsOnly {
            lines.append("Weights only: this file has no architecture (saved with save_weights).")
        } else {
            lines.append("")
            lines += TextFitting.render(interfaceRows(), ruled: false, headed: false)
            lines.append("")
            lines += TextFitting.render(layerRows())
        }
        if let weights {
            var rows: [[Cell]] = [["Weight", "Shape", "DType", "Size", "CRC-32", "Trainable"].map(Cell.init)]
            for weight in weights {
                let trainable = weight.trainable.map { $0 ? "yes" : "no" } ?? "?"
                rows.append([Cell(weight.name), Cell(shapeText(weight.shape.map { $0 }, names: nil)), Cell(weight.dtype),
                             Cell(Self.byteText(weight.bytes)), Cell(weight.crc32 ?? "-"), Cell(trainable)])
            }
            lines.append("")
            lines += TextFitting.render(rows)
        }
        lines.append("Total params: \(Readable.grouped(totalParams)) (\(Self.byteText(sizeBytes)))")
        if let trainableParams, let nonTrainableParams, let trainableBytes {
            lines.append("Trainable params: \(Readable.grouped(trainableParams)) (\(Self.byteText(trainableBytes)))")
            lines.append("Non-trainable params: \(Readable.grouped(nonTrainableParams)) (\(Self.byteText(sizeBytes - trainableBytes)))")
        } else {
            lines.append("Trainable params: unknown (the file does not record it)")
        }
        if constants > 0 {
            lines.append("Constants: \(Readable.grouped(constants)) (shape, index and literal values, not counted)")
        }
        return lines.joined(separator: "\n")
    }

    /// The layer table's header and rows, nested models' layers indented under them.
    func layerRows() -> [[Cell]] {
        let dimensionNames = Dictionary(inputs.map { ($0.name, $0.dimensionNames) }, uniquingKeysWith: { first, _ in first })
        var rows: [[Cell]] = [["Layer (type)", "Output Shape", "Param #", "Trainable", "Inputs"].map(Cell.init)]
        func add(_ layer: Layer, depth: Int, scope: String) {
            let params = layer.sharedWith.map { Cell(lead: "shared (", [$0], trail: ")") } ?? Cell(Readable.grouped(layer.params))
            // Inside a nested model its own layers go by the names its rows show; others by full path.
            let inputs = layer.inputs.map { scope.isEmpty || !$0.hasPrefix(scope + "/") ? $0 : String($0.dropFirst(scope.count + 1)) }
            let shape = shapeText(layer.outputShape, names: layer.isInput ? dimensionNames[layer.name] ?? nil : nil)
            rows.append([Cell(lead: String(repeating: "  ", count: depth), [layer.name], trail: " (\(layer.type))"), Cell(shape),
                         params, Cell(layer.isInput ? "" : (layer.trainable ? "yes" : "no")), Cell(inputs)])
            let inner = scope.isEmpty ? layer.name : "\(scope)/\(layer.name)"
            for child in layer.layers ?? [] { add(child, depth: depth + 1, scope: inner) }
        }
        for layer in layers { add(layer, depth: 0, scope: "") }
        return rows
    }

    /// Model name, format and what the file says about its making, one fact a line.
    func headerLines() -> [String] {
        var facts: [(label: String, cell: Cell)] = []
        var format = self.format
        if let irVersion { format += ", IR version \(irVersion)" }
        facts.append(("Format", Cell(format)))
        if let producer {
            var text = [producer.name, producer.version].compactMap { $0 }.joined(separator: " ")
            if let backend { text += ", backend \(backend)" }
            facts.append(("Producer", Cell(text)))
        }
        if let opsets, !opsets.isEmpty {
            facts.append(("Opsets", Cell(opsets.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" })))
        }
        if let classNames {
            facts.append(("Classes", Cell(lead: "\(classNames.count): ", classNames, paths: false)))
        }
        for property in metadata ?? [] {
            facts.append(("Metadata", Cell(lead: "\(property.key) = ", [property.value], paths: false)))
        }
        if let docString {
            let paragraphs = docString.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.allSatisfy(\.isWhitespace) }
            if let first = paragraphs.first {
                facts.append(("Doc", Cell(lead: "", [first], trail: paragraphs.count > 1 ? " (+\(paragraphs.count - 1) lines)" : "", paths: false)))
            }
        }
        let labelWidth = facts.map(\.label.count).max().map { $0 + 3 } ?? 0
        var lines = [TextFitting.elide(TextFitting.printable("Model: \"\(name)\""), to: TextFitting.lineWidth)]
        var previous = ""
        for fact in facts {
            // A label repeated (several metadata entries) is written once, the values aligned under it.
            let label = fact.label == previous ? "" : fact.label + ":"
            previous = fact.label
            lines.append(label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
                         + fact.cell.fitted(to: TextFitting.lineWidth - labelWidth))
        }
        return lines
    }

    /// The model's inputs and outputs: name, dtype, shape, as a caller must feed and read them.
    func interfaceRows() -> [[Cell]] {
        var rows: [[Cell]] = [["", "", "", ""].map(Cell.init)]
        for (kind, tensors) in [("Input", inputs), ("Output", outputs)] {
            for tensor in tensors {
                rows.append([Cell(kind), Cell(tensor.name), Cell(tensor.dtype), Cell(shapeText(tensor.shape, names: tensor.dimensionNames))])
            }
        }
        return rows
    }

    /// `(None, 16, 16, 3)` for Keras; `(batch, 3, 16, 16)` or `(?, 4)` for ONNX, where a dimension the
    /// file names shows its name and an unnamed unknown one shows `?`, as Netron writes them. tf2onnx
    /// names every unknown dimension `unk__N`: such a name says only "unknown", so it shows as `?`.
    func shapeText(_ dimensions: [Int?]?, names: [String?]?) -> String {
        guard let dimensions else { return "?" }
        let unknown = vocabulary == .keras ? "None" : "?"
        let parts = dimensions.enumerated().map { index, dimension -> String in
            if let dimension { return String(dimension) }
            if let name = names.flatMap({ index < $0.count ? $0[index] : nil }), !Self.isPlaceholder(name) { return name }
            return unknown
        }
        return parts.count == 1 ? "(\(parts[0]),)" : "(" + parts.joined(separator: ", ") + ")"
    }

    static func isPlaceholder(_ name: String) -> Bool {
        name.hasPrefix("unk__") && name.dropFirst(5).allSatisfy(\.isNumber) && name.count > 5
    }

    /// `4844` -> `4.73 KB`, in units of 1024 as Keras's summary counts them.
    static func byteText(_ bytes: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
    }
}
