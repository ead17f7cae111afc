import Foundation
import ScionIR

/// Turns a channels-first graph (after `ChannelsFirstLayoutPass`) into an ONNX model: one ONNX node, or
/// a short fixed pattern, per IR node; fused activations expanded; parameters become initializers whose
/// bytes are read only when the model is written.
package enum ONNXExporter {
    /// Opsets the exporter writes. 13 settled the single-axis Softmax and input-form Squeeze/Clip/Pad;
    /// 22 and 23 changed no op Scion writes (they added element types and new ops).
    package static let supportedOpsets: ClosedRange<Int64> = 13...23
    /// metadata_props key listing frozen parameters (a JSON array of names), read back by the reader.
    package static let frozenParametersKey = "scion.frozen_parameters"

    /// The model at `opset`; with none, at the lowest opset that writes every node in its native
    /// form (`lowestOpset(for:)`), so older runtimes read it when nothing newer is needed.
    package static func makeModel(from graph: Graph, file: String, opset requested: Int64? = nil,
                                 producerVersion: String = "0.1.0") throws -> ONNXModel {
        let opset = try requested ?? lowestOpset(for: graph, file: file)
        guard supportedOpsets.contains(opset) else {
            throw ONNXError(.unsupported, file: file, "opset \(opset) is not supported for writing (use 13 to 23)")
        }
        guard graph.hasArchitecture else {
            throw ONNXError(.unsupported, file: file, "a weights-only file has no graph to write")
        }
        let graph = separatingParameterNames(graph)
        let builder = try emitted(graph, file: file, opset: opset)
        // Only parameters some ONNX node reads (a Normalization's statistics are folded into constants).
        let used = Set(builder.nodes.flatMap(\.inputs))
        let initializers = graph.parameters.all.filter { used.contains($0.name) }.map { parameter in
            ONNXTensor(name: parameter.name, dimensions: parameter.shape.map { Int64($0) },
                       dataType: ONNXDataType(parameter.dtype).rawValue, data: .storage(parameter.storage))
        }
        var dimensionNames: Set<String> = []
        let onnxGraph = ONNXGraph(
            name: graph.name, nodes: builder.nodes, initializers: initializers + builder.initializers,
            inputs: graph.inputs.map { valueInfo($0, taken: &dimensionNames) },
            outputs: graph.outputs.map { name in
                valueInfo(graph.values[name] ?? ValueInfo(name: name, shape: nil, dtype: .float32), taken: &dimensionNames)
            })
        let frozen = graph.parameters.all.filter { !$0.trainable && used.contains($0.name) }.map(\.name)
            + builder.frozenConstants.filter(used.contains)
        var metadata: [(key: String, value: String)] = [(frozenParametersKey, jsonArray(frozen))]
        for key in graph.metadata.keys.sorted() where key.hasPrefix("keras") || key == "format" {
            metadata.append(("scion.source.\(key)", graph.metadata[key] ?? ""))
        }
        if let classNames = graph.metadata[Graph.classNamesKey] { metadata.append((Graph.classNamesKey, classNames)) }
        // Opaque nodes the ONNX reader kept may belong to other domains: their imports come along.
        var operatorSets = [ONNXOperatorSet(domain: "", version: opset)]
        for entry in (graph.metadata["onnx.opset_imports"] ?? "").split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let version = Int64(parts[1]) {
                operatorSets.append(ONNXOperatorSet(domain: String(parts[0]), version: version))
            }
        }
        return ONNXModel(irVersion: irVersion(forOpset: opset), operatorSets: operatorSets,
                         producerName: "scion", producerVersion: producerVersion, graph: onnxGraph, metadata: metadata)
    }

    /// The lowest opset (13 at least, the oldest Scion writes) whose ONNX has each node's own form:
    /// LayerNormalization needs 17, Gelu 20, GroupNormalization 21, an antialiased Resize 18. The
    /// emitter itself says so (`ONNXGraphBuilder.hasNative`) while it writes the graph at the newest
    /// opset, so this cannot disagree with what it writes. Nodes an ONNX file's reader kept opaque
    /// are written back as they were, in their file's opset: that opset is the least for them.
    package static func lowestOpset(for graph: Graph, file: String) throws -> Int64 {
        guard graph.hasArchitecture else { return supportedOpsets.lowerBound }
        var lowest = try emitted(graph, file: file, opset: supportedOpsets.upperBound).nativeOpset
        let keepsDefaultDomainNodes = graph.nodes.contains { node in
            if case .opaque(let attributes) = node.op { return attributes.domain.isEmpty || attributes.domain == "ai.onnx" }
            return false
        }
        if keepsDefaultDomainNodes, let source = graph.metadata["onnx.opset"].flatMap({ Int64($0) }) {
            lowest = max(lowest, source)
        }
        return min(max(lowest, supportedOpsets.lowerBound), supportedOpsets.upperBound)
    }

    /// Every node of `graph` as ONNX nodes at `opset` (no weight bytes are read).
    static func emitted(_ graph: Graph, file: String, opset: Int64) throws -> ONNXGraphBuilder {
        var names = Set(graph.inputs.map(\.name))
        for node in graph.nodes { names.formUnion(node.outputs) }
        names.formUnion(graph.parameters.names)
        var builder = ONNXGraphBuilder(file: file, opset: opset, reservedNames: names)
        for node in graph.nodes {
            let inputs = node.inputs.map { graph.values[$0] }
            try builder.emit(node, parameters: graph.parameters(of: node), inputShapes: inputs.map { $0?.shape },
                             outputShape: graph.values[node.outputs.first ?? ""]?.shape)
        }
        return builder
    }

    /// The IR version onnx pairs with each opset (onnx.helper.VERSION_TABLE).
    static func irVersion(forOpset opset: Int64) -> Int64 {
        switch opset {
        case ...14: 7
        case 15...18: 8
        case 19...20: 9
        case 21...22: 10
        default: 11
        }
    }

    /// Unknown dimensions become named ones: `batch` for the first, `dim_N` for the others. ONNX
    /// reads one name as one length: a name already given to another value (`taken`) is not reused
    /// (a seq2seq model's encoder and decoder sequences differ), the value's own name prefixes it.
    static func valueInfo(_ value: ValueInfo, taken: inout Set<String>) -> ONNXValueInfo {
        let shape = value.shape.map { shape in
            shape.dimensions.enumerated().map { index, dimension -> ONNXDimension in
                if let dimension { return .value(Int64(dimension)) }
                if index == 0 { return .parameter("batch") }
                var name = "dim_\(index)"
                if taken.contains(name) { name = "\(value.name)_dim_\(index)" }
                while taken.contains(name) { name += "_" }
                taken.insert(name)
                return .parameter(name)
            }
        }
        return ONNXValueInfo(name: value.name, elementType: ONNXDataType(value.dtype).rawValue, shape: shape)
    }

    /// A JSON array of strings, written by the same library the reader parses it with (hand escaping
    /// would miss control characters and leave the reader an unreadable list).
    static func jsonArray(_ strings: [String]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: strings, options: [.withoutEscapingSlashes]) else {
            return "[]"
        }
        return String(decoding: data, as: UTF8.self)
    }
}
