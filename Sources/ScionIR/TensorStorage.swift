/// Somewhere a tensor's bytes live outside memory: an HDF5 dataset, a range of an ONNX file, an
/// external-data file. Readers provide implementations; nothing is read until asked.
public protocol TensorSource: AnyObject {
    /// Bytes the tensor occupies once read (elements times element size).
    var byteCount: Int { get }
    /// Where the bytes are, for messages (`model.h5:/model_weights/dense/dense/kernel:0`).
    var location: String { get }
    /// Reads the tensor's bytes, little-endian, in row-major order.
    func readBytes() throws -> [UInt8]
}

/// Where a parameter's bytes are. A reference type so that a layer shared by several nodes and every
/// copy of a graph share one storage: reading happens once, on first use, and only when asked.
public final class TensorStorage {
    private enum Backing {
        case memory([UInt8])
        case source(any TensorSource)
    }

    private var backing: Backing

    public init(bytes: [UInt8]) { backing = .memory(bytes) }
    public init(source: any TensorSource) { backing = .source(source) }

    /// True when the bytes are already in memory.
    public var isLoaded: Bool {
        if case .memory = backing { return true }
        return false
    }

    public var byteCount: Int {
        switch backing {
        case .memory(let bytes): bytes.count
        case .source(let source): source.byteCount
        }
    }

    public var location: String {
        switch backing {
        case .memory: "memory"
        case .source(let source): source.location
        }
    }

    /// The bytes, read from the source on first use and kept when `keep` is true.
    public func bytes(keep: Bool = true) throws -> [UInt8] {
        switch backing {
        case .memory(let bytes):
            return bytes
        case .source(let source):
            let bytes = try source.readBytes()
            if keep { backing = .memory(bytes) }
            return bytes
        }
    }

    /// Replaces the contents (after training, for example).
    public func replace(with bytes: [UInt8]) { backing = .memory(bytes) }
}

/// A named weight tensor. `trainable` follows Keras: false for a frozen layer's weights, for every
/// weight inside a frozen nested model, and always for BatchNormalization's moving statistics.
public struct Parameter {
    /// Unique and stable: `layer/role`, with nested models' scope (`base/conv1/kernel`).
    public var name: String
    /// The weight's part in its op: `.kernel`, `.bias`, `.gamma`, `.movingMean`...
    public var role: ParameterRole
    public var shape: [Int]
    public var dtype: DType
    public var trainable: Bool
    public var storage: TensorStorage

    public init(name: String, role: ParameterRole, shape: [Int], dtype: DType, trainable: Bool, storage: TensorStorage) {
        self.name = name; self.role = role; self.shape = shape; self.dtype = dtype
        self.trainable = trainable; self.storage = storage
    }

    public var elementCount: Int { shape.checkedProduct ?? 0 }
    public var byteCount: Int { elementCount * (dtype.byteSize ?? 0) }
}
