import Foundation
import ScionIR

/// The human table, in the spirit of Keras's `model.summary()`.
extension ModelSummary {
    public func table() -> String {
        var lines: [String] = []
        var title = "Model: \"\(name)\"  (\(format)"
        if let kerasVersion { title += ", Keras \(kerasVersion)" }
        title += ")"
        lines.append(title)
        if weightsOnly {
            lines.append("Weights only: this file has no architecture (saved with save_weights).")
        } else {
            var rows: [[String]] = [["Layer (type)", "Output Shape", "Param #", "Trainable", "Inputs"]]
            func add(_ layer: Layer, depth: Int) {
                let indent = String(repeating: "  ", count: depth)
                let shape = layer.outputShape.map(Self.shapeText) ?? "?"
                let params = layer.sharedWith.map { "shared (\($0))" } ?? Self.grouped(layer.params)
                let inputs = layer.inputs.count > 3
                    ? layer.inputs.prefix(3).joined(separator: ", ") + ", +\(layer.inputs.count - 3)"
                    : layer.inputs.joined(separator: ", ")
                rows.append(["\(indent)\(layer.name) (\(layer.type))", shape, params,
                             layer.type == "InputLayer" ? "" : (layer.trainable ? "yes" : "no"), inputs])
                for child in layer.layers ?? [] { add(child, depth: depth + 1) }
            }
            for layer in layers { add(layer, depth: 0) }
            lines += Self.render(rows)
        }
        if let weights {
            var rows: [[String]] = [["Weight", "Shape", "DType", "Bytes", "CRC-32", "Trainable"]]
            for weight in weights {
                let trainable = weight.trainable.map { $0 ? "yes" : "no" } ?? "?"
                rows.append([weight.name, Self.shapeText(weight.shape), weight.dtype, Self.grouped(weight.bytes),
                             weight.crc32 ?? "-", trainable])
            }
            lines.append("")
            lines += Self.render(rows)
        }
        lines.append("Total params: \(Self.grouped(totalParams)) (\(Self.byteText(sizeBytes)))")
        if let trainableParams, let nonTrainableParams, let trainableBytes {
            lines.append("Trainable params: \(Self.grouped(trainableParams)) (\(Self.byteText(trainableBytes)))")
            lines.append("Non-trainable params: \(Self.grouped(nonTrainableParams)) (\(Self.byteText(sizeBytes - trainableBytes)))")
        } else {
            lines.append("Trainable params: unknown (the file does not record it)")
        }
        return lines.joined(separator: "\n")
    }

    static func render(_ rows: [[String]]) -> [String] {
        guard let header = rows.first else { return [] }
        var widths = header.map(\.count)
        for row in rows { for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) } }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        var lines = [rule]
        for (index, row) in rows.enumerated() {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            lines.append(cells.joined(separator: "  "))
            if index == 0 { lines.append(rule) }
        }
        lines.append(rule)
        return lines
    }

    static func shapeText(_ shape: [Int?]) -> String { Shape(shape).description }
    static func shapeText(_ shape: [Int]) -> String { Shape(shape.map { $0 }).description }

    /// `1234567` -> `1,234,567`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (offset, character) in digits.enumerated() {
            if offset > 0, (digits.count - offset) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return value < 0 ? "-" + result : result
    }

    static func byteText(_ bytes: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
    }
}
