/// Text put into XML, SVG, HTML and Graphviz's HTML-like labels: the one escaping loop the reports
/// and pictures share, so a name can never open markup whichever page it lands in.
enum Markup {
    /// `text` with `& < > " '` escaped and every character `keeps` refuses replaced by U+FFFD.
    static func escaped(_ text: String, keeping keeps: (Unicode.Scalar) -> Bool) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            default: result.unicodeScalars.append(keeps(scalar) ? scalar : "\u{FFFD}")
            }
        }
        return result
    }
}
