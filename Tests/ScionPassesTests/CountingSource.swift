import ScionIR

/// A source that counts reads, to show the pass reads nothing until asked.
final class CountingSource: TensorSource {
    let bytes: [UInt8]
    var reads = 0
    init(bytes: [UInt8]) { self.bytes = bytes }
    var byteCount: Int { bytes.count }
    var location: String { "counting" }
    func readBytes() throws -> [UInt8] {
        reads += 1
        return bytes
    }
}
