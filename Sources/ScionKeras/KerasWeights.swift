import HDF5
import ScionIR
import Synchronization

/// A weight tensor inside an HDF5 file; its bytes are read only when asked for.
final class HDF5TensorSource: TensorSource {
    let dataset: HDF5Dataset
    let byteCount: Int
    let location: String
    /// Memory the HDF5 file lives in, for files opened from an archive: must outlive the dataset.
    /// libhdf5 reads it through its own pointer; here its pages are only dropped once read.
    let backingMemory: WeightsFileImage?

    /// Serialises every lazy weight read, whichever file it comes from. `TensorStorage` is Sendable, so
    /// tasks may ask for weights at once; libhdf5 is only safe for that when built thread-safe (Debian's
    /// is, `H5_HAVE_THREADSAFE`), a build option off by default, and even then it runs one call at a
    /// time behind its own global lock: this lock costs no parallelism and keeps reads sound with a
    /// libhdf5 built without it. (Opening files is not covered: load models from one task at a time on
    /// such a build.)
    private static let readLock = Mutex(())

    init(dataset: HDF5Dataset, byteCount: Int, location: String, backingMemory: WeightsFileImage?) {
        self.dataset = dataset
        self.byteCount = byteCount
        self.location = location
        self.backingMemory = backingMemory
    }

    func readBytes() throws -> [UInt8] {
        let bytes = try Self.readLock.withLock { _ throws -> [UInt8] in
            defer { releaseImagePages() }
            return try dataset.readBytes(limit: byteCount)
        }
        guard bytes.count == byteCount else {
            throw HDF5Error(file: dataset.file.path, object: dataset.path,
                            reason: "read \(bytes.count) bytes, expected \(byteCount)")
        }
        return bytes
    }

    /// Straight into the caller's memory (`H5Dread` into it): no intermediate array.
    func readBytes(into buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count == byteCount else {
            throw HDF5Error(file: dataset.file.path, object: dataset.path, reason: "needs \(byteCount) bytes, \(buffer.count) were given")
        }
        try Self.readLock.withLock { _ throws in
            defer { releaseImagePages() }
            try dataset.read(into: buffer)
        }
    }

    /// Drops the pages of an archive's mapping that held this dataset, now that the reader has its
    /// own copy (`WeightsFileImage.release`). Called under `readLock`, as every libhdf5 call here.
    private func releaseImagePages() {
        guard let image = backingMemory, let offset = dataset.contiguousOffset else { return }
        let (end, overflow) = offset.addingReportingOverflow(dataset.storageSize)
        guard !overflow else { return }
        image.release(offset..<end)
    }
}

/// Which weights each layer class has, in the order Keras creates them, and which of them are never
/// trainable.
enum KerasWeightRoles {
    /// Roles in creation order: Keras 3 stores a layer's variables as `vars/0`, `vars/1`... in this order.
    static func roles(className: String, config: JSON) -> [ParameterRole]? {
        let useBias = config["use_bias"]?.bool ?? true
        let bias: [ParameterRole] = useBias ? [.bias] : []
        let scale: [ParameterRole] = (config["scale"]?.bool ?? true) ? [.gamma] : []
        let center: [ParameterRole] = (config["center"]?.bool ?? true) ? [.beta] : []
        switch className {
        case "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
             "Convolution1D", "Convolution2D", "Convolution2DTranspose":
            return [.kernel] + bias
        case "DepthwiseConv1D", "DepthwiseConv2D":
            return [.depthwiseKernel] + bias
        case "SeparableConv1D", "SeparableConv2D":
            return [.depthwiseKernel, .pointwiseKernel] + bias
        case "BatchNormalization", "SyncBatchNormalization":
            return scale + center + [.movingMean, .movingVariance]
        case "LayerNormalization", "GroupNormalization":
            return scale + center
        case "Attention":
            return (config["use_scale"]?.bool ?? false ? [.other("scale")] : [])
                + (config["score_mode"]?.string == "concat" ? [.other("concat_score_weight")] : [])
        case "AdditiveAttention": return config["use_scale"]?.bool ?? true ? [.other("scale")] : []
        case "EinsumDense": return [.kernel] + ((config["bias_axes"]?.isNull ?? true) ? [] : [.bias])
        case "PReLU": return [.alpha]
        case "Embedding": return [.embeddings]
        case "LayerScale": return [.gamma]
        case "RMSNormalization": return [.other("scale")]
        case "Normalization": return [.mean, .variance, .count]
        default: return nil
        }
    }

    /// The classes that keep statistics. Only theirs are frozen by role: another layer's weight that
    /// happens to be called `count` or `mean` (a custom layer's) is left as the layer says.
    static let statisticClasses: Set<String> = ["BatchNormalization", "SyncBatchNormalization", "Normalization"]

    /// Roles that are statistics, not learned: never trainable whatever the layer's flag.
    static func isAlwaysFrozen(_ role: ParameterRole, className: String) -> Bool {
        statisticClasses.contains(className) && role.isStatistic
    }

    /// The role a stored weight name stands for: `conv1/kernel:0` -> `kernel`. Keras 3 calls a
    /// depthwise kernel `kernel`; the IR calls it `depthwise_kernel` in every format.
    static func role(fromWeightName name: String, className: String) -> ParameterRole {
        var last = name.split(separator: "/").last.map(String.init) ?? name
        if let colon = last.lastIndex(of: ":") { last = String(last[..<colon]) }
        let role = ParameterRole(rawValue: last)
        if role == .kernel, className.hasPrefix("DepthwiseConv") { return .depthwiseKernel }
        return role
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
func makeParameter(name: String, role: ParameterRole, dataset: HDF5Dataset, trainable: Bool, file: String,
                   backingMemory: WeightsFileImage? = nil) throws -> Parameter {
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
