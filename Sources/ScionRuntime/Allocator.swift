import CBLAS
#if os(Linux)
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

    /// Buffers from this many floats up are worth `preferHugePages` (several 2 MB pages).
    static let hugePageWorthy = 1 << 20

    /// Asks the kernel to back the whole 2 MB pages inside `bytes` from `start` with transparent huge
    /// pages (`madvise(MADV_HUGEPAGE)`, before the first write). A fresh batch-32 activation is
    /// otherwise faulted in and zeroed 4 KB at a time: page faults took a third of the CPU time of a
    /// whole `scion run` of DenseNet121 or EfficientNetB0 (the kernel's time, not the executor's). Only
    /// a hint: where huge pages are off (`never`) or already `always`, nothing changes.
    static func preferHugePages(_ start: UnsafeMutableRawPointer, bytes: Int) {
        #if os(Linux)
        let huge = 2 << 20
        let first = (Int(bitPattern: start) + huge - 1) & ~(huge - 1)
        let end = (Int(bitPattern: start) + bytes) & ~(huge - 1)
        guard end > first, let aligned = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(aligned, end - first, MADV_HUGEPAGE)
        #endif
    }

    /// Gives the heap's free pages back to the system.
    package static func returnFreedPages() {
        #if os(Linux)
        _ = malloc_trim(0)
        #endif
    }
}
