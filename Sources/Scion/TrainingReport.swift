import Foundation

/// The page `scion finetune --report FILE.html` and `scion demo` write: one HTML file, no scripts and
/// nothing fetched. Learning curves (inline SVG, the head and fine-tune phases marked, other runs such
/// as the demo's from-scratch baseline beside them), the settings, and the verification exactly as the
/// terminal reported it (the same `TrainingVerification` values): one row per tensor with its CRC-32
/// before and in each written file, the verdict, and every epoch's metrics.
package struct TrainingReport {
    /// One training run's history: its phases follow each other on the x axis.
    package struct Run {
        package var name: String
        package var history: [FineTuning.EpochRecord]
        package init(name: String, history: [FineTuning.EpochRecord]) {
            self.name = name
            self.history = history
        }
    }

    package var title: String
    package var settings: [(String, String)]
    package var runs: [Run]
    package var verifications: [TrainingVerification]
    /// What the validation curves measure (`796 held-out images`), for the legend.
    package var validationName: String
    /// The verdict lines above the table, one per written file: by default each verification's
    /// summary (the terminal's line); the demo adds its prediction check to each.
    package var verdicts: [(text: String, passed: Bool)]
    /// Inline SVG pictures of the model (TrainingReport+Pictures.swift), shown after the curves.
    package var pictures: [(title: String, svg: String)] = []

    package init(title: String, settings: [(String, String)], runs: [Run], verifications: [TrainingVerification],
                validationName: String = "validation") {
        self.title = title
        self.settings = settings
        self.runs = runs
        self.verifications = verifications
        self.validationName = validationName
        verdicts = verifications.map { ($0.summary, $0.passed) }
    }

    /// Every verification passed (what the page's verdict says).
    package var passed: Bool { verifications.allSatisfy(\.passed) && verdicts.allSatisfy(\.passed) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let style = """
        body{font-family:system-ui,sans-serif;margin:2em auto;max-width:64em;padding:0 1em;color:#222}
        h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
        table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
        td.num{text-align:right;font-variant-numeric:tabular-nums}code,.crc{font-family:ui-monospace,monospace}
        .ok{color:#070}.bad{color:#b00;font-weight:bold}.verdict{padding:.5em .8em;border-radius:4px;margin:.4em 0}
        .verdict.ok{background:#eef8ee}.verdict.bad{background:#fbeaea}.charts{display:flex;flex-wrap:wrap;gap:1em}
        summary{cursor:pointer;margin:.4em 0}
        """

    package func html() -> String {
        var page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>\(Self.escape(title))</title>"
        page += "<style>\(Self.style)</style></head><body><h1>\(Self.escape(title))</h1><table>"
        for (key, value) in settings { page += "<tr><th>\(Self.escape(key))</th><td>\(Self.escape(value))</td></tr>" }
        page += "</table>"
        let charts = lossChart() + accuracyChart()
        if !charts.isEmpty { page += "<h2>Learning curves</h2><div class=\"charts\">\(charts)</div>" }
        page += picturesSection()
        page += verificationSection()
        page += epochTable()
        return page + "</body></html>\n"
    }

    // MARK: curves

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]

    /// The phase boundaries of every run: between the last epoch of one phase and the first of the next.
    var boundaries: [TrainingChart.Boundary] {
        runs.flatMap { run in
            run.history.indices.dropFirst().filter { run.history[$0].phase != run.history[$0 - 1].phase }.map { index in
                TrainingChart.Boundary(x: Double(index) + 0.5, before: run.history[index - 1].phase, after: run.history[index].phase)
            }
        }
    }

    func series(_ training: (FineTuning.EpochRecord) -> Double?, _ validation: (FineTuning.EpochRecord) -> Double?) -> [TrainingChart.Series] {
        runs.enumerated().flatMap { index, run -> [TrainingChart.Series] in
            let color = Self.palette[index % Self.palette.count]
            func points(_ value: (FineTuning.EpochRecord) -> Double?) -> [(Double, Double)] {
                run.history.enumerated().compactMap { epoch, record in value(record).map { (Double(epoch + 1), $0) } }
            }
            let prefix = runs.count > 1 ? "\(run.name): " : ""
            return [TrainingChart.Series(label: prefix + "training", color: color, dashed: true, points: points(training)),
                    TrainingChart.Series(label: prefix + validationName, color: color, dashed: false, points: points(validation))]
                .filter { !$0.points.isEmpty }
        }
    }

    func lossChart() -> String {
        TrainingChart(title: "Loss", yLabel: "loss", series: series(\.loss, \.validationLoss), boundaries: boundaries, yRange: nil).svg()
    }

    func accuracyChart() -> String {
        let series = series(\.accuracy, \.validationAccuracy)
        guard !series.isEmpty else { return "" }
        return TrainingChart(title: "Accuracy", yLabel: "accuracy", series: series, boundaries: boundaries, yRange: 0...1).svg()
    }

    // MARK: verification

    func verificationSection() -> String {
        guard let first = verifications.first else { return "" }
        var page = "<h2>Verification</h2>"
        page += "<p>Each written file was read back and every tensor compared with \(Self.escape(TrainingVerification.name(first.reference))), "
        page += "the model training started from: frozen tensors must be byte-identical, trained ones may differ.</p>"
        for (text, ok) in verdicts {
            page += "<div class=\"verdict \(ok ? "ok" : "bad")\">\(ok ? "✔ verified" : "✘ FAILED"): \(Self.escape(text))</div>"
        }
        let rows = first.tensors.count
        page += "<details\(rows <= 40 || !passed ? " open" : "")><summary>CRC-32 of each tensor (\(first.frozen.count) frozen, "
        page += "\(first.trained.count) trained)</summary><table><tr><th>tensor</th><th>role</th><th>CRC-32 before</th>"
        for verification in verifications { page += "<th>in \(Self.escape(TrainingVerification.name(verification.file)))</th>" }
        page += "<th>result</th></tr>"
        let lookups = verifications.map { Dictionary($0.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }) }
        for tensor in first.tensors {
            let found = lookups.map { $0[tensor.name] }
            page += "<tr><td><code>\(Self.escape(tensor.name))</code></td><td>\(tensor.trained ? "trained" : "frozen")</td>"
            page += "<td class=\"crc\">\(tensor.crc32Before)</td>"
            for entry in found { page += "<td class=\"crc\">\(entry?.crc32After ?? "missing")</td>" }
            page += Self.resultCell(tensor, found.compactMap { $0 }) + "</tr>"
        }
        return page + "</table></details>"
    }

    /// Frozen: identical in every file, else which differ. Trained: how far it moved.
    static func resultCell(_ tensor: TrainingVerification.Tensor, _ entries: [TrainingVerification.Tensor]) -> String {
        if tensor.trained {
            let deltas = entries.compactMap(\.maxAbsDelta)
            let text = deltas.isEmpty ? (entries.allSatisfy(\.identical) ? "unchanged" : "changed")
                : "changed, max |Δ| " + Readable.number(deltas.max() ?? 0)
            return "<td>\(text)</td>"
        }
        if entries.allSatisfy(\.identical) { return "<td class=\"ok\">identical</td>" }
        let delta = entries.compactMap(\.maxAbsDelta).max().map { ", max |Δ| " + Readable.number($0) } ?? ""
        return "<td class=\"bad\">\(entries.contains { $0.crc32After == nil } ? "MISSING" : "DIFFERENT")\(delta)</td>"
    }

    // MARK: epochs

    func epochTable() -> String {
        let count = runs.map(\.history.count).reduce(0, +)
        guard count > 0 else { return "" }
        let hasValidation = runs.contains { $0.history.contains { $0.validationLoss != nil } }
        let hasAccuracy = runs.contains { $0.history.contains { $0.accuracy != nil } }
        func cell(_ value: Double?) -> String { "<td class=\"num\">\(value.map { Readable.number($0) } ?? "")</td>" }
        var page = "<h2>Epochs</h2><details\(count <= 30 ? " open" : "")><summary>\(count) epochs</summary><table><tr>"
        page += (runs.count > 1 ? "<th>run</th>" : "") + "<th>phase</th><th>epoch</th><th>loss</th>"
        if hasAccuracy { page += "<th>accuracy</th>" }
        if hasValidation { page += "<th>val_loss</th>" + (hasAccuracy ? "<th>val_accuracy</th>" : "") }
        page += "<th>time</th></tr>"
        for run in runs {
            for record in run.history {
                page += "<tr>" + (runs.count > 1 ? "<td>\(Self.escape(run.name))</td>" : "")
                page += "<td>\(Self.escape(record.phase))</td><td class=\"num\">\(record.epoch)/\(record.epochs)</td>\(cell(record.loss))"
                if hasAccuracy { page += cell(record.accuracy) }
                if hasValidation { page += cell(record.validationLoss) + (hasAccuracy ? cell(record.validationAccuracy) : "") }
                page += "<td class=\"num\">\(Readable.seconds(record.seconds))</td></tr>"
            }
        }
        return page + "</table></details>"
    }
}
