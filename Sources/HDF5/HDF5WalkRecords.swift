import CHDF5
import Foundation

/// Walks of unchanged files, kept in a folder so that the next opening of the same file does not
/// walk it again in a child process (`HDF5File+Isolation.swift`): the walk's answer (the objects it
/// reached, the variable-length strings it read) is stored after a walk that ended well, and used
/// instead of a new walk when the file is exactly the one walked. The walk checks that libhdf5
/// survives the file's structures; the same bytes need no second check. A record whose key is not
/// exactly this one, or that is damaged, is a miss: the file is walked, and the record replaced.
/// DenseNet121's `.h5` (600 datasets) took 44 ms to walk, a fifth of a whole `scion run`.
package struct HDF5WalkRecords: Sendable {
    /// What says the file and the program are the ones of the stored walk (the caller's
    /// `FileIdentity`s, and the file inside for an archive's weights); libhdf5's version is added.
    let identity: String
    /// Where the record is kept.
    let file: String

    package init(identity: String, file: String) {
        self.identity = identity
        self.file = file
    }

    static let magic = Array("SCIONWLK".utf8)

    var key: String {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        return "scion hdf5 walk 1\n\(identity)\nlibhdf5 \(major).\(minor).\(release)"
    }

    /// The stored answer of the walk of exactly this file; nil on any mismatch.
    func answer() -> [UInt8]? {
        guard let bytes = FileManager.default.contents(atPath: file) else { return nil }
        let keyBytes = Array(key.utf8)
        let head = Self.magic.count + 8
        guard bytes.count >= head, Array(bytes[0..<Self.magic.count]) == Self.magic else { return nil }
        let keyLength = bytes[Self.magic.count..<head].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard keyLength == keyBytes.count, bytes.count >= head + keyLength, Array(bytes[head..<(head + keyLength)]) == keyBytes else { return nil }
        return Array(bytes[(head + keyLength)...])
    }

    /// Stores a walk's answer (written beside the record and renamed over it). A failure to write
    /// is not an error: the next opening walks again.
    func store(_ answer: UnsafeRawBufferPointer) {
        let keyBytes = Array(key.utf8)
        var bytes = Self.magic
        withUnsafeBytes(of: UInt64(keyBytes.count).littleEndian) { bytes += $0 }
        bytes += keyBytes
        bytes += answer
        try? FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temporary = file + ".\(getpid()).partial"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else { return }
        if rename(temporary, file) != 0 { unlink(temporary) }
    }
}
