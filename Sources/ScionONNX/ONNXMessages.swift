import ScionIR

/// Plain Swift mirrors of the ONNX protobuf messages Scion reads and writes (ModelProto and what it
/// holds). The codec (`ONNXProtoCodec`) turns them into bytes and back through protobuf-c; everything
/// else in ScionONNX works on these structs, never on C pointers.

/// ONNX `TensorProto.DataType` values.
package enum ONNXDataType: Int32, Sendable, CaseIterable {
    case undefined = 0, float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7
    case string = 8, bool = 9, float16 = 10, double = 11, uint32 = 12, uint64 = 13
    case complex64 = 14, complex128 = 15, bfloat16 = 16

    /// The IR type, nil for types the IR has no name for.
    package var dtype: DType? {
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

    package init(_ dtype: DType) {
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
package enum ONNXTensorData {
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
package struct ONNXTensor {
    package var name: String
    package var dimensions: [Int64]
    package var dataType: Int32
    package var data: ONNXTensorData

    package init(name: String, dimensions: [Int64], dataType: Int32, data: ONNXTensorData) {
        self.name = name; self.dimensions = dimensions; self.dataType = dataType; self.data = data
    }
}

/// One dimension of a `TensorShapeProto`.
package enum ONNXDimension: Equatable, Sendable {
    case value(Int64)
    case parameter(String)
    case unknown
}

/// `ValueInfoProto` of a tensor type.
package struct ONNXValueInfo: Equatable, Sendable {
    package var name: String
    package var elementType: Int32
    /// nil when the shape is not given at all (unknown rank).
    package var shape: [ONNXDimension]?
    package init(name: String, elementType: Int32, shape: [ONNXDimension]?) {
        self.name = name; self.elementType = elementType; self.shape = shape
    }
}

/// `AttributeProto`.
package enum ONNXAttributeValue {
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

package struct ONNXAttribute {
    package var name: String
    package var value: ONNXAttributeValue
    /// Inside a function body: the calling node's attribute this one takes its value from
    /// (`ref_attr_name`); `value` is a placeholder until the call is inlined.
    package var reference: String?
    package init(name: String, value: ONNXAttributeValue, reference: String? = nil) {
        self.name = name; self.value = value; self.reference = reference
    }
}

/// `NodeProto`.
package struct ONNXNode {
    package var name: String
    package var opType: String
    package var domain: String
    package var inputs: [String]
    package var outputs: [String]
    package var attributes: [ONNXAttribute]
    /// Which overload of a model-local function the node calls (empty for ordinary ops).
    package var overload: String
    package init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [ONNXAttribute] = [], overload: String = "") {
        self.name = name; self.opType = opType; self.domain = domain; self.inputs = inputs
        self.outputs = outputs; self.attributes = attributes; self.overload = overload
    }

    package func attribute(_ name: String) -> ONNXAttributeValue? { attributes.first { $0.name == name }?.value }
}

/// `GraphProto`.
package struct ONNXGraph {
    package var name: String
    package var nodes: [ONNXNode]
    package var initializers: [ONNXTensor]
    package var inputs: [ONNXValueInfo]
    package var outputs: [ONNXValueInfo]
    package var valueInfo: [ONNXValueInfo]
    package init(name: String, nodes: [ONNXNode] = [], initializers: [ONNXTensor] = [], inputs: [ONNXValueInfo] = [],
                outputs: [ONNXValueInfo] = [], valueInfo: [ONNXValueInfo] = []) {
        self.name = name; self.nodes = nodes; self.initializers = initializers; self.inputs = inputs
        self.outputs = outputs; self.valueInfo = valueInfo
    }
}

/// `FunctionProto`: a subgraph that nodes of op type `name` in `domain` call.
package struct ONNXFunction {
    package var name: String
    package var domain: String
    package var overload: String
    /// Formal input and output names, in call order.
    package var inputs: [String]
    package var outputs: [String]
    /// Attributes a call may set, and the defaults of those that have one.
    package var attributeNames: [String]
    package var attributeDefaults: [ONNXAttribute]
    package var nodes: [ONNXNode]
    package var operatorSets: [ONNXOperatorSet]
    package init(name: String, domain: String, overload: String = "", inputs: [String], outputs: [String],
                attributeNames: [String] = [], attributeDefaults: [ONNXAttribute] = [], nodes: [ONNXNode],
                operatorSets: [ONNXOperatorSet] = []) {
        self.name = name; self.domain = domain; self.overload = overload; self.inputs = inputs; self.outputs = outputs
        self.attributeNames = attributeNames; self.attributeDefaults = attributeDefaults; self.nodes = nodes
        self.operatorSets = operatorSets
    }
}

/// `OperatorSetIdProto`.
package struct ONNXOperatorSet: Equatable, Sendable {
    package var domain: String
    package var version: Int64
    package init(domain: String, version: Int64) { self.domain = domain; self.version = version }
}

/// `ModelProto`.
package struct ONNXModel {
    package var irVersion: Int64
    package var operatorSets: [ONNXOperatorSet]
    package var producerName: String
    package var producerVersion: String
    package var domain: String
    package var modelVersion: Int64
    package var documentation: String
    package var graph: ONNXGraph
    /// `metadata_props`, in order.
    package var metadata: [(key: String, value: String)]
    /// Model-local functions (`functions`), which the importer inlines.
    package var functions: [ONNXFunction]

    package init(irVersion: Int64, operatorSets: [ONNXOperatorSet], producerName: String = "",
                producerVersion: String = "", domain: String = "", modelVersion: Int64 = 0,
                documentation: String = "", graph: ONNXGraph, metadata: [(key: String, value: String)] = [],
                functions: [ONNXFunction] = []) {
        self.irVersion = irVersion; self.operatorSets = operatorSets; self.producerName = producerName
        self.producerVersion = producerVersion; self.domain = domain; self.modelVersion = modelVersion
        self.documentation = documentation; self.graph = graph; self.metadata = metadata
        self.functions = functions
    }

    /// The opset version of the default (`ai.onnx`) domain.
    package var defaultOpset: Int64? {
        operatorSets.first { $0.domain == "" || $0.domain == "ai.onnx" }?.version
    }
}
