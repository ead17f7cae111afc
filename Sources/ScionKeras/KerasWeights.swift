import HDF5
import ScionIR

/// A weight tensor inside an HDF5 file; its bytes are read only when asked for.
final class HDF5TensorSource: TensorSource {
    let dataset: HDF5Dataset
    let byteCount: Int
    let location: String
    /// Memory the HDF5 file lives in, for files opened from an archive: must outlive the dataset.
    let backingMemory: AnyObject?

    init(dataset: HDF5Dataset, byteCount: Int, location: String, backingMemory: AnyObject?) {
        self.dataset = dataset
        self.byteCount = byteCount
        self.location = location
        self.backingMemory = backingMemory
    }

    func readBytes() throws -> [UInt8] {
        let bytes = try dataset.readBytes(limit: byteCount)
        guard bytes.count == byteCount else {
            throw HDF5Error(file: dataset.file.path, object: dataset.path,
                            reason: "read \(bytes.count) bytes, expected \(byteCount)")
        }
        return bytes
    }
}

/// Which weights each layer class has, in the order Keras creates them, and which of them are never
/// trainable.
enum KerasWeightRoles {
    /// Roles in creation order: Keras 3 stores a layer's variables as `vars/0`, `vars/1`... in this order.
    static func roles(className: String, config: JSON) -> [String]? {
        let useBias = config["use_bias"]?.bool ?? true
        let bias = useBias ? ["bias"] : []
        switch className {
        case "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
             "Convolution1D", "Convolution2D", "Convolution2DTranspose":
            return ["kernel"] + bias
        case "DepthwiseConv1D", "DepthwiseConv2D":
            return ["depthwise_kernel"] + bias
        case "SeparableConv1D", "SeparableConv2D":
            return ["depthwise_kernel", "pointwise_kernel"] + bias
        case "BatchNormalization", "SyncBatchNormalization":
            return ((config["scale"]?.bool ?? true) ? ["gamma"] : []) + ((config["center"]?.bool ?? true) ? ["beta"] : [])
                + ["moving_mean", "moving_variance"]
        case "LayerNormalization":
            return ((config["scale"]?.bool ?? true) ? ["gamma"] : []) + ((config["center"]?.bool ?? true) ? ["beta"] : [])
        case "PReLU": return ["alpha"]
        case "Embedding": return ["embeddings"]
        case "LayerScale": return ["gamma"]
        case "Normalization": return ["mean", "variance", "count"]
        default: return nil
        }
    }

    /// Roles that are statistics, not learned: never trainable whatever the layer's flag.
    static func isAlwaysFrozen(_ role: String, className: String) -> Bool {
        switch className {
        case "BatchNormalization", "SyncBatchNormalization": role == "moving_mean" || role == "moving_variance"
        case "Normalization": role == "mean" || role == "variance" || role == "count"
        default: false
        }
    }

    /// The role a stored weight name stands for: `conv1/kernel:0` -> `kernel`. Keras 3 calls a
    /// depthwise kernel `kernel`; the IR calls it `depthwise_kernel` in every format.
    static func role(fromWeightName name: String, className: String) -> String {
        var last = name.split(separator: "/").last.map(String.init) ?? name
        if let colon = last.lastIndex(of: ":") { last = String(last[..<colon]) }
        if last == "kernel", className.hasPrefix("DepthwiseConv") { return "depthwise_kernel" }
        return last
    }
}

/// Element types as HDF5 stores them and as the IR names them, in one table both directions read.
/// Strings, bfloat16 and compound types have no counterpart.
private let hdf5ElementTypes: [(HDF5ElementType, DType)] = [
    (.float16, .float16), (.float32, .float32), (.float64, .float64),
    (.int8, .int8), (.int16, .int16), (.int32, .int32), (.int64, .int64),
    (.uint8, .uint8), (.uint16, .uint16), (.uint32, .uint32), (.uint64, .uint64), (.bool, .bool),
]

extension DType {
    /// The IR type for an HDF5 element type; nil for strings and compound types.
    init?(_ type: HDF5ElementType) {
        guard let match = hdf5ElementTypes.first(where: { $0.0 == type }) else { return nil }
        self = match.1
    }
}

extension HDF5ElementType {
    /// The HDF5 type that stores an IR type; nil for bfloat16 and strings.
    init?(_ dtype: DType) {
        guard let match = hdf5ElementTypes.first(where: { $0.1 == dtype }) else { return nil }
        self = match.0
    }
}

/// Makes a parameter for one stored dataset, checking its size before anything is read.
func makeParameter(name: String, role: String, dataset: HDF5Dataset, trainable: Bool, file: String,
                   backingMemory: AnyObject? = nil) throws -> Parameter {
    guard let dtype = DType(dataset.elementType), let width = dtype.byteSize else {
        throw KerasError(.invalidWeights, file: file, subject: name, "stored as \(dataset.elementType), not a numeric tensor")
    }
    let shape = dataset.shape
    guard let count = shape.checkedProduct, case (let bytes, false) = count.multipliedReportingOverflow(by: width) else {
        throw KerasError(.invalidWeights, file: file, subject: name, "declared shape \(shape) is too large")
    }
    let source = HDF5TensorSource(dataset: dataset, byteCount: bytes, location: "\(file):\(dataset.path)",
                                      backingMemory: backingMemory)
    return Parameter(name: name, role: role, shape: shape, dtype: dtype, trainable: trainable,
                     storage: TensorStorage(source: source))
}
