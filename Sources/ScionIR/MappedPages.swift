#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Pages of a read-only file mapping that a reader is done with: an ONNX file's initializers, a
/// `.keras` archive's weights file, once the executor has its own copy of a weight.
public enum MappedPages {
    /// Drops the whole pages inside `bytes` (part of a read-only file mapping) from this process's
    /// memory. They stay in the page cache, and a later read maps them again. Without it, reading a
    /// model counted its weights twice at the peak: the file's pages and the executor's arrays.
    /// Never for anonymous memory, whose dropped pages would come back as zeros.
    public static func release(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + bytes.count) / page * page
        guard end > start, let first = UnsafeMutableRawPointer(bitPattern: start) else { return }
        madvise(first, end - start, MADV_DONTNEED)
    }
}
