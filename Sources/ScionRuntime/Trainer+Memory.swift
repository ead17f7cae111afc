extension Trainer {
    /// Every training step allocates the same tensors again (the same shapes, batch after batch).
    /// glibc hands blocks above its mmap threshold (128 KiB at first) to the kernel on `free` and
    /// maps fresh zero pages for the next step, which the profile of MobileNetV2's top layers showed
    /// as page faults and page clearing (about 5% of a step, docs/benchmarks.md, issue #18). Raising
    /// the threshold to its maximum (32 MiB on 64-bit) and the trim threshold above it keeps freed
    /// blocks in the heap, so the next step reuses them already mapped. Process-wide, set once; the
    /// memory kept is what one step uses at its peak.
    static func keepFreedBuffersForReuse() {
        _ = freedBuffersKept
    }

    private static let freedBuffersKept: Bool = Allocator.keepFreedBlocks(below: 32 << 20, trimAbove: 256 << 20)
}
