#if canImport(Glibc)
import Glibc
#endif

/// glibc allocator settings for a command that runs a model once: its peak memory is what the
/// executor holds (weights, live activations), not what the allocator kept after frees.
///
/// glibc maps large blocks separately and returns them to the system when freed, but it raises the
/// size it counts as large to that of each mapped block freed (up to 32 MB): after reading a model,
/// freeing its buffers lets later activations of up to that size come from the heap, where freed
/// ones stay in the process as holes. ResNet50 from ONNX at batch 32 peaked 50 MB higher that way.
enum ProcessMemory {
    /// Blocks from this size up are mapped on their own (and freed to the system at once), whatever
    /// was freed before: glibc's `mallopt(M_MMAP_THRESHOLD, ...)`, which also turns the adjustment
    /// off. 4 MiB keeps a small batch's activations on the heap, where reusing them costs no page
    /// faults (a batch-2 ResNet50 pass took the same CPU time with it as without).
    static func mapLargeBlocksSeparately(from bytes: Int32 = 4 << 20) {
        #if canImport(Glibc)
        typealias SetOption = @convention(c) (Int32, Int32) -> Int32
        let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD in malloc.h
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {  // RTLD_DEFAULT
            _ = unsafeBitCast(symbol, to: SetOption.self)(mmapThreshold, bytes)
        }
        #endif
    }

    /// Gives the heap's free pages back to the system (glibc's `malloc_trim(0)`), after the model's
    /// reading freed its buffers and before the pass. Neither function is in Swift's Glibc module
    /// (malloc.h), hence `dlsym`.
    static func returnFreedPages() {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(symbol, to: Trim.self)(0)
        }
        #endif
    }
}
