/// Everything that can go wrong reading or writing a zip archive, with what a user needs to find
/// it: the archive, the entry, and what is wrong (`x.npz: entry 'y.npy': checksum mismatch ...`).
///
/// The formats built on zip say it in their own words: the Keras reader turns a `ZipError` into a
/// `KerasError` of the matching kind for a `.keras` model, the front door into a `ScionError` for
/// a NumPy `.npz`, each keeping the file, entry and reason.
package struct ZipError: Error, CustomStringConvertible, Equatable, Sendable {
    package enum Kind: String, Sendable {
        /// Not a zip archive at all: cannot be opened, not a regular file, empty, wrong magic bytes.
        case notAZipArchive
        /// A zip archive that is damaged or hostile: sizes, offsets, names or checksums that do
        /// not add up, or a feature refused on purpose (encryption, spanning, other compressions).
        case damaged
        /// Writing an archive failed, or the writer was asked for something it refuses.
        case writeFailed
    }

    package var kind: Kind
    /// The archive's path.
    package var file: String
    /// The entry the problem is about; empty when it concerns the whole archive.
    package var entry: String
    package var reason: String

    package init(_ kind: Kind, file: String, entry: String = "", _ reason: String) {
        self.kind = kind
        self.file = file
        self.entry = entry
        self.reason = reason
    }

    package var description: String {
        entry.isEmpty ? "\(file): \(reason)" : "\(file): entry '\(entry)': \(reason)"
    }
}
