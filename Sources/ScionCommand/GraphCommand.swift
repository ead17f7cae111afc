import ArgumentParser
import Foundation
import Scion

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Draw a model: SVG, PNG, PDF (laid out by Graphviz) or DOT.",
        discussion: """
            Each box shows a layer's name, type, output shape and parameter count (the numbers `scion \
            inspect` prints); frozen layers are grey, trainable ones green, nested models are clusters. \
            In the SVG every layer's <g> has its full name as id and <title>. With --diff, the second \
            model is drawn with what changed from the first: removed layers struck through, added ones \
            blue, changed ones outlined orange, re-frozen ones purple. See docs/graph.md.
            """)

    @OptionGroup var source: ModelArgument

    @Option(name: [.customShort("o"), .long],
            help: ArgumentHelp("The picture to write (.svg, .png, .pdf, .dot); its extension picks the format.", valueName: "file"),
            completion: .file(extensions: ["svg", "png", "pdf", "dot"]))
    var output: String

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @Option(help: ArgumentHelp("Which way the layers flow: TB (top to bottom) or LR (left to right).", valueName: "TB|LR"))
    var rankdir: String = "TB"

    @Flag(help: "Draw each nested model as one box.")
    var collapse = false

    @Flag(help: "Draw a run of identical blocks (ResNet stages, Transformer layers) once, marked ×N.")
    var foldRepeats = false

    @Option(help: ArgumentHelp("Draw only the layers downstream of this one (full name, nested name or unique suffix).", valueName: "layer"))
    var from: String?

    @Option(help: ArgumentHelp("Draw only the layers upstream of this one.", valueName: "layer"))
    var to: String?

    @Option(help: ArgumentHelp("Draw this model instead, marked with what changed from MODEL.", valueName: "model"),
            completion: .file(extensions: ["h5", "keras", "onnx"]))
    var diff: String?

    @OptionGroup var report: ReportOptions

    struct Written: Encodable {
        var command = "graph"
        var input: String
        var output: String
        var format: String
        var bytes: Int
        var seconds: Double
    }

    func run() throws {
        try reportingErrors {
            let started = Date()
            guard let direction = GraphPictureOptions.Direction(rawValue: rankdir.uppercased()) else {
                throw UsageError("--rankdir \(rankdir): use TB or LR")
            }
            try OutputCheck.check(output, force: force, extensions: GraphPictureFormat.allCases.map(\.rawValue), what: "a picture")
            guard let format = GraphPictureFormat(pathExtension: URL(fileURLWithPath: output).pathExtension) else {
                throw UsageError("\(output): use .svg, .png, .pdf or .dot")
            }
            var options = GraphPictureOptions()
            options.direction = direction
            options.collapseNested = collapse
            options.foldRepeats = foldRepeats
            options.from = from
            options.to = to
            let model = try Model.load(source.input)
            let bytes: Data
            if let diff {
                bytes = try Model.load(diff).graphPicture(diffFrom: model, format: format, options: options)
            } else {
                bytes = try model.graphPicture(format: format, options: options)
            }
            do {
                try bytes.write(to: URL(fileURLWithPath: output), options: .atomic)
            } catch {
                throw ScionError(file: output, "could not be written (\(error.localizedDescription))")
            }
            let written = Written(input: diff ?? source.input, output: output, format: format.rawValue, bytes: bytes.count,
                                  seconds: Date().timeIntervalSince(started))
            try report.finish(written, line: "wrote \(output) (\(Readable.bytes(bytes.count))) in \(Readable.seconds(written.seconds))")
        }
    }
}
