import ArgumentParser
import Foundation
import Scion

/// Where a command writes a model, and how: the same flags on every command that writes one
/// (convert, cut, graft, freeze, edit, finetune). Flags that do not apply to the chosen format are
/// refused rather than ignored.
struct ModelOutputOptions: ParsableArguments {
    @Option(name: [.customShort("o"), .long],
            help: ArgumentHelp("The model to write (.onnx, .h5, .keras); its extension picks the format.", valueName: "file"),
            completion: .file(extensions: ["onnx", "h5", "keras"]))
    var output: String?

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @Option(help: "ONNX output: the opset to write (13 to 23; default: the lowest that expresses the model, 13 or more).")
    var opset: Int64?

    @Flag(help: "ONNX output: write the weights to OUTPUT.data beside the model (automatic above 2 GB).")
    var externalData = false

    @Flag(help: "Keras output: store the weights with HDF5's deflate filter.")
    var compress = false

    @Flag(help: "Keras output from an ONNX model: take channels-last (NHWC) image arrays instead of the ONNX model's NCHW ones.")
    var channelsLastInput = false

    /// The output path, from `-o` or (convert) the positional argument; checked before any work.
    func path(positional: String? = nil) throws -> String {
        if let positional, let output, positional != output {
            throw UsageError("give the output once: either as the second argument or with -o (got '\(positional)' and '\(output)')")
        }
        guard let path = output ?? positional else { throw UsageError("missing the output: give -o FILE (.onnx, .h5 or .keras)") }
        return path
    }

    /// Refuses flags that do not apply to the output's format, then checks the path itself
    /// (folder, extension, overwrite). Call before loading anything.
    func check(positional: String? = nil) throws -> String {
        let path = try path(positional: positional)
        try OutputCheck.checkModel(path, force: force)
        let format = try ModelFormat.forOutput(path: path)
        let isONNX = format == .onnx
        if isONNX {
            if compress { throw UsageError("--compress applies to Keras outputs (.h5, .keras), not to \(path)") }
            if channelsLastInput { throw UsageError("--channels-last-input applies to Keras outputs (.h5, .keras), not to \(path)") }
        } else {
            if opset != nil { throw UsageError("--opset applies to ONNX outputs, not to \(path)") }
            if externalData { throw UsageError("--external-data applies to ONNX outputs, not to \(path)") }
        }
        if let opset, !(13...23).contains(opset) { throw UsageError("--opset \(opset): Scion writes opsets 13 to 23") }
        return path
    }

    var writeOptions: Model.WriteOptions {
        var options = Model.WriteOptions(opset: opset, force: force)
        if externalData { options.externalDataThreshold = 0 }
        options.compress = compress
        options.channelsLastInputs = channelsLastInput
        return options
    }

    /// Writes `model` to `path` and says what was written (one line, or the JSON object).
    func write(_ model: Model, to path: String, command: String, input: String, started: Date, report: ReportOptions) throws {
        try model.write(to: path, options: writeOptions)
        let written = WrittenModel(command: command, input: input, output: path, model: model, started: started)
        try report.finish(written, line: written.line)
    }
}

/// What every command prints: by default a few lines for a person; `--json` one JSON object on
/// stdout and nothing else there; `--quiet` nothing on stdout (the exit status tells). Errors go
/// to stderr in every mode.
struct ReportOptions: ParsableArguments {
    @Flag(help: "Print one JSON object describing the result on stdout, and nothing else there.")
    var json = false

    @Flag(name: [.customShort("q"), .long], help: "Print nothing on stdout; errors still go to stderr and the exit status tells.")
    var quiet = false

    func validate() throws {
        if json && quiet { throw ValidationError("give at most one of --json and --quiet") }
    }

    /// True when lines for a person should be printed.
    var talks: Bool { !json && !quiet }

    /// A line for a person (not in --json or --quiet mode).
    func say(_ line: String) {
        if talks { print(line) }
    }

    /// The command's result: `value` as JSON with --json, else `line` (unless --quiet).
    func finish(_ value: some Encodable, line: @autoclosure () -> String, spellNonFinite: Bool = false) throws {
        if json {
            try printJSON(value, spellNonFinite: spellNonFinite)
        } else if !quiet {
            print(line())
        }
    }
}

/// What a command that writes a model did: the `--json` object and the confirmation line
/// `wrote x.onnx (25.6M params, 98.0 MB) in 0.31 s`.
struct WrittenModel: Encodable {
    var command: String
    var input: String
    var output: String
    var format: String
    var params: Int
    var trainableParams: Int
    var bytes: Int
    var seconds: Double

    init(command: String, input: String, output: String, model: Model, started: Date) {
        self.command = command
        self.input = input
        self.output = output
        format = (try? ModelFormat.forOutput(path: output).rawValue) ?? ""
        params = model.graph.totalParameterCount
        trainableParams = model.graph.trainableParameterCount
        var size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        let data = output + ".data"
        if FileManager.default.fileExists(atPath: data) { size += (try? FileManager.default.attributesOfItem(atPath: data)[.size] as? Int) ?? 0 }
        bytes = size
        seconds = Date().timeIntervalSince(started)
    }

    var line: String {
        "wrote \(output) (\(Readable.count(params)) params, \(Readable.count(trainableParams)) trainable, \(Readable.bytes(bytes))) in \(Readable.seconds(seconds))"
    }
}

/// The model a command reads: a file argument that completes model files in the shell.
struct ModelArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The model to read (.h5, .keras, .onnx).", valueName: "model"),
              completion: .file(extensions: ["h5", "keras", "onnx"]))
    var input: String
}
