import Foundation

/// A prepared kernel's float32 values (folded, reordered, packed or transformed for the kernel that
/// reads it): an array the executor made, or a span of a weights cache file mapped into memory
/// (`WeightsCache`), which costs no fresh pages. Fresh pages were most of preparing a large model:
/// this machine's kernel faults in and zeroes anonymous memory at about 2 GB/s, where a mapped file
/// already in the page cache costs a few milliseconds for 100 MB.
public struct WeightValues: @unchecked Sendable {
    private enum Storage {
        case array([Float])
        case mapped(MappedFile, offset: Int)
    }
    private let storage: Storage
    public let count: Int

    public init(_ values: [Float]) {
        storage = .array(values)
        count = values.count
    }

    /// `count` floats at `offset` bytes into `file` (the caller checked the span and its alignment).
    init(mapped file: MappedFile, offset: Int, count: Int) {
        precondition(offset % MemoryLayout<Float>.alignment == 0 && offset + count * 4 <= file.byteCount, "a span outside the mapped file")
        storage = .mapped(file, offset: offset)
        self.count = count
    }

    /// Whether the values are the cache file's pages rather than the executor's own memory.
    var isMapped: Bool {
        if case .mapped = storage { return true }
        return false
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        switch storage {
        case .array(let values):
            return try values.withUnsafeBufferPointer(body)
        case .mapped(let file, let offset):
            let start = (file.base + offset).assumingMemoryBound(to: Float.self)
            return try body(UnsafeBufferPointer(start: start, count: count))
        }
    }

    /// The values as an array (a copy when they are mapped).
    var array: [Float] {
        if case .array(let values) = storage { return values }
        return withUnsafeBufferPointer { Array($0) }
    }
}

/// A whole file mapped read-only (private: nobody's writes reach it), unmapped when the last
/// `WeightValues` reading it is gone. Cache files are replaced by renaming a new file over them,
/// never rewritten in place, so a mapping never sees its file shrink under it.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let byteCount: Int

    /// nil when the file cannot be opened or mapped (the caller treats the cache as absent).
    init?(path: String) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size > 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int(status.st_size)
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else { return nil }
        base = UnsafeRawPointer(address)
        byteCount = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
}
