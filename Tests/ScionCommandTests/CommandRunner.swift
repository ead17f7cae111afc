import Foundation
import XCTest

/// Runs the built `scion` command and captures what it prints.
struct CommandResult {
    var status: Int32
    var standardOutput: String
    var standardError: String
}

enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("fixtures")

    static func fixture(_ path: String) -> String { fixtures.appendingPathComponent(path).path }

    /// `scion demo`'s digits files: package resources of the scion command, one copy in the repository.
    static let digits = root.appendingPathComponent("Sources/ScionCommand/Resources/digits")

    static func digits(_ name: String) -> String { digits.appendingPathComponent(name).path }
}

/// The `scion` executable built next to the test bundle.
func scionExecutable() throws -> URL {
    let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("scion")
    for candidate in [besideTests, Repository.root.appendingPathComponent(".build/debug/scion")]
    where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate
    }
    throw XCTSkip("the scion executable is not built (run `swift build` first)")
}

/// `executable` runs another copy of scion (a binary moved elsewhere); `directory` is its working folder.
func runScion(_ arguments: [String], timeout: TimeInterval = 60, executable: URL? = nil, in directory: URL? = nil,
              environment: [String: String] = [:]) throws -> CommandResult {
    let process = Process()
    process.executableURL = try executable ?? scionExecutable()
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let directory { process.currentDirectoryURL = directory }
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Read both pipes while the process runs so a large output cannot block it.
    nonisolated(unsafe) var outputData = Data()
    nonisolated(unsafe) var errorData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outputData = output.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errorData = error.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        XCTFail("scion \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
    }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         standardOutput: String(decoding: outputData, as: UTF8.self),
                         standardError: String(decoding: errorData, as: UTF8.self))
}

/// A fresh temporary folder, removed when the test ends.
func temporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Runs `scion` expecting a mistake to be reported as it should be: one line `error: ...` on stderr
/// that mentions `expected`, and exit status 1 (the work failed) or, for `usage: true`, 2 (the
/// command line is wrong).
func assertOneLineFailure(_ arguments: [String], mentions expected: String, usage: Bool = false,
                          file: StaticString = #filePath, line: UInt = #line) throws {
    let result = try runScion(arguments)
    XCTAssertEqual(result.status, usage ? 2 : 1, arguments.joined(separator: " "), file: file, line: line)
    XCTAssertEqual(result.standardError.split(separator: "\n").count, 1, result.standardError, file: file, line: line)
    XCTAssertTrue(result.standardError.hasPrefix("error: "), result.standardError, file: file, line: line)
    XCTAssertTrue(result.standardError.contains(expected), "\(arguments): \(result.standardError)", file: file, line: line)
}
