/// Model-local functions (`ModelProto.functions`), inlined before import: every node that calls one
/// is replaced by the function's body, so the rest of the reader sees only ordinary ops. Exporters
/// write them for modules kept whole (torch's dynamo exporter without its optimizer, onnxscript
/// functions); onnxruntime inlines them the same way.
///
/// Names: the call's actual inputs and outputs replace the formal ones; values internal to the
/// body get the calling node's name as a prefix (`call/inner`), so two calls never collide.
/// Attributes that refer to the call's (`ref_attr_name`) take the call's value, else the function's
/// default, else they are left out, as the specification says.
extension ONNXModel {
    /// Calls nested deeper than this are refused: a function calling itself never ends.
    static let maximumFunctionDepth = 32
    /// The inlined graph may hold at most this many nodes and calls (nested calls multiply; exporters' largest
    /// vision and text models hold tens of thousands).
    static let maximumInlinedNodes = 200_000

    /// This model with every call of a local function replaced by the function's body.
    package func inliningFunctions(file: String) throws -> ONNXModel {
        guard !functions.isEmpty else { return self }
        var inliner = ONNXFunctionInliner(functions: functions, file: file)
        var result = self
        result.graph.nodes = try inliner.expand(graph.nodes, depth: 0)
        result.functions = []
        // The bodies' ops may come from domains only the functions declared.
        for function in functions {
            for set in function.operatorSets where !result.operatorSets.contains(where: { $0.domain == set.domain }) {
                result.operatorSets.append(set)
            }
        }
        return result
    }
}

struct ONNXFunctionInliner {
    struct Key: Hashable { var domain: String, name: String, overload: String }

    let table: [Key: ONNXFunction]
    let file: String
    var usedPrefixes: Set<String> = []
    var nodeCount = 0

    init(functions: [ONNXFunction], file: String) {
        var table: [Key: ONNXFunction] = [:]
        // The first definition of a name wins, as in onnxruntime.
        for function in functions {
            let key = Key(domain: Self.domain(function.domain), name: function.name, overload: function.overload)
            if table[key] == nil { table[key] = function }
        }
        self.table = table
        self.file = file
    }

    static func domain(_ domain: String) -> String { domain == "ai.onnx" ? "" : domain }

    mutating func expand(_ nodes: [ONNXNode], depth: Int) throws -> [ONNXNode] {
        var result: [ONNXNode] = []
        result.reserveCapacity(nodes.count)
        for node in nodes {
            // Calls count too: functions of empty bodies calling each other twice per level would
            // otherwise expand 2^depth times while adding no node.
            nodeCount += 1
            guard nodeCount <= ONNXModel.maximumInlinedNodes else {
                throw ONNXError(.unsupported, file: file, subject: node.name,
                                "inlining the model's functions would give more than \(ONNXModel.maximumInlinedNodes) nodes")
            }
            let key = Key(domain: Self.domain(node.domain), name: node.opType, overload: node.overload)
            guard let function = table[key] else {
                result.append(node)
                continue
            }
            guard depth < ONNXModel.maximumFunctionDepth else {
                throw ONNXError(.invalidGraph, file: file, subject: node.name,
                                "function '\(function.name)' calls nest more than \(ONNXModel.maximumFunctionDepth) levels deep (a function that calls itself?)")
            }
            guard node.inputs.count <= function.inputs.count, node.outputs.count <= function.outputs.count else {
                throw ONNXError(.invalidGraph, file: file, subject: node.name,
                                "calls function '\(function.name)' with \(node.inputs.count) inputs and \(node.outputs.count) outputs; it takes \(function.inputs.count) and gives \(function.outputs.count)")
            }
            result += try expand(try body(of: function, calledBy: node), depth: depth + 1)
        }
        return result
    }

    /// The function's nodes with the call's names and attribute values.
    mutating func body(of function: ONNXFunction, calledBy call: ONNXNode) throws -> [ONNXNode] {
        let prefix = uniquePrefix(call.name.isEmpty ? function.name : call.name)
        var names: [String: String] = [:]
        for (index, formal) in function.inputs.enumerated() {
            names[formal] = index < call.inputs.count ? call.inputs[index] : ""  // an omitted optional input
        }
        for (index, formal) in function.outputs.enumerated() where index < call.outputs.count {
            names[formal] = call.outputs[index]
        }
        var given: [String: ONNXAttribute] = [:]
        for attribute in function.attributeDefaults { given[attribute.name] = attribute }
        for attribute in call.attributes { given[attribute.name] = attribute }
        let rename = { (name: String) -> String in name.isEmpty ? "" : names[name] ?? prefix + name }
        return try function.nodes.map { inner in
            var node = inner
            node.name = prefix + (inner.name.isEmpty ? inner.opType : inner.name)
            node.inputs = inner.inputs.map(rename)
            node.outputs = inner.outputs.map(rename)
            node.attributes = try inner.attributes.compactMap { attribute in
                guard let reference = attribute.reference else { return attribute }
                guard let value = given[reference] else { return nil }
                if value.reference != nil {
                    throw ONNXError(.invalidGraph, file: file, subject: call.name,
                                    "attribute '\(reference)' of the call to '\(function.name)' refers to another attribute outside a function")
                }
                return ONNXAttribute(name: attribute.name, value: value.value)
            }
            return node
        }
    }

    mutating func uniquePrefix(_ base: String) -> String {
        var candidate = base + "/"
        var index = 1
        while usedPrefixes.contains(candidate) {
            candidate = "\(base)_\(index)/"
            index += 1
        }
        usedPrefixes.insert(candidate)
        return candidate
    }
}
