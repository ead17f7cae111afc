import Foundation
import XCTest

/// `scion demo`: the recipe on the digits data shipped with the binary, its files verified, its
/// report agreeing with the terminal, its output folder checked before it trains.
final class DemoCommandTests: XCTestCase {
    /// A copy of the scion binary elsewhere, run from yet another folder: the demo's model and data
    /// travel with it (the resource bundle next to it), not with the checkout or the working folder.
    func testTheDemoRunsFromAnyFolderAndItsReportSaysWhatTheTerminalSays() throws {
        let directory = try temporaryDirectory(self)
        let installed = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: installed, withIntermediateDirectories: false)
        let original = try scionExecutable()
        let binary = installed.appendingPathComponent("scion")
        try FileManager.default.copyItem(at: original, to: binary)
        let bundle = "Scion_ScionCommand.resources"
        let work = directory.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: false)

        // Without its resources next to it, the copy says where they belong (and trains nothing).
        let bare = try runScion(["demo", "-o", "out"], executable: binary, in: work)
        XCTAssertEqual(bare.status, 1)
        XCTAssertTrue(bare.standardError.hasPrefix("error: \(installed.appendingPathComponent(bundle).path): not found"), bare.standardError)

        try FileManager.default.copyItem(at: original.deletingLastPathComponent().appendingPathComponent(bundle),
                                         to: installed.appendingPathComponent(bundle))
        let result = try runScion(["demo", "-o", "out"], timeout: 300, executable: binary, in: work)
        XCTAssertEqual(result.status, 0, result.standardError)
        XCTAssertEqual(result.standardError, "")
        let folder = work.appendingPathComponent("out").resolvingSymlinksInPath()
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        for name in ["digits_5_9.keras", "digits_5_9.onnx", "report.html"] {
            let path = folder.appendingPathComponent(name).path
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), name)
            XCTAssertTrue(lines.contains("wrote \(path)"), "the full path of \(name): \(result.standardOutput)")
        }
        // Transfer beats training from scratch on the same 25 images, by far.
        let accuracies = lines.filter { $0.hasPrefix("  ") && $0.contains("% ") }.compactMap { line in
            line.split(separator: " ").first { $0.hasSuffix("%") }.flatMap { Double($0.dropLast()) }
        }
        XCTAssertEqual(accuracies.count, 3, result.standardOutput)
        if accuracies.count == 3 {
            XCTAssertGreaterThan(accuracies[1], accuracies[0])
            XCTAssertGreaterThan(accuracies[0], accuracies[2] + 20, "\(accuracies)")
        }
        // The report states the very verdicts the terminal printed, against the grafted model (the
        // report once compared with the model before surgery and said DIFFERENT).
        let page = try String(contentsOf: folder.appendingPathComponent("report.html"), encoding: .utf8)
        let verified = lines.filter { $0.hasPrefix("Verified ") }
        XCTAssertEqual(verified.count, 2, result.standardOutput)
        for line in verified {
            XCTAssertTrue(line.contains("16 frozen tensors byte-identical to the grafted model"), line)
            let summary = String(line.dropFirst("Verified ".count))
            XCTAssertTrue(page.contains("✔ verified: \(summary)"), "report lacks: \(summary)")
        }
        XCTAssertFalse(page.contains("FAILED") || page.contains("DIFFERENT") || page.contains("MISSING"))
        XCTAssertEqual(page.components(separatedBy: "<td class=\"ok\">identical</td>").count - 1, 16)
        XCTAssertTrue(page.contains("← head</text>") && page.contains("fine-tune →</text>"), "the phase boundary is marked")
        XCTAssertTrue(page.contains("from scratch: training") && page.contains("from scratch: test images"), "the baseline is plotted")

        // Run again: the files exist, so it stops before training; --force replaces them.
        try assertOneLineFailure(["demo", "-o", folder.path], mentions: "already exists; pass --force")
    }

    /// The output folder: its parent must exist (nothing is created silently), it must be a folder.
    func testTheOutputFolderIsCheckedBeforeTraining() throws {
        let directory = try temporaryDirectory(self)
        let file = directory.appendingPathComponent("file.txt").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        try assertOneLineFailure(["demo", "-o", directory.appendingPathComponent("no/such/out").path], mentions: "does not exist (create it first)")
        try assertOneLineFailure(["demo", "-o", file], mentions: "is a file, not a folder")
        try assertOneLineFailure(["demo", "-o", directory.path, "--per-class", "0"], mentions: "--per-class 0: must be 1 to 20", usage: true)
        try assertOneLineFailure(["demo", "-o", directory.path, "--per-class", "-1"], mentions: "--per-class -1: must be 1 to 20", usage: true)
        try assertOneLineFailure(["demo", "-o", directory.path, "--fixtures", directory.path], mentions: "does not hold the demo's files")
        try assertOneLineFailure(["demo", "-o", directory.path, "--json", "-q"], mentions: "at most one of --json and --quiet", usage: true)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["file.txt"])
    }
}
