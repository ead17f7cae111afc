import ArgumentParser
import Foundation
@testable import Scion
@testable import ScionCommand
import ScionIR
import XCTest

/// The verification after training is computed once and shown from that one value: the terminal
/// line, the report and the exit status agree, and each can say no. The failing case is a real
/// comparison, with a frozen tensor's bytes changed in the written file.
final class TrainingVerificationTests: XCTestCase {
    let trainedNames: Set<String> = ["digits_0_4/kernel", "digits_0_4/bias"]

    /// The digits CNN as "trained" (written unchanged), or with bn1/gamma's first value nudged.
    func written(_ directory: URL, name: String, tamper: Bool) throws -> Model {
        var model = try Model.load(Repository.digits("digits_cnn.keras"))
        if tamper, var gamma = model.graph.parameters["bn1/gamma"] {
            var bytes = try gamma.storage.bytes()
            bytes[0] ^= 0x01
            gamma.storage = TensorStorage(bytes: bytes)
            model.graph.parameters["bn1/gamma"] = gamma
        }
        let path = directory.appendingPathComponent(name).path
        try model.write(to: path)
        return try Model.load(path)
    }

    /// CRC-32 (zlib's polynomial), computed here independently of the code under test.
    func crc32(_ bytes: [UInt8]) -> String {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return String(format: "%08x", ~crc)
    }

    func testAnUntouchedFileVerifiesWithOneChecksumPerTensor() throws {
        let directory = try temporaryDirectory(self)
        let reference = try Model.load(Repository.digits("digits_cnn.keras"))
        let verification = try TrainingVerification(reference: reference, written: try written(directory, name: "same.keras", tamper: false),
                                                    trained: trainedNames)
        XCTAssertTrue(verification.passed)
        XCTAssertEqual(verification.frozen.count, 18)
        let kernel = try XCTUnwrap(reference.graph.parameters["conv1/kernel"]).storage.bytes()
        XCTAssertEqual(verification.frozen.first { $0.name == "conv1/kernel" }?.crc32Before, crc32(kernel))
        XCTAssertTrue(verification.summary.hasPrefix("same.keras: 18 frozen tensors byte-identical to digits_cnn.keras"), verification.summary)

        let report = TrainingReport(title: "t", settings: [], runs: [], verifications: [verification])
        let page = report.html()
        XCTAssertTrue(report.passed)
        XCTAssertTrue(page.contains("✔ verified: \(TrainingReport.escape(verification.summary))"), page)
        XCTAssertEqual(page.components(separatedBy: "<td class=\"ok\">identical</td>").count - 1, 18)
        XCTAssertTrue(page.contains("<td class=\"crc\">\(crc32(kernel))</td><td class=\"crc\">\(crc32(kernel))</td>"))

        // The same value through the command's last step: the terminal says what the report says.
        let output = directory.appendingPathComponent("out.keras").path
        try FileManager.default.copyItem(atPath: directory.appendingPathComponent("same.keras").path, toPath: output)
        let pagePath = directory.appendingPathComponent("r.html").path
        let command = try FinetuneCommand.parse([Repository.digits("digits_cnn.keras"), "--data", "d.npz", "-o", output, "--report", pagePath])
        var text = ""
        try command.finish(outcome(verification, output: output), progress: TrainingProgress(quiet: false, terminal: false) { text += $0 })
        XCTAssertTrue(text.contains("Verified \(verification.summary)\n"), text)
        XCTAssertTrue(try String(contentsOfFile: pagePath, encoding: .utf8).contains("✔ verified"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: output))
    }

    func outcome(_ verification: TrainingVerification, output: String) throws -> FinetuneCommand.Outcome {
        FinetuneCommand.Outcome(verification: verification, plans: [], history: [], model: try Model.load(output), output: output,
                                loss: .sparseCategoricalCrossentropy, started: Date())
    }

    func testAChangedFrozenTensorFailsInTheTerminalTheReportAndTheExitStatus() throws {
        let directory = try temporaryDirectory(self)
        let reference = try Model.load(Repository.digits("digits_cnn.keras"))
        let changed = try written(directory, name: "changed.keras", tamper: true)
        let verification = try TrainingVerification(reference: reference, written: changed, trained: trainedNames)
        XCTAssertFalse(verification.passed)
        XCTAssertEqual(verification.violations.map(\.name), ["bn1/gamma"])
        let gamma = try XCTUnwrap(verification.violations.first)
        XCTAssertNotEqual(gamma.crc32Before, gamma.crc32After)
        XCTAssertTrue(verification.summary.contains("changed.keras: 1 of 18 frozen tensors differ from digits_cnn.keras: "
                                                    + "bn1/gamma (CRC-32 \(gamma.crc32Before) before, \(gamma.crc32After ?? "") after, max |delta| "),
                      verification.summary)

        let page = TrainingReport(title: "t", settings: [], runs: [], verifications: [verification]).html()
        XCTAssertTrue(page.contains("✘ FAILED: \(TrainingReport.escape(verification.summary))"))
        XCTAssertTrue(page.contains("<tr><td><code>bn1/gamma</code></td><td>frozen</td><td class=\"crc\">\(gamma.crc32Before)</td>"
                                    + "<td class=\"crc\">\(gamma.crc32After ?? "")</td><td class=\"bad\">DIFFERENT, max |Δ| "), page)

        // finetune: the report says FAILED, the error line the same summary, exit 1, the model removed.
        let output = directory.appendingPathComponent("out.keras").path
        try FileManager.default.copyItem(atPath: directory.appendingPathComponent("changed.keras").path, toPath: output)
        let pagePath = directory.appendingPathComponent("r.html").path
        let command = try FinetuneCommand.parse([Repository.digits("digits_cnn.keras"), "--data", "d.npz", "-o", output, "--report", pagePath])
        var text = ""
        let progress = TrainingProgress(quiet: false, terminal: false) { text += $0 }
        let result = try outcome(verification, output: output)
        XCTAssertThrowsError(try command.finish(result, progress: progress)) { error in
            XCTAssertTrue("\(error)".contains("verification failed, the file was removed: \(verification.summary)"), "\(error)")
        }
        XCTAssertEqual(text, "", "no 'Verified' line")
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        XCTAssertTrue(try String(contentsOfFile: pagePath, encoding: .utf8).contains("✘ FAILED: \(TrainingReport.escape(verification.summary))"))
        try FileManager.default.copyItem(atPath: directory.appendingPathComponent("changed.keras").path, toPath: output)
        let forced = try FinetuneCommand.parse([Repository.digits("digits_cnn.keras"), "--data", "d.npz", "-o", output, "--force"])
        XCTAssertThrowsError(try reportingErrors { try forced.finish(result, progress: progress) }) { error in
            XCTAssertEqual((error as? ExitCode)?.rawValue, 1)
        }

        // demo: the same verification inside a file check fails the run too, after writing the report.
        let folder = directory.appendingPathComponent("demo")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let demoFile = folder.appendingPathComponent("digits_5_9.keras").path
        try FileManager.default.copyItem(atPath: directory.appendingPathComponent("changed.keras").path, toPath: demoFile)
        let check = TransferDemo.FileCheck(file: demoFile, verification: verification, predictionDifference: 0, predictionTolerance: 1e-4,
                                           testImages: 796)
        let demoResult = TransferDemo.Result(settings: TransferDemo.Settings(), outcomes: [], testImages: 796, checks: [check],
                                             history: [], scratchHistory: [])
        let demo = try DemoCommand.parse(["-o", folder.path])
        XCTAssertThrowsError(try reportingErrors { try demo.finish(demoResult, progress: progress, started: Date()) }) { error in
            XCTAssertEqual((error as? ExitCode)?.rawValue, 1)
        }
        let demoPage = try String(contentsOf: folder.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(demoPage.contains("✘ FAILED: \(TrainingReport.escape(check.summary))"), demoPage)
        XCTAssertFalse(FileManager.default.fileExists(atPath: demoFile))
        XCTAssertEqual(text, "")
    }

    /// Predictions that differ fail the demo's check even when every tensor is right.
    func testDifferentPredictionsFailTheDemosCheck() throws {
        let verification = TrainingVerification(reference: "grafted", file: "x.onnx", tensors: [])
        let check = TransferDemo.FileCheck(file: "x.onnx", verification: verification, predictionDifference: 0.5, predictionTolerance: 1e-4,
                                           testImages: 3)
        XCTAssertFalse(check.passed)
        XCTAssertTrue(check.summary.contains("predictions on the 3 test images DIFFERENT from (max difference 0.5, allowed 0.0001)"), check.summary)
    }
}
