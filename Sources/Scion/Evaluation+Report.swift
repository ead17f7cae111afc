import Foundation

/// How an evaluation reads: the terminal's text (summary, per-class table, confusion matrix) and the
/// `--report` page, whose confusion-matrix heat map is hand-written SVG (valid XML on its own, so it
/// is also written as a file of its own).
extension Evaluation {
    /// The summary lines, the per-class table and the confusion matrix as text.
    public func text() -> String {
        var lines = ["samples: \(samples)" + (skipped > 0 ? " (\(skipped) skipped)" : ""),
                     "loss: \(Self.format(loss)) (\(lossFunction))",
                     "accuracy: \(Self.format(accuracy))"]
        if let top5Accuracy { lines.append("top-5 accuracy: \(Self.format(top5Accuracy))") }
        lines.append("")
        let header = ["class", "precision", "recall", "f1", "support"]
        let rows = perClass.map { [Self.printable($0.class), Self.format($0.precision), Self.format($0.recall), Self.format($0.f1), "\($0.support)"] }
        lines += Self.table([header] + rows, rightAligned: 1...4)
        lines.append("")
        guard classes.count <= Self.largestTextMatrix else {
            lines.append("confusion matrix: \(classes.count) classes, too wide for a terminal (see --json or --report)")
            return lines.joined(separator: "\n")
        }
        lines.append("confusion matrix (rows: true class, columns: predicted)")
        let labels = classes.map(Self.printable)
        let matrixRows = confusionMatrix.enumerated().map { [labels[$0.offset]] + $0.element.map(String.init) }
        lines += Self.table([[""] + labels] + matrixRows, rightAligned: 1...max(1, classes.count))
        return lines.joined(separator: "\n")
    }

    /// The most classes whose confusion matrix is printed as text, and drawn as a heat map (a cell
    /// per pair: 200 classes make 40,000 cells, a few megabytes of SVG).
    static let largestTextMatrix = 30, largestHeatMap = 200

    /// Columns padded to their widest cell; `rightAligned` columns (numbers) padded on the left.
    static func table(_ rows: [[String]], rightAligned: ClosedRange<Int>) -> [String] {
        let widths = (0..<(rows.map(\.count).max() ?? 0)).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }.joined(separator: "  ").replacingOccurrences(of: " +$", with: "", options: .regularExpression)
        }
    }

    static func format(_ value: Double) -> String { String(format: "%.4f", value) }

    /// A class name safe for a terminal: control characters shown as `?`.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
    }

    /// `text` for XML and HTML: markup characters escaped, characters XML 1.0 forbids (controls
    /// other than tab and newline) replaced by U+FFFD.
    public static func xmlEscaped(_ text: String) -> String {
        Markup.escaped(text) { scalar in
            scalar == "\t" || scalar == "\n" || !(scalar.value < 0x20 || (0xFFFE...0xFFFF).contains(scalar.value))
        }
    }

    /// The confusion matrix as an SVG heat map: each cell's colour is its share of its row (the true
    /// class), its count written in it, class names on both axes.
    public func confusionMatrixSVG() -> String {
        let count = classes.count
        let cell = count > 20 ? 18 : 40
        let margin = 12 + min(24, classes.map(\.count).max() ?? 1) * 7
        let size = margin + count * cell + 10
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(size)\" height=\"\(size + 20)\" "
            + "viewBox=\"0 0 \(size) \(size + 20)\" font-family=\"sans-serif\" font-size=\"11\">"
        svg += "<title>Confusion matrix: rows are true classes, columns predicted classes</title>"
        guard count <= Self.largestHeatMap else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"30\" font-family=\"sans-serif\" font-size=\"12\">"
                + "<text x=\"4\" y=\"18\">\(count) classes: more than \(Self.largestHeatMap), not drawn (the matrix is in --json)</text></svg>"
        }
        svg += "<text x=\"\(margin)\" y=\"\(size + 14)\">predicted class →</text>"
        for (row, counts) in confusionMatrix.enumerated() {
            let total = max(counts.reduce(0, +), 1)
            for (column, value) in counts.enumerated() {
                let share = Double(value) / Double(total)
                // White to deep blue by share; the count in white once the cell is dark.
                let red = Int(255 - share * 222), green = Int(255 - share * 160), blue = Int(255 - share * 75)
                let x = margin + column * cell, y = margin + row * cell
                svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"rgb(\(red),\(green),\(blue))\" stroke=\"#ccc\">"
                svg += "<title>true \(Self.xmlEscaped(classes[row])), predicted \(Self.xmlEscaped(classes[column])): \(value)</title></rect>"
                if cell >= 30 {
                    svg += "<text x=\"\(x + cell / 2)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"middle\" fill=\"\(share > 0.5 ? "#fff" : "#222")\">\(value)</text>"
                }
            }
        }
        for (index, name) in classes.enumerated() {
            let label = Self.xmlEscaped(name.count > 24 ? String(name.prefix(23)) + "…" : name)
            let middle = margin + index * cell + cell / 2
            svg += "<text x=\"\(margin - 4)\" y=\"\(middle + 4)\" text-anchor=\"end\">\(label)</text>"
            svg += "<text transform=\"translate(\(middle + 4),\(margin - 4)) rotate(-90)\">\(label)</text>"
        }
        return svg + "</svg>"
    }

    /// The report page: settings, the summary, the per-class table, the heat map inline.
    public func html(title: String, settings: [(String, String)]) -> String {
        let e = Self.xmlEscaped
        var page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>\(e(title))</title><style>"
        page += "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:64em;padding:0 1em;color:#222}"
        page += "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        page += "td.num{text-align:right;font-variant-numeric:tabular-nums}</style></head><body><h1>\(e(title))</h1><table>"
        var facts = settings + [("samples", "\(samples)" + (skipped > 0 ? " (\(skipped) skipped)" : "")),
                                ("loss", "\(Self.format(loss)) (\(lossFunction))"), ("accuracy", Self.format(accuracy))]
        if let top5Accuracy { facts.append(("top-5 accuracy", Self.format(top5Accuracy))) }
        for (key, value) in facts { page += "<tr><th>\(e(key))</th><td>\(e(value))</td></tr>" }
        page += "</table><h2>Per class</h2><table><tr><th>class</th><th>index</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
        for scores in perClass {
            page += "<tr><td>\(e(scores.class))</td><td class=\"num\">\(scores.index)</td><td class=\"num\">\(Self.format(scores.precision))</td>"
                + "<td class=\"num\">\(Self.format(scores.recall))</td><td class=\"num\">\(Self.format(scores.f1))</td>"
                + "<td class=\"num\">\(scores.support)</td></tr>"
        }
        page += "</table><h2>Confusion matrix</h2><p>Rows are the true classes, columns the predicted ones; a cell's colour is its share "
            + "of its row.</p>" + confusionMatrixSVG() + "</body></html>\n"
        return page
    }
}
