import ScionZip

extension KerasError {
    /// A problem the zip layer found in a `.keras` archive, as a Keras error of the matching kind
    /// with the same file, entry and reason: a user reading a `.keras` file sees one error type,
    /// whichever layer found the damage.
    init(_ error: ZipError) {
        let kind: Kind = switch error.kind {
        case .notAZipArchive: .notAKerasFile
        case .damaged: .invalidArchive
        case .writeFailed: .writeFailed
        }
        self.init(kind, file: error.file, subject: error.entry, error.reason)
    }

    /// Runs `body`, which reads or writes a `.keras` archive, turning a `ZipError` it throws into a
    /// `KerasError`; other errors pass through unchanged.
    static func fromZip<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ZipError {
            throw KerasError(error)
        }
    }
}
