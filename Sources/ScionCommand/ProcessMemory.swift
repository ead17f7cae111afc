import ScionRuntime

/// glibc allocator settings for a command that runs a model once: its peak memory is what the
/// executor holds (weights, live activations), not what the allocator kept after frees.
///
/// glibc maps large blocks separately and returns them to the system when freed, but it raises the
/// size it counts as large to that of each mapped block freed (up to 32 MB): after reading a model,
/// freeing its buffers lets later activations of up to that size come from the heap, where freed
/// ones stay in the process as holes (ResNet50 at batch 32: 17 MiB more peak from its .h5, 56 MiB from ONNX).
enum ProcessMemory {
    /// Before reading a model: an ONNX file is decoded whole (protobuf-c copies every tensor, then
    /// Swift copies it again), and with the adjusting threshold those copies land on the heap and
    /// leave holes there that `malloc_trim` did not give back (ResNet50 at batch 32: 505 MiB peak,
    /// 449 MiB with large blocks mapped separately from the start). A Keras file's weights are read
    /// one at a time, and there the adjusting threshold is what lets each kernel's scratch buffer
    /// reuse the last one's pages: fixed from the start, a ResNet50 `.h5` run took about 10% more
    /// CPU time (page faults), for no memory saved. So only for ONNX files.
    static func prepareToRead(_ path: String) {
        if path.lowercased().hasSuffix(".onnx") { mapLargeBlocksSeparately() }
    }

    /// Once the model is read and its buffers freed: those pages back to the system. Then, when the
    /// pass's two largest values (`largestValues` bytes) are large, large blocks are mapped on
    /// their own, so each activation goes back to the system as soon as it is dropped (peak memory:
    /// the live values). When they are small (at most 64 MiB together: ResNet50 at batch 2 makes
    /// 6 MB ones), freed blocks stay in the heap for the next ones instead, as in repeated passes:
    /// mapping and faulting in every activation afresh took a quarter of a single batch-2 pass
    /// (ResNet50 0.096 → 0.073 s, DenseNet121 0.098 → 0.067 s), for 15 MiB more peak, within the
    /// 64 MiB the memory target allows beyond the weights and the two largest values.
    static func settleBeforeThePass(largestValues: Int?) {
        returnFreedPages()
        if let largestValues, largestValues <= 64 << 20 {
            keepFreedBlocks()
        } else {
            mapLargeBlocksSeparately()
        }
    }


    /// Keeps `object` alive until the process exits, which frees it without running its deinit.
    /// For objects that hold no large memory and whose teardown is pure cost (an open HDF5 file).
    static func leaveToExit(_ object: Any) {
        leftToExit.append(object)
    }

    /// Only the command's main thread touches it.
    nonisolated(unsafe) private static var leftToExit: [Any] = []

    /// Blocks from this size up are mapped on their own (and freed to the system at once), whatever
    /// was freed before: glibc's `mallopt(M_MMAP_THRESHOLD, ...)`, which also turns the adjustment
    /// off. 4 MiB keeps a small batch's activations on the heap, where reusing them costs no page
    /// faults (a batch-2 ResNet50 pass took the same CPU time with it as without).
    static func mapLargeBlocksSeparately(from bytes: Int32 = 4 << 20) {
        Allocator.mapBlocksSeparately(from: bytes)
    }

    /// For repeated passes (`run --repeat`, benchmarks): freed blocks of any size stay in the heap,
    /// so each pass reuses the last one's pages instead of mapping and zeroing its activations again
    /// (page faults were about 8% of a ResNet50 batch-32 pass). The first pass has set the peak; the
    /// passes after it fit in what it freed.
    static func keepFreedBlocks() {
        Allocator.keepFreedBlocks(below: 1 << 30, trimAbove: 1 << 30)
    }

    /// For `finetune`, `predict` and `evaluate`, which run the model batch after batch (a folder of
    /// images streams through the frozen base 64 images at a time): `keepFreedBlocks`, so each batch
    /// reuses the pages the last one freed. Without it every activation above glibc's threshold
    /// (MobileNetV2's at batch 64: 100 to 300 MB) was mapped, zeroed by page faults and unmapped
    /// again each batch: 2,000 JPEGs through MobileNetV2 took 59 CPU seconds, 33 with it, for the same
    /// peak (868 MiB against 878). The trainer sets its own threshold once training starts.
    static func runningBatchAfterBatch() {
        keepFreedBlocks()
    }

    /// Gives the heap's free pages back to the system (glibc's `malloc_trim(0)`), after the model's
    /// reading freed its buffers and before the pass.
    static func returnFreedPages() {
        Allocator.returnFreedPages()
    }
}
