import ScionIR

/// The memory a `.keras` archive's weights file lives in while libhdf5 reads it as a file image: a
/// range of the archive's read-only mapping when the entry is stored, else an inflated copy. libhdf5
/// keeps a pointer into it, so this must outlive every dataset of that file.
final class WeightsFileImage: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    /// The archive (a mapping) or the inflated bytes: only held, never read here.
    private let owner: AnyObject
    /// Pages of a file's read-only mapping can be dropped and come back from the page cache when
    /// touched again; an inflated copy's would come back as zeros.
    private let isFileMapping: Bool

    init(bytes: UnsafeRawBufferPointer, owner: AnyObject, isFileMapping: Bool) {
        self.bytes = bytes
        self.owner = owner
        self.isFileMapping = isFileMapping
    }

    /// Drops the whole pages inside `range` (offsets in the image) from this process's memory, once a
    /// reader has its own copy of a weight (`MappedPages.release`): without it a `.keras` run counted
    /// its weights twice at the peak (ResNet50 at batch 2: 276 MiB against 195 from its `.h5`). Only
    /// for a file mapping.
    func release(_ range: Range<Int>) {
        guard isFileMapping, let base = bytes.baseAddress else { return }
        let clipped = range.clamped(to: 0..<bytes.count)
        MappedPages.release(UnsafeRawBufferPointer(start: base + clipped.lowerBound, count: clipped.count))
    }
}
