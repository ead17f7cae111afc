import ArgumentParser
import Foundation

/// Runs a command's work; any error becomes one line `error: ...` on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        let text = String(describing: error).replacingOccurrences(of: "\n", with: " ")
        FileHandle.standardError.write(Data("error: \(text)\n".utf8))
        throw ExitCode(1)
    }
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
