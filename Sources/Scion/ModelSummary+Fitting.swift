import Foundation

/// Fitting text into a terminal's width: tables whose widest columns narrow first, and cells that
/// lose the middle of their names (with `…`) rather than their ends, because a long name's start
/// says where it sits and its end what it is (`StatefulPartitionedCall/model/…/block_3/Conv2D`).
/// The JSON keeps every name whole.
enum TextFitting {
    /// The width `scion inspect` keeps its lines within.
    static let lineWidth = 120
    /// Below this many characters an elided name says nothing: list fewer names instead.
    static let shortestElidedName = 12
    static let columnGap = "  "

    /// `text` in at most `width` characters: whole when it fits; a path (`a/b/c/d`) keeps at least
    /// two whole last parts, with its first part (`a/…/c/d`) unless dropping it keeps more of them
    /// (`…/b/c/d`); anything else keeps its start, `…` and twice as much of its end, unless that
    /// would cut into a path's last part where the part alone fits (`…/GlobalAveragePool`).
    /// With `paths` false (free text: a doc string, a metadata value) `/` is an ordinary character.
    static func elide(_ text: String, to width: Int, paths: Bool = true) -> String {
        guard text.count > width else { return text }
        guard width > 1 else { return width == 1 ? "…" : "" }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        if paths, parts.count > 2 {
            let withFirst = trailingParts(parts.dropFirst(), width: width - parts[0].count - 3)
            let alone = trailingParts(parts.dropFirst(), width: width - 2)
            if withFirst.count >= 2, withFirst.count >= alone.count { return parts[0] + "/…/" + withFirst.joined(separator: "/") }
            if alone.count >= 2 || (alone.count == 1 && (width - 1) - (width - 1) / 3 < alone[0].count) {
                return "…/" + alone.joined(separator: "/")
            }
        }
        let kept = width - 1
        let head = kept / 3
        return String(text.prefix(head)) + "…" + String(text.suffix(kept - head))
    }

    /// The most last parts of a path that fit in `width` characters joined by `/`.
    private static func trailingParts(_ parts: ArraySlice<Substring>, width: Int) -> [Substring] {
        var kept: [Substring] = []
        var used = -1
        for part in parts.reversed() {
            guard used + 1 + part.count <= width else { break }
            used += 1 + part.count
            kept.insert(part, at: 0)
        }
        return kept
    }

    /// Control characters (a terminal escape in a hostile file's metadata, a newline in a name)
    /// shown as `�` so a line stays one line and the terminal only prints.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "\u{FFFD}" : $0 }))
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// The largest `cap` such that lengths clipped to it (never below `floor`, never above their own
    /// length) sum to at most `budget`; the clipped lengths, or nil when even the floors do not fit.
    static func share(_ lengths: [Int], budget: Int, floor: [Int]) -> [Int]? {
        func clipped(_ cap: Int) -> [Int] { zip(lengths, floor).map { max($1, min($0, cap)) } }
        var cap = lengths.max() ?? 0
        while cap >= 0 {
            let candidate = clipped(cap)
            if candidate.reduce(0, +) <= budget { return candidate }
            cap -= 1
        }
        return nil
    }

    /// Rows (the first is the header) as aligned columns within `lineWidth`; with `ruled`, framed
    /// and with the header underlined as Keras's summary does.
    /// With `headed` false the header row only sets the columns' least widths and is not printed.
    static func render(_ rows: [[Cell]], ruled: Bool = true, headed: Bool = true) -> [String] {
        guard let header = rows.first else { return [] }
        let natural = header.indices.map { column in rows.map { $0[column].naturalWidth }.max() ?? 0 }
        let floor = header.map(\.naturalWidth)
        let budget = lineWidth - columnGap.count * (header.count - 1)
        let widths = share(natural, budget: budget, floor: floor) ?? floor
        var lines: [String] = []
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: columnGap)
        if ruled { lines.append(rule) }
        for (index, row) in rows.enumerated() where headed || index > 0 {
            let cells = row.enumerated().map { column, cell in
                let text = cell.fitted(to: widths[column])
                return column == row.count - 1 ? text : text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            lines.append(trimmingTrailingSpaces(cells.joined(separator: columnGap)))
            if ruled, index == 0 { lines.append(rule) }
        }
        if ruled { lines.append(rule) }
        return lines
    }

    static func trimmingTrailingSpaces(_ line: String) -> String {
        var line = line
        while line.last == " " { line.removeLast() }
        return line
    }
}

/// One table cell: `lead` and `trail` stay whole (an indentation, ` (Conv2D)`, `shared (`), the items
/// between them (a name, or a list of names) give up their middles when the column is too narrow.
struct Cell {
    var lead: String
    var items: [String]
    var trail: String
    /// Items are names, elided path-wise (`TextFitting.elide`); false for free text.
    var paths: Bool

    init(lead: String = "", _ items: [String], trail: String = "", paths: Bool = true) {
        self.lead = TextFitting.printable(lead)
        self.items = items.map(TextFitting.printable)
        self.trail = TextFitting.printable(trail)
        self.paths = paths
    }

    init(_ text: String) { self.init([text]) }

    static let separator = ", "

    var plain: String { lead + items.joined(separator: Self.separator) + trail }
    var naturalWidth: Int { plain.count }

    /// The cell in at most `width` characters. A list too long for the column shows its first names
    /// (each elided as needed) and how many more there are: `a, b, +3`.
    func fitted(to width: Int) -> String {
        let text = plain
        guard text.count > width else { return text }
        let room = width - lead.count - trail.count
        guard room >= TextFitting.shortestElidedName || (room > 0 && items.count == 1) else {
            return TextFitting.elide(text, to: width, paths: false)
        }
        if items.count <= 1 { return lead + TextFitting.elide(items.first ?? "", to: room, paths: paths) + trail }
        for shown in stride(from: items.count, through: 1, by: -1) {
            let more = shown < items.count ? "\(Self.separator)+\(items.count - shown)" : ""
            let budget = room - more.count - Self.separator.count * (shown - 1)
            let names = Array(items.prefix(shown))
            let floor = names.map { min($0.count, TextFitting.shortestElidedName) }
            guard let lengths = TextFitting.share(names.map(\.count), budget: budget, floor: floor) else { continue }
            let elided = zip(names, lengths).map { TextFitting.elide($0, to: $1, paths: paths) }
            return lead + elided.joined(separator: Self.separator) + more + trail
        }
        return lead + TextFitting.elide(items.joined(separator: Self.separator), to: room, paths: false) + trail
    }
}
