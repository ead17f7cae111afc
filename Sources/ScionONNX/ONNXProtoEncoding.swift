import CProtobufC
import ONNXProto
import ScionIR

/// Owns every piece of C memory of a message tree built for protobuf-c to pack, and frees it all at
/// once when the tree is no longer needed: the tree is a web of raw pointers, so freeing per node
/// would mean walking it again.
final class ONNXProtoArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for block in blocks { block.deallocate() }
    }

    /// A message initialized by its generated `_init` function (protoc-c's `*__INIT` macros are
    /// not importable into Swift).
    func message<Message>(_ initialize: (UnsafeMutablePointer<Message>) -> Void) -> UnsafeMutablePointer<Message> {
        let pointer = UnsafeMutablePointer<Message>.allocate(capacity: 1)
        blocks.append(UnsafeMutableRawPointer(pointer))
        initialize(pointer)
        return pointer
    }

    /// A C array holding `elements`, nil when empty (protobuf-c only looks at it when the count is
    /// non-zero).
    func array<Element>(_ elements: [Element]) -> UnsafeMutablePointer<Element>? {
        guard !elements.isEmpty else { return nil }
        let pointer = UnsafeMutablePointer<Element>.allocate(capacity: elements.count)
        blocks.append(UnsafeMutableRawPointer(pointer))
        pointer.initialize(from: elements, count: elements.count)
        return pointer
    }

    /// A NUL-terminated copy, for repeated string fields where "" is a value (an omitted input).
    func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        let characters = text.utf8CString
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: characters.count)
        blocks.append(UnsafeMutableRawPointer(pointer))
        characters.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { pointer.initialize(from: base, count: buffer.count) }
        }
        return pointer
    }

    /// For optional string fields: NULL leaves an empty field out, which readers take as "".
    func optionalString(_ text: String) -> UnsafeMutablePointer<CChar>? {
        text.isEmpty ? nil : string(text)
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        ProtobufCBinaryData(len: bytes.count, data: array(bytes))
    }
}

/// The bytes of a tensor's `raw_data`, not yet read when they come from a storage.
enum ONNXProtoPayload {
    case bytes([UInt8])
    case storage(TensorStorage)

    var byteCount: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .storage(let storage): storage.byteCount
        }
    }
}

/// Builds the protobuf-c message tree of the Swift mirrors, checking on the way that each tensor's
/// bytes agree with its dims, so Scion never writes a file ONNX tools would refuse.
struct ONNXProtoEncoder {
    let file: String
    let arena: ONNXProtoArena

    /// The ModelProto without its graph, which the streaming writer appends itself.
    func model(_ model: ONNXModel) -> UnsafeMutablePointer<Onnx__ModelProto> {
        let operatorSets = model.operatorSets.map { operatorSet in
            Optional(arena.message { (message: UnsafeMutablePointer<Onnx__OperatorSetIdProto>) in
                onnx__operator_set_id_proto__init(message)
                message.pointee.domain = arena.optionalString(operatorSet.domain)
                message.pointee.has_version = 1
                message.pointee.version = operatorSet.version
            })
        }
        let metadata = model.metadata.map { Optional(entry(key: $0.key, value: $0.value)) }
        return arena.message { (message: UnsafeMutablePointer<Onnx__ModelProto>) in
            onnx__model_proto__init(message)
            message.pointee.has_ir_version = 1
            message.pointee.ir_version = model.irVersion
            message.pointee.n_opset_import = operatorSets.count
            message.pointee.opset_import = arena.array(operatorSets)
            message.pointee.producer_name = arena.optionalString(model.producerName)
            message.pointee.producer_version = arena.optionalString(model.producerVersion)
            message.pointee.domain = arena.optionalString(model.domain)
            message.pointee.has_model_version = model.modelVersion != 0 ? 1 : 0
            message.pointee.model_version = model.modelVersion
            message.pointee.doc_string = arena.optionalString(model.documentation)
            message.pointee.n_metadata_props = metadata.count
            message.pointee.metadata_props = arena.array(metadata)
        }
    }

    /// - Parameter includeInitializers: false for the main graph, whose initializers the streaming
    ///   writer appends one by one; subgraphs carry theirs in the tree.
    func graph(_ graph: ONNXGraph, depth: Int, includeInitializers: Bool) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        guard depth <= ONNXProtoCodec.maximumSubgraphDepth else {
            throw ONNXError(.invalidGraph, file: file, subject: graph.name,
                            "subgraphs nest more than \(ONNXProtoCodec.maximumSubgraphDepth) levels deep")
        }
        let nodes = try graph.nodes.enumerated().map { Optional(try node($1, index: $0, depth: depth)) }
        let initializers = includeInitializers ? try graph.initializers.map { Optional(try tensor($0)) } : []
        let inputs = graph.inputs.map { Optional(valueInfo($0)) }
        let outputs = graph.outputs.map { Optional(valueInfo($0)) }
        let annotations = graph.valueInfo.map { Optional(valueInfo($0)) }
        return arena.message { (message: UnsafeMutablePointer<Onnx__GraphProto>) in
            onnx__graph_proto__init(message)
            message.pointee.n_node = nodes.count
            message.pointee.node = arena.array(nodes)
            message.pointee.name = arena.optionalString(graph.name)
            message.pointee.n_initializer = initializers.count
            message.pointee.initializer = arena.array(initializers)
            message.pointee.n_input = inputs.count
            message.pointee.input = arena.array(inputs)
            message.pointee.n_output = outputs.count
            message.pointee.output = arena.array(outputs)
            message.pointee.n_value_info = annotations.count
            message.pointee.value_info = arena.array(annotations)
        }
    }

    func node(_ node: ONNXNode, index: Int, depth: Int) throws -> UnsafeMutablePointer<Onnx__NodeProto> {
        let subject = node.name.isEmpty ? "node #\(index) (\(node.opType))" : "node '\(node.name)' (\(node.opType))"
        let attributes = try node.attributes.map {
            Optional(try attribute($0, subject: "\(subject) attribute '\($0.name)'", depth: depth))
        }
        let inputs = node.inputs.map { Optional(arena.string($0)) }
        let outputs = node.outputs.map { Optional(arena.string($0)) }
        return arena.message { (message: UnsafeMutablePointer<Onnx__NodeProto>) in
            onnx__node_proto__init(message)
            message.pointee.n_input = inputs.count
            message.pointee.input = arena.array(inputs)
            message.pointee.n_output = outputs.count
            message.pointee.output = arena.array(outputs)
            message.pointee.name = arena.optionalString(node.name)
            message.pointee.op_type = arena.optionalString(node.opType)
            message.pointee.domain = arena.optionalString(node.domain)
            message.pointee.n_attribute = attributes.count
            message.pointee.attribute = arena.array(attributes)
        }
    }

    private func attribute(_ attribute: ONNXAttribute, subject: String,
                           depth: Int) throws -> UnsafeMutablePointer<Onnx__AttributeProto> {
        // Built before the message so that a throw leaves nothing half-filled.
        var type: UInt32
        var tensor: UnsafeMutablePointer<Onnx__TensorProto>?
        var graph: UnsafeMutablePointer<Onnx__GraphProto>?
        var tensors: [UnsafeMutablePointer<Onnx__TensorProto>?] = []
        var graphs: [UnsafeMutablePointer<Onnx__GraphProto>?] = []
        switch attribute.value {
        case .float: type = 1
        case .int: type = 2
        case .string: type = 3
        case .tensor(let value):
            type = 4
            tensor = try self.tensor(value, context: subject)
        case .graph(let value):
            type = 5
            graph = try self.graph(value, depth: depth + 1, includeInitializers: true)
        case .floats: type = 6
        case .ints: type = 7
        case .strings: type = 8
        case .tensors(let values):
            type = 9
            tensors = try values.map { Optional(try self.tensor($0, context: subject)) }
        case .graphs(let values):
            type = 10
            graphs = try values.map { Optional(try self.graph($0, depth: depth + 1, includeInitializers: true)) }
        }
        return arena.message { (message: UnsafeMutablePointer<Onnx__AttributeProto>) in
            onnx__attribute_proto__init(message)
            message.pointee.name = arena.optionalString(attribute.name)
            message.pointee.has_type = 1
            message.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: type)
            message.pointee.t = tensor
            message.pointee.g = graph
            message.pointee.n_tensors = tensors.count
            message.pointee.tensors = arena.array(tensors)
            message.pointee.n_graphs = graphs.count
            message.pointee.graphs = arena.array(graphs)
            switch attribute.value {
            case .float(let value):
                message.pointee.has_f = 1
                message.pointee.f = value
            case .int(let value):
                message.pointee.has_i = 1
                message.pointee.i = value
            case .string(let value):
                message.pointee.has_s = 1
                message.pointee.s = arena.binary(value)
            case .floats(let values):
                message.pointee.n_floats = values.count
                message.pointee.floats = arena.array(values)
            case .ints(let values):
                message.pointee.n_ints = values.count
                message.pointee.ints = arena.array(values)
            case .strings(let values):
                message.pointee.n_strings = values.count
                message.pointee.strings = arena.array(values.map(arena.binary))
            case .tensor, .graph, .tensors, .graphs:
                break
            }
        }
    }

    /// A complete TensorProto, bytes included: for tensors inside attributes and subgraphs, which
    /// are packed with the tree rather than streamed.
    func tensor(_ tensor: ONNXTensor, context: String = "") throws -> UnsafeMutablePointer<Onnx__TensorProto> {
        let (message, payload) = try tensorHeader(tensor, context: context)
        if let payload {
            let bytes = try read(payload, of: tensor, context: context)
            message.pointee.has_raw_data = 1
            message.pointee.raw_data = arena.binary(bytes)
        }
        return message
    }

    /// A TensorProto without `raw_data`, and the bytes that belong there, once they are known to
    /// agree with the dims and data type.
    func tensorHeader(_ tensor: ONNXTensor,
                      context: String = "") throws -> (UnsafeMutablePointer<Onnx__TensorProto>, ONNXProtoPayload?) {
        let subject = tensorSubject(tensor, context: context)
        let layout = try ONNXTensorLayout(dimensions: tensor.dimensions, file: file, subject: subject)
        let isString = tensor.dataType == ONNXDataType.string.rawValue
        var payload: ONNXProtoPayload?
        var strings: [ProtobufCBinaryData] = []
        var external: [UnsafeMutablePointer<Onnx__StringStringEntryProto>?] = []
        switch tensor.data {
        case .raw(let bytes):
            payload = .bytes(bytes)
        case .storage(let storage):
            payload = .storage(storage)
        case .strings(let values):
            guard isString, values.count == layout.elementCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "holds \(values.count) strings but is a \(ONNXTensorLayout.describe(tensor.dataType)) "
                                    + "tensor of \(layout.elementCount) elements")
            }
            strings = values.map(arena.binary)
        case .external(let location, let offset, let length):
            let byteCount = try layout.byteCount(dataType: tensor.dataType, file: file, subject: subject)
            guard !location.isEmpty, offset >= 0, length.map({ $0 == byteCount }) ?? true else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "external data (location '\(location)', offset \(offset), length "
                                    + "\(length.map(String.init) ?? "none")) does not fit its \(byteCount) bytes")
            }
            external = [entry(key: "location", value: location), entry(key: "offset", value: String(offset))]
            if let length { external.append(entry(key: "length", value: String(length))) }
        }
        if let payload {
            guard !isString else {
                throw ONNXError(.invalidTensor, file: file, subject: subject, "is a string tensor holding raw bytes")
            }
            let byteCount = try layout.byteCount(dataType: tensor.dataType, file: file, subject: subject)
            guard payload.byteCount == byteCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject,
                                "holds \(payload.byteCount) bytes but dims \(tensor.dimensions) of "
                                    + "\(ONNXTensorLayout.describe(tensor.dataType)) need \(byteCount)")
            }
        }
        let message = arena.message { (message: UnsafeMutablePointer<Onnx__TensorProto>) in
            onnx__tensor_proto__init(message)
            message.pointee.n_dims = tensor.dimensions.count
            message.pointee.dims = arena.array(tensor.dimensions)
            message.pointee.has_data_type = 1
            message.pointee.data_type = tensor.dataType
            message.pointee.name = arena.optionalString(tensor.name)
            message.pointee.n_string_data = strings.count
            message.pointee.string_data = arena.array(strings)
            if !external.isEmpty {
                message.pointee.n_external_data = external.count
                message.pointee.external_data = arena.array(external)
                message.pointee.has_data_location = 1
                message.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
            }
        }
        return (message, payload)
    }

    /// The payload's bytes, read from its storage now (and not kept there), checked against the
    /// count the header was sized for: a storage that returns a different count would corrupt the
    /// lengths already written.
    func read(_ payload: ONNXProtoPayload, of tensor: ONNXTensor, context: String = "") throws -> [UInt8] {
        let storage: TensorStorage
        switch payload {
        case .bytes(let bytes): return bytes
        case .storage(let source): storage = source
        }
        let subject = tensorSubject(tensor, context: context)
        let bytes: [UInt8]
        do {
            bytes = try storage.bytes(keep: false)
        } catch {
            throw ONNXError(.writeFailed, file: file, subject: subject,
                            "reading its bytes from \(storage.location) failed: \(error)")
        }
        guard bytes.count == payload.byteCount else {
            throw ONNXError(.writeFailed, file: file, subject: subject,
                            "\(storage.location) gave \(bytes.count) bytes instead of the \(payload.byteCount) it announced")
        }
        return bytes
    }

    private func tensorSubject(_ tensor: ONNXTensor, context: String) -> String {
        tensor.name.isEmpty && !context.isEmpty ? context : "tensor '\(tensor.name)'"
    }

    private func valueInfo(_ info: ONNXValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        // No element type and no shape: the value's type is unknown, so none is written.
        let type: UnsafeMutablePointer<Onnx__TypeProto>? = info.elementType == 0 && info.shape == nil ? nil : tensorType(info)
        return arena.message { (message: UnsafeMutablePointer<Onnx__ValueInfoProto>) in
            onnx__value_info_proto__init(message)
            message.pointee.name = arena.optionalString(info.name)
            message.pointee.type = type
        }
    }

    private func tensorType(_ info: ONNXValueInfo) -> UnsafeMutablePointer<Onnx__TypeProto> {
        let shape = info.shape.map { dimensions in
            let entries = dimensions.map { dimension in
                Optional(arena.message { (message: UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>) in
                    onnx__tensor_shape_proto__dimension__init(message)
                    switch dimension {
                    case .value(let value):
                        message.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        message.pointee.dim_value = value
                    case .parameter(let name):
                        message.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        message.pointee.dim_param = arena.string(name)
                    case .unknown:
                        break
                    }
                })
            }
            return arena.message { (message: UnsafeMutablePointer<Onnx__TensorShapeProto>) in
                onnx__tensor_shape_proto__init(message)
                message.pointee.n_dim = entries.count
                message.pointee.dim = arena.array(entries)
            }
        }
        let tensorType = arena.message { (message: UnsafeMutablePointer<Onnx__TypeProto__Tensor>) in
            onnx__type_proto__tensor__init(message)
            message.pointee.has_elem_type = info.elementType != 0 ? 1 : 0
            message.pointee.elem_type = info.elementType
            message.pointee.shape = shape
        }
        return arena.message { (message: UnsafeMutablePointer<Onnx__TypeProto>) in
            onnx__type_proto__init(message)
            message.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            message.pointee.tensor_type = tensorType
        }
    }

    private func entry(key: String, value: String) -> UnsafeMutablePointer<Onnx__StringStringEntryProto> {
        arena.message { (message: UnsafeMutablePointer<Onnx__StringStringEntryProto>) in
            onnx__string_string_entry_proto__init(message)
            message.pointee.key = arena.optionalString(key)
            message.pointee.value = arena.optionalString(value)
        }
    }
}
