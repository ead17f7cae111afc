import ScionIR
import Synchronization

/// A source that counts reads, to show the pass reads nothing until asked.
final class CountingSource: TensorSource {
    let bytes: [UInt8]
    private let readCount = Mutex(0)
    /// How often `readBytes()` ran.
    var reads: Int { readCount.withLock { $0 } }
    init(bytes: [UInt8]) { self.bytes = bytes }
    var byteCount: Int { bytes.count }
    var location: String { "counting" }
    func readBytes() throws -> [UInt8] {
        readCount.withLock { $0 += 1 }
        return bytes
    }
}
