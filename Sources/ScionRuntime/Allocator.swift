import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// glibc's allocator settings, the one place Scion calls them (`mallopt`, `malloc_trim` from
/// <malloc.h>, which the CBLAS shim includes: Swift's Glibc module leaves that header out). Who
/// sets what, and why, is up to the caller: the run command keeps its peak low
/// (ScionCommand's ProcessMemory), the trainer and repeated passes reuse freed blocks
/// (`Trainer.keepFreedBuffersForReuse`). No effect on other platforms.
package enum Allocator {
    /// Blocks from `bytes` up are mapped on their own and given back to the system when freed;
    /// also stops glibc from raising that size after each such free.
    package static func mapBlocksSeparately(from bytes: Int32) {
        #if os(Linux)
        _ = mallopt(M_MMAP_THRESHOLD, bytes)
        #endif
    }

    /// Freed blocks below `mapped` bytes stay in the heap for the next allocation, and the heap's
    /// top is given back only past `trim` free bytes. True when glibc took both.
    @discardableResult
    package static func keepFreedBlocks(below mapped: Int32, trimAbove trim: Int32) -> Bool {
        #if os(Linux)
        return mallopt(M_MMAP_THRESHOLD, mapped) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1
        #else
        return false
        #endif
    }

    /// Buffers from this many floats (4 MB) up are worth `preferHugePages`: a fresh batch-32
    /// activation was otherwise faulted in and zeroed 4 KB at a time (page faults took a third of
    /// the CPU time of a whole `scion run` of DenseNet121 or EfficientNetB0).
    static let hugePageWorthy = 1 << 20

    /// Gives the heap's free pages back to the system.
    package static func returnFreedPages() {
        #if os(Linux)
        _ = malloc_trim(0)
        #endif
    }

    /// Asks the system to back the whole 2 MiB pages inside `buffer` with transparent huge pages
    /// (`madvise(MADV_HUGEPAGE)`), before anything is written there: touching fresh memory then
    /// costs one page fault per 2 MiB instead of one per 4 KiB. A request only: where huge pages are
    /// off, or for memory already touched, nothing changes. Worth it for large buffers written once
    /// and kept (the executor's weights); returns whether the system took the request.
    @discardableResult
    package static func preferHugePages(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        #if os(Linux)
        let hugePage = 2 << 20
        guard let base = buffer.baseAddress else { return false }
        let start = (Int(bitPattern: base) + hugePage - 1) & ~(hugePage - 1)
        let end = (Int(bitPattern: base) + buffer.count) & ~(hugePage - 1)
        guard end > start, let first = UnsafeMutableRawPointer(bitPattern: start) else { return false }
        return madvise(first, end - start, MADV_HUGEPAGE) == 0
        #else
        return false
        #endif
    }

    /// Writes one byte of every page of `buffer` (its contents are then undefined), so that the
    /// page faults of fresh memory are taken now, by this thread.
    package static func touchPages(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        for offset in stride(from: 0, to: buffer.count, by: 4096) { base.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self) }
    }
}
