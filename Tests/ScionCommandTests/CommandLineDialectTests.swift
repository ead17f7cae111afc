import Foundation
import XCTest

/// The conventions every command shares (docs/cli.md): -o for outputs, --json and --quiet, one
/// confirmation line, exit statuses 0/1/2/3, flags that do not apply refused, outputs checked before
/// any work.
final class CommandLineDialectTests: XCTestCase {
    let model = Repository.fixture("keras2/mobilenet_v2.h5")
    let input = Repository.fixture("keras2/mobilenet_v2.input.npy")

    /// Every command that writes, with `-o` (convert also with its positional form).
    func writingCommands(in directory: URL) -> [(name: String, arguments: [String], output: String)] {
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        return [
            ("convert", ["convert", model, "-o", path("c.onnx")], path("c.onnx")),
            ("convert positional", ["convert", model, path("p.keras")], path("p.keras")),
            ("cut", ["cut", model, "--after", "out_relu", "-o", path("cut.keras")], path("cut.keras")),
            ("graft", ["graft", model, "--after", "out_relu", "--head", "gap,dense:3:softmax", "-o", path("g.h5")], path("g.h5")),
            ("freeze", ["freeze", model, "--up-to", "out_relu", "-o", path("f.onnx")], path("f.onnx")),
            ("edit", ["edit", model, "--drop-top", "--head", "gap,dense:3", "--freeze-base", "-o", path("e.keras")], path("e.keras")),
            ("run", ["run", model, "--input", input, "-o", path("y.npy")], path("y.npy")),
        ]
    }

    func testWritingCommandsTakeDashOAndConfirmInOneLine() throws {
        let directory = try temporaryDirectory(self)
        for (name, arguments, output) in writingCommands(in: directory) {
            let result = try runScion(arguments)
            XCTAssertEqual(result.status, 0, "\(name): \(result.standardError)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: output), name)
            let lines = result.standardOutput.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(name): \(result.standardOutput)")
            XCTAssertTrue(lines.first?.hasPrefix("wrote \(output) (") == true, "\(name): \(result.standardOutput)")
            XCTAssertTrue(result.standardOutput.contains(" in "), name)
        }
        let converted = try runScion(["convert", model, "-o", directory.appendingPathComponent("again.onnx").path])
        XCTAssertTrue(converted.standardOutput.contains("255K params, 245K trainable, 1.1 MB"), converted.standardOutput)
    }

    func testJSONIsOneObjectOnStdoutForEveryCommand() throws {
        let directory = try temporaryDirectory(self)
        var commands = writingCommands(in: directory).map { ($0.name, $0.arguments) }
        commands += [("inspect", ["inspect", model]), ("diff", ["diff", model, model]),
                     ("compare", ["compare", model, model, "--input", input])]
        for (name, arguments) in commands {
            let result = try runScion(arguments + ["--json"])
            XCTAssertEqual(result.status, 0, "\(name): \(result.standardError)")
            let object = try? JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
            XCTAssertTrue(object is [String: Any], "\(name) --json: \(result.standardOutput.prefix(300))")
        }
        let written = try runScion(["convert", model, "-o", directory.appendingPathComponent("j.onnx").path, "--json"])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(written.standardOutput.utf8)) as? [String: Any])
        XCTAssertEqual(object["params"] as? Int, 255_173)
        XCTAssertEqual(object["format"] as? String, "onnx")
        XCTAssertGreaterThan(object["bytes"] as? Int ?? 0, 1_000_000)
    }

    func testQuietPrintsNothingAndTheStatusTells() throws {
        let directory = try temporaryDirectory(self)
        var commands = writingCommands(in: directory).map { ($0.name, $0.arguments, Int32(0)) }
        commands += [("inspect", ["inspect", model], 0), ("diff", ["diff", model, model], 0),
                     ("compare", ["compare", model, model, "--input", input], 0)]
        for (name, arguments, status) in commands {
            let result = try runScion(arguments + ["-q"])
            XCTAssertEqual(result.status, status, "\(name): \(result.standardError)")
            XCTAssertEqual(result.standardOutput, "", name)
            XCTAssertEqual(result.standardError, "", name)
        }
        try assertOneLineFailure(["inspect", model, "--json", "--quiet"], mentions: "at most one of --json and --quiet", usage: true)
    }

    func testExitStatusesSayWhatHappened() throws {
        let directory = try temporaryDirectory(self)
        XCTAssertEqual(try runScion(["help", "convert"]).status, 0)
        XCTAssertEqual(try runScion(["--help"]).status, 0)
        try assertOneLineFailure(["help", "nope"], mentions: "'nope' is not a scion command", usage: true)
        try assertOneLineFailure(["nope"], mentions: "unexpected argument 'nope'", usage: true)
        try assertOneLineFailure(["convert"], mentions: "missing expected argument '<model>'", usage: true)
        try assertOneLineFailure(["convert", model, "-o", "x.onnx", "--frobnicate"], mentions: "unknown option '--frobnicate'", usage: true)
        try assertOneLineFailure(["cut", model, "-o", directory.appendingPathComponent("x.keras").path], mentions: "exactly one of --after",
                                 usage: true)
        try assertOneLineFailure(["inspect", directory.appendingPathComponent("missing.h5").path], mentions: "no such file")
        let grafted = directory.appendingPathComponent("g.keras").path
        XCTAssertEqual(try runScion(["graft", model, "--after", "out_relu", "--head", "gap,dense:3", "-o", grafted, "-q"]).status, 0)
        let differ = try runScion(["diff", model, grafted, "-q"])
        XCTAssertEqual(differ.status, 3, "diff exits 3 when the models differ")
        XCTAssertEqual(differ.standardOutput, "")
    }

    func testFlagsThatDoNotApplyAreRefusedAndNothingIsWritten() throws {
        let directory = try temporaryDirectory(self)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let cases: [([String], String)] = [
            (["convert", model, "-o", path("a.keras"), "--opset", "13"], "--opset applies to ONNX outputs"),
            (["convert", model, "-o", path("a.h5"), "--external-data"], "--external-data applies to ONNX outputs"),
            (["convert", model, "-o", path("a.onnx"), "--compress"], "--compress applies to Keras outputs"),
            (["convert", model, "-o", path("a.onnx"), "--channels-last-input"], "--channels-last-input applies to Keras outputs"),
            (["convert", model, path("a.onnx"), "-o", path("b.onnx")], "give the output once"),
            (["convert", model], "missing the output"),
            (["convert", model, "-o", path("a.onnx"), "--opset", "9"], "--opset 9"),
            (["freeze", model, "--up-to", "out_relu", "--train-batch-norm", "-o", path("a.keras")], "--train-batch-norm applies with"),
            (["compare", model, model, "--input", input, "--tolerance", "-1"], "--tolerance must be"),
            (["freeze", model, "--unfreeze-top", "-1", "-o", path("a.keras")], "--unfreeze-top must be 1 or more"),
            (["run", model, "--input", input, "-o", path("y.npy"), "--repeat", "0"], "--repeat must be 1 or more"),
        ]
        for (arguments, expected) in cases {
            try assertOneLineFailure(arguments, mentions: expected, usage: true)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    /// A missing folder, an unknown extension or an existing file stop a command before it reads
    /// anything: the model given here does not exist, so the output's error must come first.
    func testOutputsAreCheckedBeforeAnyWork() throws {
        let directory = try temporaryDirectory(self)
        let existing = directory.appendingPathComponent("existing.onnx").path
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existing))
        let absent = directory.appendingPathComponent("absent.h5").path
        let cases: [([String], String)] = [
            (["convert", absent, "-o", directory.appendingPathComponent("no/x.onnx").path], "does not exist (create it first)"),
            (["cut", absent, "--after", "x", "-o", directory.appendingPathComponent("x.txt").path], "'.txt' is not an extension"),
            (["edit", absent, "--drop-top", "-o", existing], "already exists; pass --force"),
            (["run", absent, "-o", directory.appendingPathComponent("y.csv").path], "'.csv' is not an extension"),
            (["graft", absent, "--head", "gap", "-o", directory.path], "has no extension"),
        ]
        for (arguments, expected) in cases {
            try assertOneLineFailure(arguments, mentions: expected)
        }
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "precious")
    }

    func testShellCompletionCompletesModelFiles() throws {
        for shell in ["bash", "zsh", "fish"] {
            let result = try runScion(["--generate-completion-script", shell])
            XCTAssertEqual(result.status, 0, shell)
            for suffix in ["h5", "keras", "onnx", "npy"] {
                XCTAssertTrue(result.standardOutput.contains(suffix), "\(shell) completion lacks .\(suffix)")
            }
        }
    }
}
