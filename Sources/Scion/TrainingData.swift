import Foundation
import ScionRuntime

/// Inputs and targets for training, from the files users have: an `.npz` with two named arrays, a
/// pair of `.npy` files, or a CSV of numeric columns with one label column. Everything a run would
/// trip over later is checked here first: sample counts, NaN or infinity, non-numeric cells.
public enum TrainingData {
    /// `x` and `y` from `path`: `.npz` (arrays `xName`, `yName`), `.npy` with `labels` (the targets'
    /// `.npy`), or `.csv` (label column `labelColumn`, a header name or 0-based index; default the last).
    public static func load(_ path: String, xName: String = "x", yName: String = "y", labels: String? = nil,
                            labelColumn: String? = nil) throws -> (x: RuntimeTensor, y: RuntimeTensor) {
        let pair: (RuntimeTensor, RuntimeTensor)
        if path.hasSuffix(".npz") {
            let arrays = try NumpyArchive.read(path)
            guard let x = arrays.first(where: { $0.name == xName })?.tensor, let y = arrays.first(where: { $0.name == yName })?.tensor else {
                throw ScionError(file: path, "needs arrays '\(xName)' and '\(yName)' (has \(arrays.map(\.name).joined(separator: ", ")))")
            }
            pair = (x, y)
        } else if path.hasSuffix(".npy") {
            guard let labels else { throw ScionError(file: path, "an .npy of inputs needs --labels Y.npy for its targets") }
            pair = (try NumpyFile.read(path), try NumpyFile.read(labels))
        } else if path.hasSuffix(".csv") {
            pair = try csv(path, labelColumn: labelColumn)
        } else {
            throw ScionError(file: path, "is not .npz, .npy or .csv")
        }
        let (x, y) = pair
        guard x.shape.first == y.shape.first, (x.shape.first ?? 0) > 0 else {
            throw ScionError(file: path, "has \(x.shape.first ?? 0) input samples and \(y.shape.first ?? 0) targets")
        }
        if let bad = x.data.firstIndex(where: { !$0.isFinite }) ?? y.data.firstIndex(where: { !$0.isFinite }).map({ $0 + x.count }) {
            throw ScionError(file: path, "holds a NaN or infinity (flat index \(bad) of inputs then targets)")
        }
        return (x, y)
    }

    /// Numeric CSV: an optional header row, one label column, every other column a feature.
    static func csv(_ path: String, labelColumn: String?) throws -> (RuntimeTensor, RuntimeTensor) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ScionError(file: path, "cannot be read as UTF-8 text") }
        var rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces) } }.filter { !($0.count == 1 && $0[0].isEmpty) }
        guard let first = rows.first else { throw ScionError(file: path, "has no rows") }
        var header: [String]?
        if first.contains(where: { Float($0) == nil }) { header = first; rows.removeFirst() }
        let width = first.count
        let label: Int
        if let labelColumn {
            if let index = Int(labelColumn), (0..<width).contains(index) { label = index } else if let index = header?.firstIndex(of: labelColumn) {
                label = index
            } else {
                throw ScionError(file: path, "has no column '\(labelColumn)' (columns: \((header ?? []).joined(separator: ", ")))")
            }
        } else {
            label = width - 1
        }
        var features: [Float] = [], targets: [Float] = []
        for (number, row) in rows.enumerated() {
            guard row.count == width else { throw ScionError(file: path, "row \(number + 1) has \(row.count) cells, the first \(width)") }
            for (column, cell) in row.enumerated() {
                guard let value = Float(cell) else {
                    throw ScionError(file: path, "row \(number + 1), column \(column + 1): '\(cell)' is not a number")
                }
                if column == label { targets.append(value) } else { features.append(value) }
            }
        }
        return (RuntimeTensor(shape: [rows.count, width - 1], data: features), RuntimeTensor(shape: [rows.count], data: targets))
    }
}
