import Foundation

/// A line chart of learning curves as inline SVG: epochs on x, a metric on y, both axes with ticks at
/// round values and a label, a dashed vertical line where a phase starts, and a legend below.
struct TrainingChart {
    struct Series {
        var label: String
        var color: String
        /// Training curves dashed, validation solid: the validation curve is the one that matters.
        var dashed: Bool
        var points: [(Double, Double)]
    }

    /// Where one phase ends and the next starts (between two epochs), named on either side.
    struct Boundary {
        var x: Double
        var before: String
        var after: String
    }

    var title: String
    var yLabel: String
    var series: [Series]
    var boundaries: [Boundary]
    /// Fixed range (accuracy: 0 to 1); nil for 0 up to the largest value.
    var yRange: ClosedRange<Double>?

    static let (width, plotHeight) = (470.0, 230.0)
    static let (left, right, top) = (58.0, 14.0, 44.0)
    static let legendRow = 16.0

    /// Round tick values covering `low...high`, about `count` of them: steps of 1, 2 or 5 times a power of ten.
    static func ticks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
        guard high > low, low.isFinite, high.isFinite else { return [low] }
        let raw = (high - low) / Double(max(count, 1))
        let power = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        var values: [Double] = []
        var value = (low / step).rounded(.up) * step
        while value <= high + step * 1e-9 {
            values.append(abs(value) < step * 1e-9 ? 0 : value)
            value += step
        }
        return values
    }

    /// The smallest round value at or above `value` (1, 2, 2.5, 5 times a power of ten).
    static func roundUp(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        let power = pow(10, floor(log10(value)))
        return [1.0, 2, 2.5, 5, 10].map { $0 * power }.first { $0 >= value * (1 - 1e-12) } ?? 10 * power
    }

    static func number(_ value: Double) -> String { Readable.number(value, digits: 4) }

    func svg() -> String {
        let values = series.flatMap { $0.points.map(\.1) }.filter(\.isFinite)
        let epochs = series.flatMap { $0.points.map(\.0) }.max() ?? 1
        guard !values.isEmpty else { return "" }
        let range = yRange ?? 0...Self.roundUp(values.max() ?? 1)
        let (width, height) = (Self.width, Self.plotHeight)
        let plotRight = width - Self.right, plotBottom = Self.top + height
        let legendRows = (series.count + 1) / 2
        let total = plotBottom + 44 + Double(legendRows) * Self.legendRow
        func x(_ epoch: Double) -> Double { Self.left + (plotRight - Self.left) * epoch / max(epochs, 1) }
        func y(_ value: Double) -> Double {
            plotBottom - height * (min(max(value, range.lowerBound), range.upperBound) - range.lowerBound) / (range.upperBound - range.lowerBound)
        }
        func f(_ value: Double) -> String { String(format: "%.1f", value) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(total))\" role=\"img\" "
        svg += "aria-label=\"\(TrainingReport.escape(title))\" font-family=\"system-ui,sans-serif\" font-size=\"11\">"
        svg += "<text x=\"\(f(Self.left))\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(TrainingReport.escape(title))</text>"
        // Horizontal grid lines with the y ticks, then the x ticks (whole epochs).
        for tick in Self.ticks(range.lowerBound, range.upperBound) {
            svg += "<line x1=\"\(f(Self.left))\" y1=\"\(f(y(tick)))\" x2=\"\(f(plotRight))\" y2=\"\(f(y(tick)))\" stroke=\"#e4e4e4\"/>"
            svg += "<text x=\"\(f(Self.left - 6))\" y=\"\(f(y(tick) + 4))\" text-anchor=\"end\">\(Self.number(tick))</text>"
        }
        for tick in Self.ticks(0, epochs).filter({ $0 == $0.rounded() }) {
            svg += "<line x1=\"\(f(x(tick)))\" y1=\"\(f(plotBottom))\" x2=\"\(f(x(tick)))\" y2=\"\(f(plotBottom + 4))\" stroke=\"#666\"/>"
            svg += "<text x=\"\(f(x(tick)))\" y=\"\(f(plotBottom + 16))\" text-anchor=\"middle\">\(Int(tick))</text>"
        }
        let axes = "\(f(Self.left)),\(f(Self.top)) \(f(Self.left)),\(f(plotBottom)) \(f(plotRight)),\(f(plotBottom))"
        svg += "<polyline fill=\"none\" stroke=\"#666\" points=\"\(axes)\"/>"
        svg += "<text x=\"\(f((Self.left + plotRight) / 2))\" y=\"\(f(plotBottom + 32))\" text-anchor=\"middle\">epoch</text>"
        svg += "<text transform=\"translate(14 \(f(Self.top + height / 2))) rotate(-90)\" text-anchor=\"middle\">\(TrainingReport.escape(yLabel))</text>"
        for boundary in boundaries {
            svg += "<line x1=\"\(f(x(boundary.x)))\" y1=\"\(f(Self.top))\" x2=\"\(f(x(boundary.x)))\" y2=\"\(f(plotBottom))\" "
            svg += "stroke=\"#555\" stroke-dasharray=\"2,3\"/>"
            // Above the plot area, where no curve can hide it.
            svg += "<text x=\"\(f(x(boundary.x) - 4))\" y=\"\(f(Self.top - 6))\" text-anchor=\"end\" fill=\"#444\">"
            svg += "← \(TrainingReport.escape(boundary.before))</text>"
            svg += "<text x=\"\(f(x(boundary.x) + 4))\" y=\"\(f(Self.top - 6))\" fill=\"#444\">\(TrainingReport.escape(boundary.after)) →</text>"
        }
        for item in series {
            let points = item.points.filter { $0.1.isFinite }.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"1.8\"\(item.dashed ? " stroke-dasharray=\"5,3\"" : "") "
            svg += "points=\"\(points)\"/>"
            // Few points (a run validated every 10 epochs): dots show where the measurements are.
            if item.points.count <= 12 {
                for (px, py) in item.points where py.isFinite {
                    svg += "<circle cx=\"\(f(x(px)))\" cy=\"\(f(y(py)))\" r=\"2.5\" fill=\"\(item.color)\"/>"
                }
            }
        }
        // The legend: two columns under the x axis label.
        for (index, item) in series.enumerated() {
            let column = Double(index % 2), row = Double(index / 2)
            let lx = Self.left + column * 205, ly = plotBottom + 50 + row * Self.legendRow
            svg += "<line x1=\"\(f(lx))\" y1=\"\(f(ly - 4))\" x2=\"\(f(lx + 22))\" y2=\"\(f(ly - 4))\" stroke=\"\(item.color)\" stroke-width=\"2\""
            svg += "\(item.dashed ? " stroke-dasharray=\"5,3\"" : "")/>"
            svg += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly))\">\(TrainingReport.escape(item.label))</text>"
        }
        return svg + "</svg>"
    }
}
