import ScionIR

/// Plain Swift mirrors of the ONNX protobuf messages Scion reads and writes (ModelProto and what it
/// holds). The codec (`ONNXProtoCodec`) turns them into bytes and back through protobuf-c; everything
/// else in ScionONNX works on these structs, never on C pointers.

/// ONNX `TensorProto.DataType` values.
public enum ONNXDataType: Int32, Sendable, CaseIterable {
    case undefined = 0, float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7
    case string = 8, bool = 9, float16 = 10, double = 11, uint32 = 12, uint64 = 13
    case complex64 = 14, complex128 = 15, bfloat16 = 16

    /// The IR type, nil for types the IR has no name for.
    public var dtype: DType? {
        switch self {
        case .float: .float32
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .int32: .int32
        case .int64: .int64
        case .string: .string
        case .bool: .bool
        case .float16: .float16
        case .double: .float64
        case .uint32: .uint32
        case .uint64: .uint64
        case .bfloat16: .bfloat16
        case .undefined, .complex64, .complex128: nil
        }
    }

    public init(_ dtype: DType) {
        switch dtype {
        case .float32: self = .float
        case .float16: self = .float16
        case .bfloat16: self = .bfloat16
        case .float64: self = .double
        case .int8: self = .int8
        case .int16: self = .int16
        case .int32: self = .int32
        case .int64: self = .int64
        case .uint8: self = .uint8
        case .uint16: self = .uint16
        case .uint32: self = .uint32
        case .uint64: self = .uint64
        case .bool: self = .bool
        case .string: self = .string
        }
    }
}

/// Where a tensor's bytes are.
public enum ONNXTensorData {
    /// Little-endian raw bytes (`raw_data`), or values decoded from the typed fields
    /// (`float_data`, `int64_data`...) converted to raw bytes.
    case raw([UInt8])
    /// Bytes not yet read: written from the storage when the model is encoded (the writer streams
    /// them tensor by tensor), or a lazy range of the file being read.
    case storage(TensorStorage)
    /// `data_location = EXTERNAL`: a file beside the model, as its `external_data` entries say.
    case external(location: String, offset: Int, length: Int?)
    /// `string_data`.
    case strings([[UInt8]])
}

/// `TensorProto`.
public struct ONNXTensor {
    public var name: String
    public var dimensions: [Int64]
    public var dataType: Int32
    public var data: ONNXTensorData

    public init(name: String, dimensions: [Int64], dataType: Int32, data: ONNXTensorData) {
        self.name = name; self.dimensions = dimensions; self.dataType = dataType; self.data = data
    }
}

/// One dimension of a `TensorShapeProto`.
public enum ONNXDimension: Equatable, Sendable {
    case value(Int64)
    case parameter(String)
    case unknown
}

/// `ValueInfoProto` of a tensor type.
public struct ONNXValueInfo: Equatable, Sendable {
    public var name: String
    public var elementType: Int32
    /// nil when the shape is not given at all (unknown rank).
    public var shape: [ONNXDimension]?
    public init(name: String, elementType: Int32, shape: [ONNXDimension]?) {
        self.name = name; self.elementType = elementType; self.shape = shape
    }
}

/// `AttributeProto`.
public enum ONNXAttributeValue {
    case float(Float)
    case int(Int64)
    case string([UInt8])
    case tensor(ONNXTensor)
    case graph(ONNXGraph)
    case floats([Float])
    case ints([Int64])
    case strings([[UInt8]])
    case tensors([ONNXTensor])
    case graphs([ONNXGraph])
}

public struct ONNXAttribute {
    public var name: String
    public var value: ONNXAttributeValue
    public init(name: String, value: ONNXAttributeValue) { self.name = name; self.value = value }
}

/// `NodeProto`.
public struct ONNXNode {
    public var name: String
    public var opType: String
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [ONNXAttribute]
    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [ONNXAttribute] = []) {
        self.name = name; self.opType = opType; self.domain = domain; self.inputs = inputs
        self.outputs = outputs; self.attributes = attributes
    }

    public func attribute(_ name: String) -> ONNXAttributeValue? { attributes.first { $0.name == name }?.value }
}

/// `GraphProto`.
public struct ONNXGraph {
    public var name: String
    public var nodes: [ONNXNode]
    public var initializers: [ONNXTensor]
    public var inputs: [ONNXValueInfo]
    public var outputs: [ONNXValueInfo]
    public var valueInfo: [ONNXValueInfo]
    public init(name: String, nodes: [ONNXNode] = [], initializers: [ONNXTensor] = [], inputs: [ONNXValueInfo] = [],
                outputs: [ONNXValueInfo] = [], valueInfo: [ONNXValueInfo] = []) {
        self.name = name; self.nodes = nodes; self.initializers = initializers; self.inputs = inputs
        self.outputs = outputs; self.valueInfo = valueInfo
    }
}

/// `OperatorSetIdProto`.
public struct ONNXOperatorSet: Equatable, Sendable {
    public var domain: String
    public var version: Int64
    public init(domain: String, version: Int64) { self.domain = domain; self.version = version }
}

/// `ModelProto`.
public struct ONNXModel {
    public var irVersion: Int64
    public var operatorSets: [ONNXOperatorSet]
    public var producerName: String
    public var producerVersion: String
    public var domain: String
    public var modelVersion: Int64
    public var documentation: String
    public var graph: ONNXGraph
    /// `metadata_props`, in order.
    public var metadata: [(key: String, value: String)]

    public init(irVersion: Int64, operatorSets: [ONNXOperatorSet], producerName: String = "",
                producerVersion: String = "", domain: String = "", modelVersion: Int64 = 0,
                documentation: String = "", graph: ONNXGraph, metadata: [(key: String, value: String)] = []) {
        self.irVersion = irVersion; self.operatorSets = operatorSets; self.producerName = producerName
        self.producerVersion = producerVersion; self.domain = domain; self.modelVersion = modelVersion
        self.documentation = documentation; self.graph = graph; self.metadata = metadata
    }

    /// The opset version of the default (`ai.onnx`) domain.
    public var defaultOpset: Int64? {
        operatorSets.first { $0.domain == "" || $0.domain == "ai.onnx" }?.version
    }
}
