import CZlib
import Foundation
import ScionIR

/// The page `scion finetune --report DIR` writes: learning curves (inline SVG, no scripts, no network)
/// and the verification table: frozen tensors unchanged (checksums of the file as written), trained
/// ones changed, final metrics, time per epoch.
public struct TrainingReport {
    public struct EpochRow: Sendable {
        public var epoch: Int
        public var loss: Double
        public var accuracy: Double?
        public var validationLoss: Double?
        public var validationAccuracy: Double?
        public var seconds: Double
        public init(epoch: Int, loss: Double, accuracy: Double?, validationLoss: Double?, validationAccuracy: Double?, seconds: Double) {
            self.epoch = epoch; self.loss = loss; self.accuracy = accuracy
            self.validationLoss = validationLoss; self.validationAccuracy = validationAccuracy; self.seconds = seconds
        }
    }

    public var title: String
    public var settings: [(String, String)]
    public var epochs: [EpochRow]
    /// CRC-32 of every frozen tensor, in order, before training and in the written file.
    public var frozenChecksumBefore: String
    public var frozenChecksumAfter: String
    public var frozenCount: Int
    public var diff: ModelDiff

    /// Checksums computed in Keras's layout for both models, so an ONNX output compares with a Keras
    /// input kernel by kernel.
    public init(title: String, settings: [(String, String)], epochs: [EpochRow], before: Model, after: Model, diff: ModelDiff) throws {
        self.title = title
        self.settings = settings
        self.epochs = epochs
        self.diff = diff
        let trained = Set(diff.weightsChanged.map(\.name))
        let a = try ModelDiff.comparable(before), b = try ModelDiff.comparable(after)
        let frozen = a.parameters.all.filter { !$0.trainable && !trained.contains($0.name) && b.parameters[$0.name] != nil }
        frozenCount = frozen.count
        frozenChecksumBefore = try Self.checksum(frozen.map(\.name), in: a)
        frozenChecksumAfter = try Self.checksum(frozen.map(\.name), in: b)
    }

    static func checksum(_ names: [String], in graph: Graph) throws -> String {
        var value: uLong = 0
        for name in names {
            guard let parameter = graph.parameters[name] else { continue }
            let bytes = try parameter.storage.bytes(keep: false)
            value = bytes.withUnsafeBufferPointer { CZlib.crc32(value, $0.baseAddress, uInt($0.count)) }
        }
        return String(format: "%08x", UInt32(truncatingIfNeeded: value))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// A line chart of one or more series over the epochs.
    static func chart(_ title: String, _ series: [(name: String, color: String, values: [Double])]) -> String {
        let (width, height, margin) = (480.0, 220.0, 40.0)
        let all = series.flatMap(\.values).filter(\.isFinite)
        guard let low = all.min(), let high = all.max(), let count = series.map(\.values.count).max(), count > 0 else { return "" }
        let span = high > low ? high - low : 1
        func x(_ index: Int) -> Double { margin + (width - 2 * margin) * (count > 1 ? Double(index) / Double(count - 1) : 0.5) }
        func y(_ value: Double) -> Double { height - margin - (height - 2 * margin) * (value - low) / span }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">"
        svg += "<text x=\"\(margin)\" y=\"20\" font-size=\"14\">\(escape(title))</text>"
        svg += "<line x1=\"\(margin)\" y1=\"\(height - margin)\" x2=\"\(width - margin)\" y2=\"\(height - margin)\" stroke=\"#999\"/>"
        svg += "<text x=\"4\" y=\"\(y(high) + 4)\" font-size=\"11\">\(String(format: "%.3g", high))</text>"
        svg += "<text x=\"4\" y=\"\(y(low) + 4)\" font-size=\"11\">\(String(format: "%.3g", low))</text>"
        svg += "<text x=\"\(width - margin - 40)\" y=\"\(height - 10)\" font-size=\"11\">epoch \(count)</text>"
        for (offset, item) in series.enumerated() where !item.values.isEmpty {
            let points = item.values.enumerated().map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"2\" points=\"\(points)\"/>"
            svg += "<text x=\"\(width - margin - 110)\" y=\"\(40 + 14 * offset)\" font-size=\"11\" fill=\"\(item.color)\">\(escape(item.name))</text>"
        }
        return svg + "</svg>"
    }

    public func html() -> String {
        let losses: [(name: String, color: String, values: [Double])] = [
            ("loss", "#1f77b4", epochs.map(\.loss)), ("val_loss", "#ff7f0e", epochs.compactMap(\.validationLoss))]
        let accuracies: [(name: String, color: String, values: [Double])] = [
            ("accuracy", "#1f77b4", epochs.compactMap(\.accuracy)), ("val_accuracy", "#ff7f0e", epochs.compactMap(\.validationAccuracy))]
        func cell(_ value: Double?) -> String { value.map { String(format: "%.4f", $0) } ?? "" }
        var page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>\(Self.escape(title))</title>"
        page += "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
        page += "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.ok{color:#080}.bad{color:#b00}</style></head><body>"
        page += "<h1>\(Self.escape(title))</h1><table>"
        for (key, value) in settings { page += "<tr><th>\(Self.escape(key))</th><td>\(Self.escape(value))</td></tr>" }
        page += "</table><h2>Learning curves</h2>\(Self.chart("loss", losses))"
        if !accuracies[0].values.isEmpty { page += Self.chart("accuracy", accuracies) }
        let frozenOK = frozenChecksumBefore == frozenChecksumAfter && diff.weightsUnchanged == frozenCount
        page += "<h2>Verification</h2><table><tr><th>check</th><th>result</th></tr>"
        page += "<tr><td>frozen tensors unchanged in the written file (CRC-32 of all \(frozenCount), before / after)</td>"
        page += "<td class=\"\(frozenOK ? "ok" : "bad")\">\(frozenChecksumBefore) / \(frozenChecksumAfter): "
        page += "\(frozenOK ? "identical" : "DIFFERENT")</td></tr>"
        for change in diff.weightsChanged {
            page += "<tr><td>trained: \(Self.escape(change.name))</td><td>changed, max |delta| \(change.maxAbsDelta.map { String(format: "%.4g", $0) } ?? "-")</td></tr>"
        }
        if let last = epochs.last {
            page += "<tr><td>final metrics</td><td>loss \(cell(last.loss)) accuracy \(cell(last.accuracy)) "
            page += "val_loss \(cell(last.validationLoss)) val_accuracy \(cell(last.validationAccuracy))</td></tr>"
        }
        page += "</table><h2>Epochs</h2><table><tr><th>epoch</th><th>loss</th><th>accuracy</th><th>val_loss</th><th>val_accuracy</th><th>seconds</th></tr>"
        for row in epochs {
            page += "<tr><td>\(row.epoch)</td><td>\(cell(row.loss))</td><td>\(cell(row.accuracy))</td><td>\(cell(row.validationLoss))</td>"
            page += "<td>\(cell(row.validationAccuracy))</td><td>\(String(format: "%.3f", row.seconds))</td></tr>"
        }
        return page + "</table></body></html>\n"
    }
}
