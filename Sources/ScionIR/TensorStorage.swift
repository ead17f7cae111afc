import Synchronization

/// Somewhere a tensor's bytes live outside memory: an HDF5 dataset, a range of an ONNX file, an
/// external-data file. Readers provide implementations; nothing is read until asked.
///
/// Sendable, because a storage may be read from any task: `TensorStorage` calls `readBytes()` from
/// one task at a time, but not always the same one.
public protocol TensorSource: AnyObject, Sendable {
    /// Bytes the tensor occupies once read (elements times element size).
    var byteCount: Int { get }
    /// Where the bytes are, for messages (`model.h5:/model_weights/dense/dense/kernel:0`).
    var location: String { get }
    /// Reads the tensor's bytes, little-endian, in row-major order.
    func readBytes() throws -> [UInt8]
    /// The same bytes written straight into `buffer` (exactly `byteCount` of them), so a reader that
    /// wants them in memory it owns (the executor's float32 weights) gets no intermediate copy.
    /// The default goes through `readBytes()`; sources that can do better implement it.
    func readBytes(into buffer: UnsafeMutableRawBufferPointer) throws
}

extension TensorSource {
    public func readBytes(into buffer: UnsafeMutableRawBufferPointer) throws {
        let bytes = try readBytes()
        try TensorStorage.copy(bytes, into: buffer, from: location)
    }
}

/// A source whose bytes already lie in memory it maps (a range of an ONNX file): a reader that only
/// looks at them (the executor reordering a kernel into its own array) uses them where they are
/// instead of a copy in fresh pages first.
public protocol MappedTensorSource: TensorSource {
    /// Calls `body` with the bytes where they lie; the source may drop its pages from the process
    /// afterwards (they stay in the page cache for a later read).
    func withMappedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

/// A source whose bytes are another storage's with the axes reordered (the layout passes' kernels,
/// HWIO to OIHW). Readers that want the tensor in its original order (an executor running
/// convolutions channels-last wants Keras's HWIO, exactly as the file holds it) read `base` and skip
/// the permutation both ways (`TensorStorage.reordering`).
public protocol ReorderedTensorSource: TensorSource {
    /// The tensor before the reordering, and its shape.
    var original: (storage: TensorStorage, shape: [Int])? { get }
    /// Output axis `k` is axis `permutation[k]` of the original (numpy's `transpose`).
    var axisPermutation: [Int] { get }
}

/// Where a parameter's bytes are. A reference type so that a layer shared by several nodes and every
/// copy of a graph share one storage: reading happens once, on first use, and only when asked.
///
/// Safe to share between tasks: the contents sit behind a lock, and reads from the source are
/// serialised, so tasks asking at once for bytes not yet loaded wait for one read instead of each
/// starting their own.
public final class TensorStorage: Sendable {
    private enum Backing: Sendable {
        case memory([UInt8])
        case source(any TensorSource)
    }

    private let backing: Mutex<Backing>
    /// Held while reading from the source (not while answering `isLoaded`, `byteCount`...): one read
    /// at a time, and a caller that waited finds the bytes another kept.
    private let reading = Mutex(())

    /// A storage holding `bytes` in memory.
    public init(bytes: [UInt8]) { backing = Mutex(.memory(bytes)) }
    /// A storage that reads its bytes from `source` on first use.
    public init(source: any TensorSource) { backing = Mutex(.source(source)) }

    private var current: Backing { backing.withLock { $0 } }

    /// True when the bytes are already in memory.
    public var isLoaded: Bool {
        if case .memory = current { return true }
        return false
    }

    /// Bytes the tensor occupies, known without reading it.
    public var byteCount: Int {
        switch current {
        case .memory(let bytes): bytes.count
        case .source(let source): source.byteCount
        }
    }

    /// Where the bytes are, for messages: the source's location, or `memory`.
    public var location: String {
        switch current {
        case .memory: "memory"
        case .source(let source): source.location
        }
    }

    /// The bytes, read from the source on first use and kept when `keep` is true.
    public func bytes(keep: Bool = true) throws -> [UInt8] {
        if case .memory(let bytes) = current { return bytes }
        return try reading.withLock { _ throws -> [UInt8] in
            switch current {
            case .memory(let bytes):
                return bytes  // another caller read and kept them while this one waited
            case .source(let source):
                let bytes = try source.readBytes()
                if keep {
                    backing.withLock { backing in
                        // Unless `replace(with:)` came first while the source was being read.
                        if case .source(let still) = backing, still === source { backing = .memory(bytes) }
                    }
                }
                return bytes
            }
        }
    }

    /// The bytes written into `buffer` (exactly `byteCount` of them), from memory when loaded, else
    /// straight from the source; never kept (the caller holds them now).
    public func readBytes(into buffer: UnsafeMutableRawBufferPointer) throws {
        if case .memory(let bytes) = current { return try Self.copy(bytes, into: buffer, from: location) }
        try reading.withLock { _ throws in
            switch current {
            case .memory(let bytes): try Self.copy(bytes, into: buffer, from: location)
            case .source(let source):
                guard buffer.count == source.byteCount else { throw Self.sizeMismatch(buffer.count, source.byteCount, source.location) }
                try source.readBytes(into: buffer)
            }
        }
    }

    /// `body` on the bytes where the source maps them (`MappedTensorSource`); nil, without calling
    /// it, for bytes in memory or any other source.
    public func withMappedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard case .source(let source) = current, let mapped = source as? any MappedTensorSource else { return nil }
        return try mapped.withMappedBytes(body)
    }

    /// When the bytes are a whole-tensor reordering of another storage's (a lowered kernel), that
    /// storage, its shape and the permutation that makes these bytes from it; nil otherwise (bytes in
    /// memory, a plain file tensor, a reordering of part of a tensor).
    public var reordering: (original: TensorStorage, shape: [Int], permutation: [Int])? {
        guard case .source(let source) = current, let reordered = source as? any ReorderedTensorSource,
              let original = reordered.original else { return nil }
        return (original.storage, original.shape, reordered.axisPermutation)
    }

    static func copy(_ bytes: [UInt8], into buffer: UnsafeMutableRawBufferPointer, from location: String) throws {
        guard bytes.count == buffer.count else { throw sizeMismatch(buffer.count, bytes.count, location) }
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    static func sizeMismatch(_ wanted: Int, _ held: Int, _ location: String) -> IRError {
        IRError(location, "holds \(held) bytes, \(wanted) were asked for", kind: .parameter)
    }

    /// Replaces the contents (after training, for example).
    public func replace(with bytes: [UInt8]) { backing.withLock { $0 = .memory(bytes) } }
}

/// A named weight tensor. `trainable` follows Keras: false for a frozen layer's weights, for every
/// weight inside a frozen nested model, and always for BatchNormalization's moving statistics.
public struct Parameter: Sendable {
    /// Unique and stable: `layer/role`, with nested models' scope (`base/conv1/kernel`).
    public var name: String
    /// The weight's part in its op: `.kernel`, `.bias`, `.gamma`, `.movingMean`...
    public var role: ParameterRole
    /// Dimensions, in row-major order as the bytes are laid out (a Keras Conv2D kernel is HWIO).
    public var shape: [Int]
    /// Element type.
    public var dtype: DType
    /// Whether training updates this weight.
    public var trainable: Bool
    /// The bytes, shared by every copy of the graph and read on first use.
    public var storage: TensorStorage

    /// A parameter whose bytes are in `storage`.
    public init(name: String, role: ParameterRole, shape: [Int], dtype: DType, trainable: Bool, storage: TensorStorage) {
        self.name = name; self.role = role; self.shape = shape; self.dtype = dtype
        self.trainable = trainable; self.storage = storage
    }

    /// Number of elements (0 when the shape's product overflows).
    public var elementCount: Int { shape.checkedProduct ?? 0 }
    /// Bytes the elements occupy (0 for a type without a fixed size).
    public var byteCount: Int { elementCount * (dtype.byteSize ?? 0) }

    /// The value of a one-element float32, int64 or int32 weight (ONNX's scalar constants: a
    /// Where's 0, a Reshape's axis); nil for any other weight or unreadable bytes.
    public var scalarValue: Double? {
        guard elementCount == 1, let bytes = try? storage.bytes(), bytes.count == dtype.byteSize else { return nil }
        return bytes.withUnsafeBytes { raw in
            switch dtype {
            case .float32: Double(raw.loadUnaligned(as: Float.self))
            case .int64: Double(raw.loadUnaligned(as: Int64.self))
            case .int32: Double(raw.loadUnaligned(as: Int32.self))
            default: nil
            }
        }
    }
}
