import ArgumentParser
import Foundation

/// Scion's exit statuses, the same for every command (docs/cli.md).
enum ExitStatus {
    /// The command did what was asked (and, for diff and compare, the models agree).
    static let success = ExitCode(0)
    /// The work failed: unreadable input, an unsupported layer, a failed verification.
    static let failure = ExitCode(1)
    /// The command line is wrong: a missing or unknown option, a value out of range, flags that do
    /// not go together. Nothing was read or written.
    static let usage = ExitCode(2)
    /// `diff` and `compare` ran and found the models different.
    static let differ = ExitCode(3)
}

/// A wrong command line found by a command's own checks: reported like ArgumentParser's own usage
/// errors (one line, exit status 2).
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command's work; a usage mistake becomes one `error: ...` line and exit status 2, any other
/// error one `error: ...` line and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as UsageError {
        printError(error.description)
        throw ExitStatus.usage
    } catch {
        printError(String(describing: error))
        throw ExitStatus.failure
    }
}

/// One line on stderr: `error: <text>` (newlines inside the text become `; `).
func printError(_ text: String) {
    let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }.joined(separator: "; ")
    FileHandle.standardError.write(Data("error: \(line)\n".utf8))
}

/// Prints `value` as the commands' `--json` output: indented, keys sorted, slashes as they are.
/// `spellNonFinite` writes infinities and NaN as strings (`compare` reports infinite differences).
func printJSON(_ value: some Encodable, spellNonFinite: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if spellNonFinite {
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
