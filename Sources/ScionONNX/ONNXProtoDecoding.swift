import CProtobufC
import ONNXProto

/// Converts the C tree protobuf-c unpacked into the Swift mirrors. Everything is copied out, so the
/// caller can free the C tree as soon as this returns.
struct ONNXProtoDecoder {
    let file: String
    /// The mapped file whose large initializer payloads were replaced by markers, when they were.
    var payloads: ONNXMappedPayloads? = nil

    func model(_ proto: UnsafeMutablePointer<Onnx__ModelProto>) throws -> ONNXModel {
        let message = proto.pointee
        // Random bytes and other protobuf messages often parse as a ModelProto with no graph.
        guard let graphProto = message.graph else {
            throw ONNXError(.invalidProtobuf, file: file, "not an ONNX model (it has no graph)")
        }
        var operatorSets: [ONNXOperatorSet] = []
        for entry in messages(message.opset_import, message.n_opset_import) {
            operatorSets.append(ONNXOperatorSet(domain: text(entry.pointee.domain),
                                                version: entry.pointee.has_version != 0 ? entry.pointee.version : 0))
        }
        var metadata: [(key: String, value: String)] = []
        for entry in messages(message.metadata_props, message.n_metadata_props) {
            metadata.append((key: text(entry.pointee.key), value: text(entry.pointee.value)))
        }
        return ONNXModel(
            irVersion: message.has_ir_version != 0 ? message.ir_version : 0,
            operatorSets: operatorSets,
            producerName: text(message.producer_name),
            producerVersion: text(message.producer_version),
            domain: text(message.domain),
            modelVersion: message.has_model_version != 0 ? message.model_version : 0,
            documentation: text(message.doc_string),
            graph: try graph(graphProto, depth: 0),
            metadata: metadata,
            functions: try messages(message.functions, message.n_functions).map(function)
        )
    }

    /// A model-local function; its body's nodes count as one level of nesting, like a subgraph's.
    func function(_ proto: UnsafeMutablePointer<Onnx__FunctionProto>) throws -> ONNXFunction {
        let message = proto.pointee
        let name = text(message.name)
        var operatorSets: [ONNXOperatorSet] = []
        for entry in messages(message.opset_import, message.n_opset_import) {
            operatorSets.append(ONNXOperatorSet(domain: text(entry.pointee.domain),
                                                version: entry.pointee.has_version != 0 ? entry.pointee.version : 0))
        }
        return ONNXFunction(
            name: name, domain: text(message.domain), overload: text(message.overload),
            inputs: strings(message.input, message.n_input), outputs: strings(message.output, message.n_output),
            attributeNames: strings(message.attribute, message.n_attribute),
            attributeDefaults: try messages(message.attribute_proto, message.n_attribute_proto).map {
                try attribute($0, node: "function '\(name)'", depth: 1)
            },
            nodes: try messages(message.node, message.n_node).enumerated().map { index, node in
                try self.node(node, index: index, depth: 1)
            },
            operatorSets: operatorSets)
    }

    /// - Parameter depth: 0 for the model's graph, one more for each attribute it is nested in.
    func graph(_ proto: UnsafeMutablePointer<Onnx__GraphProto>, depth: Int) throws -> ONNXGraph {
        let message = proto.pointee
        let name = text(message.name)
        guard depth <= ONNXProtoCodec.maximumSubgraphDepth else {
            throw ONNXError(.invalidGraph, file: file, subject: name,
                            "subgraphs nest more than \(ONNXProtoCodec.maximumSubgraphDepth) levels deep")
        }
        // Dropping sparse initializers would leave nodes reading tensors that do not exist.
        guard message.n_sparse_initializer == 0 else {
            throw ONNXError(.unsupported, file: file, subject: name,
                            "sparse initializers (GraphProto.sparse_initializer) are not supported")
        }
        var result = ONNXGraph(name: name)
        for (index, node) in messages(message.node, message.n_node).enumerated() {
            result.nodes.append(try self.node(node, index: index, depth: depth))
        }
        for (index, tensor) in messages(message.initializer, message.n_initializer).enumerated() {
            result.initializers.append(try self.tensor(tensor, context: "initializer #\(index) of graph '\(name)'"))
        }
        for info in messages(message.input, message.n_input) {
            result.inputs.append(try tensorValueInfo(info, role: "input"))
        }
        for info in messages(message.output, message.n_output) {
            result.outputs.append(try tensorValueInfo(info, role: "output"))
        }
        for info in messages(message.value_info, message.n_value_info) {
            // value_info only annotates intermediate values, so one Scion cannot describe (a
            // sequence, say) is left out rather than refused.
            if let valueInfo = valueInfo(info) { result.valueInfo.append(valueInfo) }
        }
        return result
    }

    func node(_ proto: UnsafeMutablePointer<Onnx__NodeProto>, index: Int, depth: Int) throws -> ONNXNode {
        let message = proto.pointee
        let name = text(message.name)
        let opType = text(message.op_type)
        let subject = name.isEmpty ? "node #\(index) (\(opType))" : "node '\(name)' (\(opType))"
        var node = ONNXNode(name: name, opType: opType, domain: text(message.domain),
                            inputs: strings(message.input, message.n_input),
                            outputs: strings(message.output, message.n_output),
                            overload: text(message.overload))
        for attribute in messages(message.attribute, message.n_attribute) {
            node.attributes.append(try self.attribute(attribute, node: subject, depth: depth))
        }
        return node
    }

    private func attribute(_ proto: UnsafeMutablePointer<Onnx__AttributeProto>, node: String,
                           depth: Int) throws -> ONNXAttribute {
        let message = proto.pointee
        let name = text(message.name)
        let subject = "\(node) attribute '\(name)'"
        // In a function body: the value comes from the call, when the function is inlined.
        let reference = text(message.ref_attr_name)
        if !reference.isEmpty { return ONNXAttribute(name: name, value: .ints([]), reference: reference) }
        var type = message.has_type != 0 ? message.type.rawValue : 0
        if type == 0 {
            // Before IR version 3 `type` was optional: the field that is present says it.
            guard let inferred = inferredType(message) else {
                throw ONNXError(.invalidGraph, file: file, subject: subject, "has neither a type nor a value")
            }
            type = inferred
        }
        let value: ONNXAttributeValue
        switch type {
        case 1: value = .float(message.f)
        case 2: value = .int(message.i)
        case 3: value = .string(binary(message.s))
        case 4:
            guard let tensor = message.t else {
                throw ONNXError(.invalidGraph, file: file, subject: subject, "has type TENSOR but no tensor")
            }
            value = .tensor(try self.tensor(tensor, context: subject))
        case 5:
            guard let graph = message.g else {
                throw ONNXError(.invalidGraph, file: file, subject: subject, "has type GRAPH but no graph")
            }
            value = .graph(try self.graph(graph, depth: depth + 1))
        case 6: value = .floats(scalars(message.floats, message.n_floats))
        case 7: value = .ints(scalars(message.ints, message.n_ints))
        case 8:
            value = .strings(scalars(message.strings, message.n_strings).map(binary))
        case 9:
            value = .tensors(try messages(message.tensors, message.n_tensors).map {
                try tensor($0, context: subject)
            })
        case 10:
            value = .graphs(try messages(message.graphs, message.n_graphs).map {
                try graph($0, depth: depth + 1)
            })
        case 11, 12, 13, 14:
            let names: [UInt32: String] = [11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS", 13: "TYPE_PROTO",
                                           14: "TYPE_PROTOS"]
            throw ONNXError(.unsupported, file: file, subject: subject,
                            "attributes of type \(names[type] ?? "\(type)") are not supported")
        default:
            throw ONNXError(.invalidGraph, file: file, subject: subject, "has unknown attribute type \(type)")
        }
        return ONNXAttribute(name: name, value: value)
    }

    /// The AttributeType of an untyped attribute, from the first value field present, in the order
    /// onnx's own helpers look.
    private func inferredType(_ message: Onnx__AttributeProto) -> UInt32? {
        if message.has_f != 0 { return 1 }
        if message.has_i != 0 { return 2 }
        if message.has_s != 0 { return 3 }
        if message.t != nil { return 4 }
        if message.g != nil { return 5 }
        if message.n_floats > 0 { return 6 }
        if message.n_ints > 0 { return 7 }
        if message.n_strings > 0 { return 8 }
        if message.n_tensors > 0 { return 9 }
        if message.n_graphs > 0 { return 10 }
        return nil
    }

    /// A graph input or output, which Scion can only use when it is a tensor (or has no type).
    private func tensorValueInfo(_ proto: UnsafeMutablePointer<Onnx__ValueInfoProto>, role: String) throws -> ONNXValueInfo {
        guard let info = valueInfo(proto) else {
            throw ONNXError(.unsupported, file: file, subject: "\(role) '\(text(proto.pointee.name))'",
                            "has a type other than tensor (sequence, map, optional, sparse tensor or opaque), "
                                + "which is not supported")
        }
        return info
    }

    /// nil when the value has a type other than tensor. proto/onnx.proto describes only tensor
    /// types, so the others arrive as unknown fields of the TypeProto.
    private func valueInfo(_ proto: UnsafeMutablePointer<Onnx__ValueInfoProto>) -> ONNXValueInfo? {
        let message = proto.pointee
        let name = text(message.name)
        guard let type = message.type else {
            return ONNXValueInfo(name: name, elementType: 0, shape: nil)
        }
        guard type.pointee.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tensorType = type.pointee.tensor_type else {
            if type.pointee.base.n_unknown_fields > 0 { return nil }
            return ONNXValueInfo(name: name, elementType: 0, shape: nil)
        }
        let elementType = tensorType.pointee.has_elem_type != 0 ? tensorType.pointee.elem_type : 0
        guard let shape = tensorType.pointee.shape else {
            return ONNXValueInfo(name: name, elementType: elementType, shape: nil)
        }
        var dimensions: [ONNXDimension] = []
        for dimension in messages(shape.pointee.dim, shape.pointee.n_dim) {
            switch dimension.pointee.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                dimensions.append(.value(dimension.pointee.dim_value))
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                dimensions.append(.parameter(text(dimension.pointee.dim_param)))
            default:
                dimensions.append(.unknown)
            }
        }
        return ONNXValueInfo(name: name, elementType: elementType, shape: dimensions)
    }
}

// MARK: - Reading C fields

extension ONNXProtoDecoder {
    /// A protobuf-c string (NUL-terminated, NULL when absent). Invalid UTF-8 is repaired rather than
    /// refused: names only need to be compared, and a repaired name still fails to match loudly.
    func text(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer)
    }

    func binary(_ data: ProtobufCBinaryData) -> [UInt8] {
        guard data.len > 0, let bytes = data.data else { return [] }
        return Array(UnsafeBufferPointer(start: bytes, count: data.len))
    }

    func scalars<Element>(_ pointer: UnsafeMutablePointer<Element>?, _ count: Int) -> [Element] {
        guard count > 0, let pointer else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    func strings(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
        scalars(pointer, count).map { text($0) }
    }

    /// The non-NULL entries of a protobuf-c repeated message field.
    func messages<Message>(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Message>?>?,
                           _ count: Int) -> [UnsafeMutablePointer<Message>] {
        scalars(pointer, count).compactMap { $0 }
    }
}
