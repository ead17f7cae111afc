import Foundation

/// How `scion graph` and `Model.graphPicture` draw a model.
public struct GraphPictureOptions: Sendable {
    /// Which way the layers flow.
    public enum Direction: String, Sendable, CaseIterable {
        case topToBottom = "TB", leftToRight = "LR"
    }

    /// Top to bottom (Graphviz's `TB`, the default) or left to right (`LR`).
    public var direction: Direction = .topToBottom
    /// Draw each nested model as one box instead of a cluster of its layers.
    public var collapseNested = false
    /// Draw a run of structurally identical blocks (ResNet stages, Transformer layers) once, marked ×N.
    public var foldRepeats = false
    /// Draw only the layers downstream of this one (full name, nested name or a unique suffix).
    public var from: String?
    /// Draw only the layers upstream of this one.
    public var to: String?
    /// Names longer than this are shortened in the boxes (ids and titles keep them whole).
    public var labelCharacters = 40

    public init() {}
}

/// The file formats `graphPicture` writes.
public enum GraphPictureFormat: String, Sendable, CaseIterable {
    /// Graphviz's own SVG renderer: every layer a `<g>` whose id and `<title>` are its name.
    case svg
    /// Cairo's PNG renderer (Graphviz's pango plugin).
    case png
    /// Cairo's PDF renderer.
    case pdf
    /// The graph in Graphviz's language, written by Scion (no layout).
    case dot

    /// The format a file name's extension names; nil for others.
    public init?(pathExtension: String) {
        self.init(rawValue: pathExtension.lowercased())
    }
}

extension Model {
    /// The model drawn: its layers with type, output shape and parameter count (the numbers
    /// `scion inspect` prints), frozen layers apart from trainable ones, nested models as clusters.
    public func graphPicture(format: GraphPictureFormat, options: GraphPictureOptions = GraphPictureOptions()) throws -> Data {
        let picture = try GraphPictureBuilder(model: self, options: options).build()
        return try picture.render(format, file: path)
    }

    /// This model drawn with what changed from `source` marked: layers only `source` has struck
    /// through, layers only this model has highlighted, changed and re-frozen layers outlined.
    public func graphPicture(diffFrom source: Model, format: GraphPictureFormat,
                             options: GraphPictureOptions = GraphPictureOptions()) throws -> Data {
        let diff = try ModelDiff(source, self)
        var builder = try GraphPictureBuilder(model: self, options: options)
        builder.marks = try DiffMarks(diff: diff, before: source)
        return try builder.build().render(format, file: path)
    }
}

extension PictureGraph {
    /// `file` names the model in errors.
    func render(_ format: GraphPictureFormat, file: String) throws -> Data {
        switch format {
        case .dot: return Data(dot().utf8)
        case .svg, .png, .pdf: return try GraphvizRenderer.render(self, format: format.rawValue, file: file)
        }
    }
}
