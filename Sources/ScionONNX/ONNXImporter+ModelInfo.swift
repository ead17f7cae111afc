import ScionIR

/// The model-level facts of an ONNX file, typed in `Graph.info` for `scion inspect`: what `onnx.load`
/// reports as `ir_version`, `opset_import`, `producer_name`/`producer_version`, `doc_string` and
/// `metadata_props`, plus the `dim_param` names of the interface that the IR's shapes cannot hold.
extension ONNXImportSession {
    mutating func recordModelInfo() {
        var info = ModelInfo()
        info.irVersion = Int(truncatingIfNeeded: model.irVersion)
        info.operatorSets = model.operatorSets.map {
            ModelInfo.OperatorSet(domain: $0.domain, version: Int(truncatingIfNeeded: $0.version))
        }
        info.producerName = model.producerName.isEmpty ? nil : model.producerName
        info.producerVersion = model.producerVersion.isEmpty ? nil : model.producerVersion
        info.documentation = model.documentation.isEmpty ? nil : model.documentation
        // All of them, Scion's own frozen-parameter list included: inspect shows what the file holds.
        info.properties = model.metadata.map { ModelInfo.Property(key: $0.key, value: $0.value) }
        // Initializers listed as inputs (IR 3) are weights, not part of the interface.
        let interface = Set(graph.inputs.map(\.name) + graph.outputs)
        for value in model.graph.inputs + model.graph.outputs where interface.contains(value.name) {
            guard let dimensions = value.shape, dimensions.contains(where: { if case .parameter = $0 { true } else { false } }) else { continue }
            info.dimensionNames[value.name] = dimensions.map { dimension in
                if case .parameter(let name) = dimension, !name.isEmpty { return name }
                return nil
            }
        }
        info.nodeTypes = graph.info.nodeTypes
        graph.info = info
    }
}
