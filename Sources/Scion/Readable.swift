import Foundation

/// Numbers as people read them, the same everywhere Scion prints one (terminal, JSON-free text,
/// reports): `0.0278`, `1.49e-08`, `25.6M params`, `98 MB`, `0.31 s`. Raw binary expansions of a
/// Float (`0.0010000000474974513`) and Swift's debug spellings never reach a user.
package enum Readable {
    /// A measured value to `digits` significant digits: `0.0278`, `1.49e-08`, `3.5`, `1.2e+03`.
    package static func number(_ value: Double, digits: Int = 3) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return "0" }
        return String(format: "%.\(max(digits, 1))g", value)
    }

    /// A setting the user typed or a default (learning rate, momentum): the shortest spelling that
    /// reads back as the same Float, so `1e-3` prints as `0.001`, never `0.0010000000474974513`.
    package static func setting(_ value: Float) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return "\(value)"
    }

    package static func setting(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        return "\(value)"
    }

    /// A count in a sentence: `812`, `3.5K`, `25.6M`, `1.2B`.
    package static func count(_ value: Int) -> String {
        let magnitude = Double(abs(value))
        for (limit, suffix) in [(1e9, "B"), (1e6, "M"), (1e3, "K")] where magnitude >= limit {
            return (value < 0 ? "-" : "") + trimmed(magnitude / limit) + suffix
        }
        return "\(value)"
    }

    /// A count in a table column: `3,504,872`.
    package static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var result = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(character)
        }
        return (value < 0 ? "-" : "") + result
    }

    /// A size in decimal units as file managers show them: `812 B`, `14.1 KB`, `98.0 MB`, `1.2 GB`.
    package static func bytes(_ value: Int) -> String {
        let size = Double(value)
        for (limit, unit) in [(1e9, "GB"), (1e6, "MB"), (1e3, "KB")] where size >= limit {
            return trimmed(size / limit) + " " + unit
        }
        return "\(value) B"
    }

    /// A duration: `0 s`, `3.2 ms`, `0.31 s`, `12.4 s`, `2 min 05 s` (a short epoch is not `0.00 s`).
    package static func seconds(_ value: Double) -> String {
        guard value.isFinite else { return "-" }
        if value <= 0 { return "0 s" }
        if value < 0.01 { return String(format: "%.1f ms", value * 1000) }
        if value < 10 { return String(format: "%.2f s", value) }
        if value < 60 { return String(format: "%.1f s", value) }
        let whole = Int(value.rounded())
        return String(format: "%d min %02d s", whole / 60, whole % 60)
    }

    /// A fraction as a percentage: `75.0%`.
    package static func percent(_ fraction: Double) -> String {
        fraction.isFinite ? String(format: "%.1f%%", 100 * fraction) : "-"
    }

    /// One decimal below 100 (`25.6`, `3.5`), none above (`812`).
    static func trimmed(_ value: Double) -> String {
        value >= 99.95 ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }
}
