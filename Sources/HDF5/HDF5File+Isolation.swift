import CHDF5
import Foundation

/// The walk of an untrusted file in a child process (CHDF5/isolated.h): libhdf5 crashes on some
/// damaged files instead of failing, so every structure the reader will touch is first visited
/// where a crash ends only the child, and variable-length strings (the usual crash site) are read
/// there once and handed over.
extension HDF5File {
    /// How long the walk of a file of `size` bytes may take before the file is declared damaged (a
    /// loop in its structures): 5 s, and 20 ms more per MB (chunked data is read by the walk). A
    /// sound Keras file takes milliseconds.
    static func walkTimeoutMilliseconds(size: Int) -> Int32 {
        Int32(clamping: 5_000 + size / (1 << 20) * 20)
    }

    /// A variable-length string attribute's values, as the walk read them: keyed by object path
    /// and attribute name.
    struct WalkedStrings: Sendable {
        var values: [String: [String]] = [:]
        static func key(_ path: String, _ name: String) -> String { path + "\u{0}" + name }
    }

    /// Walks the open file `id` in a child process; a crash or a hang there is an error naming the
    /// last object the walk reached. With `record`, the stored answer when it is this file's, and a
    /// new walk that ends well is stored there.
    static func walk(_ id: hid_t, path: String, fileSize: Int, record: HDF5WalkRecords? = nil) throws -> WalkedStrings {
        if let answer = record?.answer() {
            return answer.withUnsafeBytes { parse($0).0 }
        }
        var output: UnsafeMutablePointer<CChar>?
        var size = 0
        var signal: Int32 = 0
        let timeout = walkTimeoutMilliseconds(size: fileSize)
        let status = scion_walk_file_isolated(id, maxAttributeBytes, timeout, &output, &size, &signal)
        defer { free(output) }
        let (strings, lastObject) = parse(UnsafeRawBufferPointer(start: output, count: output == nil ? 0 : size))
        try check(status, signal: signal, timeout: timeout, file: path, object: lastObject ?? "/", reading: "walking its objects")
        if status == SCION_ISOLATED_OK, let record {
            record.store(UnsafeRawBufferPointer(start: output, count: output == nil ? 0 : size))
        }
        return strings
    }

    /// Turns the child's status into an error; a clean libhdf5 failure is not one (the reader meets
    /// it again, in the parent, and reports it where it happens).
    static func check(_ status: Int32, signal: Int32, timeout: Int32, file: String, object: String, reading what: String) throws {
        switch Int(status) {
        case SCION_ISOLATED_OK, SCION_ISOLATED_READ_FAILED:
            return
        case SCION_ISOLATED_CRASHED:
            let how = signal > 0 ? "signal \(signal)" : "exit status \(-signal)"
            throw HDF5Error(file: file, object: object, reason: "is damaged: libhdf5 crashed (\(how)) \(what)")
        case SCION_ISOLATED_TIMED_OUT:
            throw HDF5Error(file: file, object: object, reason: "is damaged: libhdf5 did not finish \(what) in \(timeout / 1000) s")
        case SCION_ISOLATED_TOO_LARGE:
            throw HDF5Error(file: file, object: object, reason: "holds more than \(maxAttributeBytes) bytes of strings")
        default:
            throw HDF5Error(file: file, object: object, reason: "cannot start the process that checks it (fork failed)")
        }
    }

    /// The child's records: 'O' and an object path, or 'S', an object path, an attribute name, a
    /// count and that many strings (each an 8-byte length and the bytes). A record cut short (the
    /// child died while writing it) ends the list.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> (WalkedStrings, lastObject: String?) {
        var strings = WalkedStrings()
        var lastObject: String?
        var offset = 0
        func number() -> Int? {
            guard offset + 8 <= bytes.count else { return nil }
            let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
            return value <= UInt64(bytes.count) ? Int(value) : nil
        }
        func field() -> String? {
            guard let length = number(), length <= bytes.count - offset else { return nil }
            defer { offset += length }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]), as: UTF8.self)
        }
        records: while offset < bytes.count {
            let kind = bytes[offset]
            offset += 1
            switch kind {
            case UInt8(ascii: "O"):
                guard let path = field() else { break records }
                lastObject = path
            case UInt8(ascii: "S"):
                guard let path = field(), let name = field(), let count = number() else { break records }
                var values: [String] = []
                for _ in 0..<count {
                    guard let value = field() else { break records }
                    values.append(value)
                }
                strings.values[WalkedStrings.key(path, name)] = values
            default:
                break records
            }
        }
        return (strings, lastObject)
    }
}

extension HDF5AttributeHolder {
    /// A variable-length string attribute's values: from the file's walk, or (for an object the
    /// walk did not reach under this path) read alone in a child process. libhdf5 never converts
    /// one in this process.
    func isolatedVariableStrings(_ name: String, count: Int) throws -> [String] {
        if let values = file.walkedStrings.values[HDF5File.WalkedStrings.key(path, name)] {
            guard values.count == count else {
                throw HDF5Error(file: file.path, object: path, reason: "attribute '\(name)' changed while it was read")
            }
            return values
        }
        var output: UnsafeMutablePointer<CChar>?
        var size = 0
        var signal: Int32 = 0
        let timeout: Int32 = 5_000
        let status = scion_read_attribute_isolated(objectHandle.id, name, maxAttributeBytes, timeout, &output, &size, &signal)
        defer { free(output) }
        try HDF5File.check(status, signal: signal, timeout: timeout, file: file.path, object: path,
                           reading: "the variable-length strings of attribute '\(name)'")
        let (strings, _) = HDF5File.parse(UnsafeRawBufferPointer(start: output, count: output == nil ? 0 : size))
        guard let values = strings.values.values.first, values.count == count else {
            throw HDF5Error.library(file: file.path, object: path, "cannot read attribute '\(name)'")
        }
        return values
    }
}
