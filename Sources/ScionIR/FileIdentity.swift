import Foundation

/// What tells that a file is the one seen before, without reading it: its path, device, inode, size,
/// and modification and change times to the nanosecond. Caches of work done on a file (prepared
/// weights, the check of a Keras file's HDF5 structures) are keyed on it, with the program's own
/// identity: a rebuilt or upgraded scion never reads another's.
public enum FileIdentity {
    /// The file's identity, its path made absolute; nil when it cannot be looked at.
    public static func of(_ path: String) -> String? {
        guard let status = status(path) else { return nil }
        return "\(absolute(path)) dev \(status.st_dev) ino \(status.st_ino) size \(status.st_size) "
            + "mtime \(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec) ctime \(status.st_ctim.tv_sec).\(status.st_ctim.tv_nsec)"
    }

    /// The running executable's identity. Without its change time: tools that hard-link binaries
    /// (perf's build-id cache) change it without changing the program.
    public static let program: String? = status("/proc/self/exe").map {
        "program dev \($0.st_dev) ino \($0.st_ino) size \($0.st_size) mtime \($0.st_mtim.tv_sec).\($0.st_mtim.tv_nsec)"
    }

    public static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// A cache file's name for `path` in `directory`: the file's name and a hash of its absolute
    /// path (and `inner`), so that a changed file replaces its cache file instead of adding one.
    public static func cacheFile(for path: String, inner: String? = nil, in directory: String, suffix: String) -> String {
        let absolute = absolute(path)
        var hash = FNV1a()
        hash.mix(absolute)
        if let inner { hash.mix(inner) }
        return directory + "/" + (absolute as NSString).lastPathComponent + "." + String(hash.value, radix: 16) + "." + suffix
    }

    private static func status(_ path: String) -> stat? {
        var result = stat()
        return stat(path, &result) == 0 ? result : nil
    }
}

/// FNV-1a, 64 bits: a cheap hash for names and keys whose full text is compared anyway.
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func mix(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }

    /// The string's bytes and a terminating zero (so that "ab", "c" and "a", "bc" differ).
    public mutating func mix(_ text: String) {
        for byte in text.utf8 { mix(byte) }
        mix(0)
    }

    public mutating func mix(_ number: Int) { withUnsafeBytes(of: number.littleEndian) { for byte in $0 { mix(byte) } } }
}
