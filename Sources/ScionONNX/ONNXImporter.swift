import Foundation
import ScionIR

/// Reads an ONNX model into the IR: one IR node per ONNX node (channels-first), weights as lazy
/// parameters with roles, shape subgraphs folded to constants, and unknown ops kept opaque with their
/// NodeProto packed so they are written back unchanged.
///
/// A constant feeding an op that takes weights (Conv's W, BatchNormalization's statistics, Gemm's B
/// and C, PRelu's slope, LayerNormalization's scale and bias, an embedding table) becomes a parameter
/// of that node by role. A constant feeding an ordinary operand (Add's bias, Where's fill value)
/// becomes a `.constant` node whose one parameter (role `value`) has the constant's own name, so the
/// writer emits it again as the same initializer.
package enum ONNXImporter {
    package static let supportedOpsets: ClosedRange<Int64> = 6...23

    package static func importModel(_ source: ONNXModel, file: String, folder: String) throws -> Graph {
        let model = try source.inliningFunctions(file: file)
        if let node = model.graph.nodes.first(where: { $0.attributes.contains { $0.reference != nil } }) {
            throw ONNXError(.invalidGraph, file: file, subject: node.name,
                            "has an attribute that refers to a function's attribute (ref_attr_name) outside a function")
        }
        guard model.irVersion >= 3 else {
            throw ONNXError(.unsupported, file: file, "IR version \(model.irVersion) is older than 3, which Scion reads")
        }
        let opset = model.defaultOpset ?? 1
        guard supportedOpsets.contains(opset) else {
            throw ONNXError(.unsupported, file: file, "opset \(opset) of the default domain is not supported (Scion reads 6 to 23)")
        }
        var session = ONNXImportSession(model: model, file: file, folder: folder, opset: opset)
        try session.run()
        var graph = session.graph
        // ONNX has no layer flag: a node counts as frozen when all its weights are.
        for index in graph.nodes.indices where !graph.nodes[index].parameters.isEmpty {
            graph.nodes[index].trainable = graph.nodes[index].parameters.contains { graph.parameters[$0]?.trainable == true }
        }
        do {
            try graph.verify()
        } catch let error as IRError {
            throw ONNXError(.invalidGraph, file: file, subject: error.subject, error.reason)
        }
        // Outputs of opaque nodes have no inferred shape: the file's own declaration stands in, so a
        // writer can still describe them.
        for declared in model.graph.outputs where graph.values[declared.name]?.shape == nil {
            guard let dtype = ONNXDataType(rawValue: declared.elementType)?.dtype, let dimensions = declared.shape else { continue }
            graph.values[declared.name] = ValueInfo(name: declared.name, shape: Shape(dimensions.map { dimension -> Int? in
                if case .value(let value) = dimension, value >= 0 { return Int(value) }
                return nil
            }), dtype: dtype)
        }
        return graph
    }
}

/// A constant tensor known at import: an initializer, a Constant node or a folded result.
struct ImportedConstant {
    var dtype: DType
    var shape: [Int]
    var storage: TensorStorage
    /// Initializers are weights a user may train; Constant nodes and folded results are not.
    var fromInitializer: Bool
    var elementCount: Int { shape.checkedProduct ?? 0 }
}

/// What one ONNX node becomes: an op, the values it reads and the constants it takes as parameters.
struct MappedNode {
    var op: Op
    var inputs: [String]
    /// (constant's value name, role, shape to give the parameter when it differs from the constant's).
    var parameters: [(source: String, role: ParameterRole, shape: [Int]?)] = []
    /// How many of the ONNX node's outputs the op produces (the rest must be unused).
    var outputCount = 1
    /// The op's output names when not the ONNX node's (layout-1 recurrent nodes, whose ONNX outputs
    /// the `epilogue` computes).
    var outputNames: [String]? = nil
    /// Nodes added after the op (the Transposes back to a layout-1 recurrent node's outputs).
    var epilogue: [Node] = []
}

struct ONNXImportSession {
    let model: ONNXModel
    let file: String
    let folder: String
    let opset: Int64
    var graph: Graph
    var constants: [String: ImportedConstant] = [:]
    /// Constants already turned into `.constant` nodes.
    var materialized: Set<String> = []
    /// Shapes and types of the values imported so far, for decisions that need a rank.
    var known: [String: ValueInfo] = [:]
    /// What a Shape node reports for a value with one unknown length (a dynamic batch): a Reshape to it
    /// is a Reshape to those lengths with the unknown one inferred (-1), as torch's exported GroupNorm
    /// restores its input's shape.
    var reportedShapes: [String: Shape] = [:]
    /// Values some node or the graph's outputs read: extra outputs nobody reads may be dropped.
    var consumed: Set<String> = []
    /// Constants made on import from another (a recurrent node's weights in Keras's layout), by the
    /// constant they came from.
    var convertedFrom: [String: String] = [:]
    /// Zero initial states a recurrent node did not take (Keras starts from zeros): what computed
    /// them is removed once the graph is read.
    var droppedInitialStates: Set<String> = []
    /// Why the node being mapped stays opaque, when the mapping knows (a recurrent node's initial
    /// states): kept in the opaque op for the refusals of `run` and the writers.
    var opaqueReason: String? = nil
    var nodeNames = UniqueNames()
    /// Lengths a file leaves open (a dynamic batch) as expressions, and the shape vectors computed from them.
    var symbolic = SymbolicShapeState()
    /// Parameter name by (source, role, shape), so a constant shared by several nodes is one parameter.
    var parameterNames: [String: String] = [:]

    init(model: ONNXModel, file: String, folder: String, opset: Int64) {
        self.model = model; self.file = file; self.folder = folder; self.opset = opset
        graph = Graph(name: model.graph.name.isEmpty ? "onnx" : model.graph.name)
    }

    mutating func run() throws {
        let source = model.graph
        for tensor in source.initializers {
            guard constants[tensor.name] == nil else {
                throw ONNXError(.invalidGraph, file: file, subject: "initializer '\(tensor.name)'", "two initializers have this name")
            }
            constants[tensor.name] = try constant(from: tensor, fromInitializer: true)
        }
        for input in source.inputs where constants[input.name] == nil {
            guard let dtype = ONNXDataType(rawValue: input.elementType)?.dtype else {
                throw ONNXError(.unsupported, file: file, subject: "input '\(input.name)'", "element type \(input.elementType) is not supported")
            }
            let shape = input.shape.map { dimensions in
                Shape(dimensions.map { dimension -> Int? in
                    if case .value(let value) = dimension, value >= 0 { return Int(value) }
                    return nil
                })
            }
            let info = ValueInfo(name: input.name, shape: shape, dtype: dtype)
            graph.inputs.append(info)
            graph.values[input.name] = info
            known[input.name] = info
        }
        for node in source.nodes { consumed.formUnion(node.inputs) }
        consumed.formUnion(source.outputs.map(\.name))
        for (index, node) in try topologicallyOrdered(source.nodes).enumerated() {
            try importNode(node, index: index)
        }
        try materializeDeferred(source.outputs.map(\.name))
        for output in source.outputs {
            guard known[output.name] != nil || constants[output.name] != nil else {
                throw ONNXError(.invalidGraph, file: file, subject: "output '\(output.name)'", "is a graph output but nothing produces it")
            }
            graph.outputs.append(try value(output.name))
        }
        removeUnreadShapeReports()
        foldMaskingChains()
        removeDroppedInitialStates()
        applyTrainability()
        recordMetadata()
        recordModelInfo()
    }

    /// Drops the Shape nodes whose report every reader took as constant lengths (`reportedShapes`):
    /// nothing reads them any more, and a Keras file could not hold them.
    mutating func removeUnreadShapeReports() {
        let read = Set(graph.nodes.flatMap(\.inputs)).union(graph.outputs)
        let unread = graph.nodes.filter { node in
            !node.outputs.isEmpty && node.outputs.allSatisfy { reportedShapes[$0] != nil && !read.contains($0) }
        }
        for node in unread { graph.info.nodeTypes[node.name] = nil }
        let names = Set(unread.map(\.name))
        graph.nodes.removeAll { names.contains($0.name) }
    }

    /// ONNX requires nodes in topological order, but files do not always comply: sort, and refuse
    /// cycles and values produced twice.
    func topologicallyOrdered(_ nodes: [ONNXNode]) throws -> [ONNXNode] {
        var producer: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty {
                if producer[output] != nil || constants[output] != nil || known[output] != nil {
                    throw ONNXError(.invalidGraph, file: file, subject: describe(node, index: index),
                                    "value '\(output)' is produced twice")
                }
                producer[output] = index
            }
        }
        var state = [Int](repeating: 0, count: nodes.count)
        var order: [Int] = []
        for start in nodes.indices where state[start] == 0 {
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            state[start] = 1
            while let top = stack.last {
                let inputs = nodes[top.node].inputs
                if top.next < inputs.count {
                    stack[stack.count - 1].next += 1
                    guard let dependency = producer[inputs[top.next]] else { continue }
                    if state[dependency] == 1 {
                        throw ONNXError(.invalidGraph, file: file, subject: describe(nodes[dependency], index: dependency),
                                        "is part of a cycle")
                    }
                    if state[dependency] == 0 { state[dependency] = 1; stack.append((dependency, 0)) }
                } else {
                    state[top.node] = 2
                    order.append(top.node)
                    stack.removeLast()
                }
            }
        }
        return order.map { nodes[$0] }
    }

    func describe(_ node: ONNXNode, index: Int) -> String {
        node.name.isEmpty ? "node #\(index) (\(node.opType))" : "node '\(node.name)' (\(node.opType))"
    }

    mutating func importNode(_ source: ONNXNode, index: Int) throws {
        let node = castLikeAsCast(source)
        let subject = describe(node, index: index)
        for input in node.inputs where !input.isEmpty && known[input] == nil && constants[input] == nil && symbolic.deferred[input] == nil {
            throw ONNXError(.invalidGraph, file: file, subject: subject, "reads '\(input)', which no node, input or initializer provides")
        }
        let isDefaultDomain = node.domain.isEmpty || node.domain == "ai.onnx"
        if isDefaultDomain, try fold(node, subject: subject) { return }
        if try foldBatchIndices(node, index: index) { return }
        if try foldSymbolically(node, index: index) { return }
        var mapped: MappedNode? = nil
        opaqueReason = nil
        if isDefaultDomain {
            mapped = try map(node, subject: subject)
            if let candidate = mapped, node.outputs.dropFirst(candidate.outputCount).contains(where: { !$0.isEmpty && consumed.contains($0) }) {
                mapped = nil
            }
        }
        let name = uniqueNodeName(node.name.isEmpty ? "\(node.opType)_\(index)" : node.name)
        graph.info.nodeTypes[name] = node.opType
        if let mapped {
            var parameterNames: [String] = []
            for parameter in mapped.parameters {
                parameterNames.append(try makeParameter(parameter.source, role: parameter.role, shape: parameter.shape, subject: subject))
            }
            // An op with more outputs than the ONNX node names (an LSTM whose Y_c is not asked for)
            // gets a name for each, unread.
            let outputs = mapped.outputNames ?? (0..<mapped.outputCount).map { offset in
                offset < node.outputs.count && !node.outputs[offset].isEmpty ? node.outputs[offset] : "\(name)#output\(offset)"
            }
            add(Node(name: name, op: mapped.op, inputs: try mapped.inputs.map { try value($0) }, outputs: outputs,
                     parameters: parameterNames))
            for extra in mapped.epilogue {
                graph.info.nodeTypes[extra.name] = extra.op.typeName
                add(extra)
            }
        } else {
            let configuration = try ONNXNodePacking.pack(node, file: file)
            let op = Op.opaque(OpaqueAttributes(domain: node.domain, type: node.opType, configuration: configuration,
                                                unreadReason: opaqueReason.map { "is not interpreted: \($0)" }))
            add(Node(name: name, op: op, inputs: try node.inputs.filter { !$0.isEmpty }.map { try value($0) },
                     outputs: node.outputs.filter { !$0.isEmpty }))
        }
    }

    mutating func uniqueNodeName(_ base: String) -> String { nodeNames.claim(base) }

    /// Appends a node and records its outputs' shapes (unknown when inference fails: `verify` reports
    /// the problem at the end with the whole graph in view).
    mutating func add(_ node: Node) {
        graph.nodes.append(node)
        let inputs = node.inputs.map { known[$0] ?? ValueInfo(name: $0, shape: nil, dtype: .float32) }
        let parameterShapes = Dictionary(graph.parameters(of: node).map { ($0.role, $0.shape) }, uniquingKeysWith: { first, _ in first })
        let results = (try? ShapeInference.outputs(of: node, inputs: inputs, parameterShapes: parameterShapes)) ?? []
        for (offset, output) in node.outputs.enumerated() {
            known[output] = offset < results.count ? results[offset] : ValueInfo(name: output, shape: nil, dtype: .float32)
        }
        recordSymbolicDimensions(node, inputs: inputs, parameterShapes: parameterShapes)
    }

    /// The value to read for `name`: a constant not yet in the graph becomes a `.constant` node.
    mutating func value(_ name: String) throws -> String {
        try materializeDeferred([name])
        guard let constant = constants[name], known[name] == nil else { return name }
        if !materialized.contains(name) {
            materialized.insert(name)
            let parameter = try makeParameter(name, role: .value, shape: nil, subject: "constant '\(name)'")
            let node = Node(name: uniqueNodeName(name), op: .onnx(.constant(ConstantAttributes(dtype: constant.dtype))), inputs: [],
                            outputs: [name], parameters: [parameter])
            // Not a node of the file: an initializer (or a folded result) that an ordinary operand reads.
            graph.info.nodeTypes[node.name] = constant.fromInitializer ? "Initializer" : "Constant"
            add(node)
        }
        return name
    }

    /// The parameter for a constant in a role, shared when the same constant plays the same role.
    mutating func makeParameter(_ source: String, role: ParameterRole, shape: [Int]?, subject: String) throws -> String {
        guard let constant = constants[source] else {
            throw ONNXError(.unsupported, file: file, subject: subject, "'\(source)' must be a constant")
        }
        let finalShape = shape ?? constant.shape
        let key = "\(source)|\(role)|\(finalShape)"
        if let existing = parameterNames[key] { return existing }
        var name = source
        var counter = 1
        while graph.parameters[name] != nil { name = "\(source)#\(counter)"; counter += 1 }
        let trainable: Bool
        switch role {
        case _ where role.isStatistic: trainable = false
        case .value: trainable = constant.fromInitializer && constant.dtype.isFloatingPoint
        default: trainable = constant.dtype.isFloatingPoint
        }
        graph.parameters.add(Parameter(name: name, role: role, shape: finalShape, dtype: constant.dtype,
                                       trainable: trainable, storage: constant.storage))
        parameterNames[key] = name
        return name
    }

    /// Our exporter lists frozen parameters; when the list is there, it decides alone.
    mutating func applyTrainability() {
        guard let entry = model.metadata.first(where: { $0.key == ONNXExporter.frozenParametersKey }),
              let data = entry.value.data(using: .utf8),
              let names = (try? JSONSerialization.jsonObject(with: data)) as? [String] else { return }
        let frozen = Set(names)
        // A weight converted on import (a recurrent node's) is frozen when what it came from was.
        graph.parameters.updateTrainable { !frozen.contains($0.name) && !(convertedFrom[$0.name].map(frozen.contains) ?? false) }
    }

    mutating func recordMetadata() {
        graph.metadata["format"] = "onnx"
        graph.layout = .channelsFirst
        graph.metadata["onnx.opset"] = String(opset)
        graph.metadata["onnx.ir_version"] = String(model.irVersion)
        let others = model.operatorSets.filter { !($0.domain.isEmpty || $0.domain == "ai.onnx") }
        if !others.isEmpty {
            graph.metadata["onnx.opset_imports"] = others.map { "\($0.domain)=\($0.version)" }.joined(separator: ",")
        }
        if !model.producerName.isEmpty { graph.metadata["producer"] = model.producerName }
        if !model.producerVersion.isEmpty { graph.metadata["producer_version"] = model.producerVersion }
        for entry in model.metadata where entry.key != ONNXExporter.frozenParametersKey {
            graph.metadata["onnx.metadata.\(entry.key)"] = entry.value
        }
        // Class names (Graph+ClassNames) under the key every format shares, when well formed.
        if let entry = model.metadata.first(where: { $0.key == Graph.classNamesKey }),
           let names = Graph.decodeClassNames(entry.value) {
            graph.classNames = names
        }
    }

    /// A tensor's bytes, lazily: in-memory bytes as they are, file ranges kept, external data through
    /// its own source.
    func constant(from tensor: ONNXTensor, fromInitializer: Bool) throws -> ImportedConstant {
        let subject = "tensor '\(tensor.name)'"
        guard let dtype = ONNXDataType(rawValue: tensor.dataType)?.dtype, let size = dtype.byteSize else {
            throw ONNXError(.unsupported, file: file, subject: subject, "element type \(tensor.dataType) is not supported as a weight")
        }
        guard tensor.dimensions.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
            throw ONNXError(.invalidTensor, file: file, subject: subject, "has invalid dimensions \(tensor.dimensions)")
        }
        let shape = tensor.dimensions.map { Int($0) }
        guard let count = shape.checkedProduct, case (let byteCount, false) = count.multipliedReportingOverflow(by: size) else {
            throw ONNXError(.invalidTensor, file: file, subject: subject, "is too large")
        }
        let storage: TensorStorage
        switch tensor.data {
        case .raw(let bytes):
            guard bytes.count == byteCount else {
                throw ONNXError(.invalidTensor, file: file, subject: subject, "holds \(bytes.count) bytes, its shape needs \(byteCount)")
            }
            storage = TensorStorage(bytes: bytes)
        case .storage(let existing):
            storage = existing
        case .external(let location, let offset, let length):
            storage = try ONNXExternalData.source(
                location: location, offset: offset, length: length, folder: folder, file: file, byteCount: byteCount)
        case .strings:
            throw ONNXError(.unsupported, file: file, subject: subject, "string tensors are not supported as weights")
        }
        return ImportedConstant(dtype: dtype, shape: shape, storage: storage, fromInitializer: fromInitializer)
    }
}

extension ONNXImportSession {
    /// CastLike (opset 15; torch's dynamo exporter writes it unoptimized) is a Cast to its second
    /// input's element type, which the reader knows once that input is read.
    func castLikeAsCast(_ node: ONNXNode) -> ONNXNode {
        guard node.opType == "CastLike", node.domain.isEmpty || node.domain == "ai.onnx", node.inputs.count == 2,
              let dtype = constants[node.inputs[1]]?.dtype ?? known[node.inputs[1]]?.dtype else { return node }
        return ONNXNode(name: node.name, opType: "Cast", domain: node.domain, inputs: [node.inputs[0]], outputs: node.outputs,
                        attributes: [ONNXAttribute(name: "to", value: .int(Int64(ONNXDataType(dtype).rawValue)))])
    }
}
