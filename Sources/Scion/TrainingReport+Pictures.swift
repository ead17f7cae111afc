import Foundation

/// The model pictures the finetune and demo reports show (`scion graph`'s, inline): the trained
/// model, frozen base apart from trained head, and what changed from the model it started from.
extension TrainingReport {
    /// Draws `trained` alone and against `source` (both files); a picture that cannot be made is
    /// replaced by a line saying why: the report must still be written.
    package mutating func addModelPictures(source: String, trained: String) {
        var options = GraphPictureOptions()
        // A large base stays readable: repeated blocks drawn once, nested models as clusters.
        options.foldRepeats = true
        do {
            let before = try Model.load(source), after = try Model.load(trained)
            pictures.append(("The trained model (grey: frozen, green: trained)",
                             Self.inlineSVG(try after.graphPicture(format: .svg, options: options))))
            pictures.append(("What changed from \((source as NSString).lastPathComponent)",
                             Self.inlineSVG(try after.graphPicture(diffFrom: before, format: .svg, options: options))))
        } catch {
            pictures.append(("The model", "<p>No picture: \(Self.escape(String(describing: error)))</p>"))
        }
    }

    /// Graphviz's SVG without its XML prolog and doctype, which HTML does not take inline.
    static func inlineSVG(_ data: Data) -> String {
        let text = String(decoding: data, as: UTF8.self)
        guard let start = text.range(of: "<svg") else { return "" }
        return String(text[start.lowerBound...])
    }

    /// Each picture scaled to the page's width, in a box that scrolls when the model is long.
    func picturesSection() -> String {
        guard !pictures.isEmpty else { return "" }
        var section = "<h2>The model</h2><style>.picture{max-height:48em;overflow:auto;border:1px solid #ddd;margin:.5em 0}"
            + ".picture svg{max-width:100%;height:auto}</style>"
        for (title, svg) in pictures {
            section += "<details open><summary>\(Self.escape(title))</summary><div class=\"picture\">\(svg)</div></details>"
        }
        return section
    }
}
