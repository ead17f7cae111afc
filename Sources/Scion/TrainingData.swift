import Foundation
import ScionRuntime

/// Inputs and targets for training, from the files users have: an `.npz` with two named arrays, a
/// pair of `.npy` files, or a CSV of numeric columns with one label column. Everything a run would
/// trip over later is checked here first: sample counts, NaN or infinity, non-numeric cells.
public enum TrainingData {
    /// The kinds of file training reads, by extension (any case); each takes different options, so
    /// the command checks them against the format before reading anything.
    package enum Format: String, Sendable {
        case npz, npy, csv

        package init?(path: String) {
            self.init(rawValue: URL(fileURLWithPath: path).pathExtension.lowercased())
        }
    }

    /// `x` and `y` from `path`: `.npz` (arrays `xName`, `yName`), `.npy` with `labels` (the targets'
    /// `.npy`), or `.csv` (label column `labelColumn`, a header name or 0-based index; default the last).
    public static func load(_ path: String, xName: String = "x", yName: String = "y", labels: String? = nil,
                            labelColumn: String? = nil) throws -> (x: RuntimeTensor, y: RuntimeTensor) {
        // Said first and plainly: the readers' own messages ("is not a NumPy .npz archive") mislead here.
        for file in [path] + [labels].compactMap({ $0 }) where !FileManager.default.fileExists(atPath: file) {
            throw ScionError(file: file, "does not exist")
        }
        let pair: (RuntimeTensor, RuntimeTensor)
        switch Format(path: path) {
        case .npz:
            let arrays = try NumpyArchive.read(path)
            guard let x = arrays.first(where: { $0.name == xName })?.tensor, let y = arrays.first(where: { $0.name == yName })?.tensor else {
                throw ScionError(file: path, "needs arrays '\(xName)' and '\(yName)' (has \(arrays.map(\.name).joined(separator: ", ")))")
            }
            pair = (x, y)
        case .npy:
            guard let labels else { throw ScionError(file: path, "an .npy of inputs needs --labels Y.npy for its targets") }
            pair = (try NumpyFile.read(path), try NumpyFile.read(labels))
        case .csv:
            pair = try csv(path, labelColumn: labelColumn)
        case nil:
            throw ScionError(file: path, "is not .npz, .npy or .csv")
        }
        let (x, y) = pair
        guard x.shape.first == y.shape.first, (x.shape.first ?? 0) > 0 else {
            // With two files, say which holds what: either may be the wrong one.
            let targets = labels.map { "\(($0 as NSString).lastPathComponent) has \(y.shape.first ?? 0) targets" } ?? "\(y.shape.first ?? 0) targets"
            throw ScionError(file: path, "has \(x.shape.first ?? 0) input samples and \(targets)")
        }
        if let bad = x.data.firstIndex(where: { !$0.isFinite }) ?? y.data.firstIndex(where: { !$0.isFinite }).map({ $0 + x.count }) {
            throw ScionError(file: path, "holds a NaN or infinity (flat index \(bad) of inputs then targets)")
        }
        return (x, y)
    }

    /// Numeric CSV: an optional header row, one label column, every other column a feature.
    static func csv(_ path: String, labelColumn: String?) throws -> (RuntimeTensor, RuntimeTensor) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ScionError(file: path, "cannot be read as UTF-8 text") }
        // Messages name the line as an editor shows it (blank lines count), so the cell is easy to find.
        var rows = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated().map { index, line in
            (line: index + 1, cells: line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) })
        }.filter { !($0.cells.count == 1 && $0.cells[0].isEmpty) }
        guard let first = rows.first?.cells else { throw ScionError(file: path, "has no rows") }
        var header: [String]?
        if first.contains(where: { Float($0) == nil }) { header = first; rows.removeFirst() }
        guard !rows.isEmpty else { throw ScionError(file: path, "has a header but no data rows") }
        let width = first.count
        let label: Int
        if let labelColumn {
            if let index = Int(labelColumn), (0..<width).contains(index) { label = index } else if let index = header?.firstIndex(of: labelColumn) {
                label = index
            } else {
                let names = header.map { ": " + $0.joined(separator: ", ") } ?? ""
                throw ScionError(file: path, "has no column '\(labelColumn)' (\(width) columns, indices 0 to \(width - 1)\(names))")
            }
        } else {
            label = width - 1
        }
        var features: [Float] = [], targets: [Float] = []
        for (line, row) in rows {
            guard row.count == width else { throw ScionError(file: path, "line \(line) has \(row.count) cells, the first row \(width)") }
            for (column, cell) in row.enumerated() {
                guard let value = Float(cell) else {
                    let name = header.map { " (\($0[column]))" } ?? ""
                    throw ScionError(file: path, "line \(line), column \(column)\(name): '\(cell)' is not a number")
                }
                if column == label { targets.append(value) } else { features.append(value) }
            }
        }
        return (RuntimeTensor(shape: [rows.count, width - 1], data: features), RuntimeTensor(shape: [rows.count], data: targets))
    }
}
