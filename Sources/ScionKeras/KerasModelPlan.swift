import ScionIR

/// The Keras 3 layers a graph becomes, with their calls and weights: what both the config and the
/// weights file are written from.
struct KerasModelPlan {
    struct PlannedLayer {
        var name: String
        var specification: KerasLayerSpecification
        var trainable: Bool
        var parameters: [Parameter]
        /// Each call's input values; empty for an input layer.
        var calls: [[String]]
        var isInput: Bool
        var batchShape: [Int?] = []
        var dtype: DType = .float32
    }

    let file: String
    let graph: Graph
    var layers: [PlannedLayer] = []
    /// The layer call producing each value: layer index and call index.
    var producers: [String: (layer: Int, call: Int)] = [:]
    /// Shapes of the values between the layers of an expanded node (a fused activation written as
    /// its own layer): the node's output shape, since every such step keeps the shape.
    var stepValues: [String: ValueInfo] = [:]
    /// Which of its layer call's outputs a value is, when not the first.
    var tensorIndices: [String: Int] = [:]
    private var usedNames = UniqueNames()
    private var layerIndexByIRLayer: [String: Int] = [:]
    /// What the first call of each IR layer was written as: a later call shares the Keras layer only when written alike.
    private var firstSpecifications: [String: [KerasLayerSpecification]] = [:]

    init(graph: Graph, file: String) throws {
        self.graph = graph
        self.file = file
        guard graph.hasArchitecture else {
            throw KerasError(.weightsOnly, file: file, "the model has no architecture to write")
        }
        if graph.layout == .channelsFirst {
            throw KerasError(.writeFailed, file: file, KerasConfigWriter.onnxRefusal)
        }
        for input in graph.inputs {
            let name = uniqueName(input.name)
            layers.append(PlannedLayer(
                name: name, specification: KerasLayerSpecification(className: "InputLayer", config: [:]),
                trainable: true, parameters: [], calls: [], isInput: true,
                batchShape: input.shape?.dimensions ?? [nil], dtype: input.dtype))
            producers[input.name] = (layers.count - 1, 0)
        }
        let writer = KerasConfigWriter()
        // An index the reader split into Slice, Squeeze, Unsqueeze is written as its one GetItem.
        let chains = KerasIndexingChain.chains(in: graph)
        // A TimeDistributed layer the reader expanded is written as the one wrapper it came from.
        let distributed = KerasTimeDistributedGroup.groups(in: graph)
        let absorbed = Set(chains.values.flatMap { $0.members.dropLast() } + distributed.values.flatMap { $0.members.dropLast() })
            .union(KerasConstantOperands.absorbedConstants(in: graph))
        for (position, node) in graph.nodes.enumerated() where !absorbed.contains(position) {
            if let group = distributed[position] {
                let wrapper: (node: Node, specification: KerasLayerSpecification)
                do {
                    wrapper = try group.wrapper(in: graph, writer: writer)
                } catch let refusal as KerasConfigWriter.Refusal {
                    throw KerasError(.writeFailed, file: file, subject: node.name, "TimeDistributed: \(refusal.reason)")
                }
                try add(wrapper.node, writer: writer, specifications: [wrapper.specification])
                continue
            }
            let withConstant: (node: Node, specification: KerasLayerSpecification)?
            do {
                withConstant = try KerasConstantOperands.call(for: node, in: graph) ?? KerasNumpyOperands.call(for: node, in: graph)
            } catch let refusal as KerasConfigWriter.Refusal {
                throw KerasError(.writeFailed, file: file, subject: node.name, refusal.reason)
            }
            if let withConstant {
                try add(withConstant.node, writer: writer, specifications: [withConstant.specification])
                continue
            }
            guard let chain = chains[position] else {
                try add(node, writer: writer)
                continue
            }
            var indexing = node
            indexing.inputs = graph.nodes[chain.members[0]].inputs
            try add(indexing, writer: writer, specifications: [KerasOperationWriter.call("GetItem", arguments: [.tensor, .constant(chain.key)])])
        }
        for output in graph.outputs where producers[output] == nil {
            throw KerasError(.writeFailed, file: file, subject: output, "is a model output that no layer produces")
        }
    }

    /// Keras layer names: no `/` (Keras 3 refuses it), and only what TensorFlow accepts in a name
    /// scope (tf_keras opens one per layer: letters, digits, `_ . -`, not starting with `_ -`), so
    /// tf2onnx's `conv/BiasAdd:0` becomes `conv_BiasAdd_0`; unique.
    private mutating func uniqueName(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        var cleaned = String(name.map { allowed.contains($0) ? $0 : "_" })
        if let first = cleaned.first, first == "_" || first == "-" { cleaned = "layer" + cleaned }
        return usedNames.claim(cleaned.isEmpty ? "layer" : cleaned)
    }

    private mutating func add(_ node: Node, writer: KerasConfigWriter, specifications given: [KerasLayerSpecification]? = nil) throws {
        if case .recurrent(let a) = node.op, a.timeMajor, a.maskValue == nil, node.inputs.count > 1 {
            // KerasLayersPass folds the forms Keras's initial_state can say (docs/recurrent.md); this is another.
            throw KerasError(.writeFailed, file: file, subject: node.name, "\(a.cell.rawValue) reads initial states (ONNX's "
                             + "initial_h, initial_c) that are not [batch, units] values stacked per direction: Keras's "
                             + "initial_state takes one such tensor per state")
        }
        let specifications: [KerasLayerSpecification]
        do {
            specifications = try given ?? writer.layers(for: node, inputShapes: node.inputs.map { graph.values[$0]?.shape?.dimensions })
        } catch let refusal as KerasConfigWriter.Refusal {
            throw KerasError(.writeFailed, file: file, subject: node.name, refusal.reason)
        }
        if case .recurrent(let a) = node.op, a.maskValue != nil { try checkImpliedMask(node, a) }
        if case .globalPool(let a) = node.op, let value = a.maskValue { try checkImpliedPoolingMask(node, value: value) }
        if case .multiHeadAttention(let a) = node.op { try checkImpliedAttentionMasks(node, a) }
        for input in node.inputs where producers[input] == nil {
            throw KerasError(.writeFailed, file: file, subject: node.name, "reads \(input), which nothing produces")
        }
        // A later call of a shared layer: one more call of the same Keras layers, when it is written
        // the same way (two ONNX nodes reading one initializer, dynamo's dedup, may have been laid out
        // apart: a channels-first BatchNormalization beside a channels-last one is a layer of its own).
        if let first = layerIndexByIRLayer[node.layer], let earlier = firstSpecifications[node.layer],
           earlier.map(\.className) == specifications.map(\.className), earlier.map(\.config) == specifications.map(\.config) {
            var stepOutputs: [String] = []
            for (step, specification) in specifications.enumerated() {
                let layerIndex = first + step
                let inputs = resolve(specification.inputs, node: node, stepOutputs: stepOutputs)
                layers[layerIndex].calls.append(inputs)
                let value = step == specifications.count - 1 ? node.outputs.first ?? node.name : "\(node.name)#step\(step)"
                producers[value] = (layerIndex, layers[layerIndex].calls.count - 1)
                recordStepValue(value, of: node)
                stepOutputs.append(value)
            }
            return
        }
        let parameters = try orderedParameters(of: node, className: specifications.first?.className ?? "",
                                               config: specifications.first?.config ?? [:])
        let baseName = node.layer
        var stepOutputs: [String] = []
        for (step, var specification) in specifications.enumerated() {
            let name = uniqueName(step == 0 ? baseName : "\(baseName)_\(kerasSnakeCase(specification.className))")
            if specification.className == "LayerScale", let gamma = parameters.first, let last = gamma.shape.last {
                specification.config["projection_dim"] = .number(Double(last))
            }
            let inputs = resolve(specification.inputs, node: node, stepOutputs: stepOutputs)
            layers.append(PlannedLayer(name: name, specification: specification, trainable: node.trainable,
                                       parameters: step == 0 ? parameters : [], calls: [inputs], isInput: false))
            if step == 0 { layerIndexByIRLayer[node.layer] = layers.count - 1; firstSpecifications[node.layer] = specifications }
            let value = step == specifications.count - 1 ? node.outputs.first ?? node.name : "\(node.name)#step\(step)"
            producers[value] = (layers.count - 1, 0)
            recordStepValue(value, of: node)
            stepOutputs.append(value)
        }
        // A layer with several outputs (a recurrent layer returning its states) is one layer whose
        // call yields them all, told apart by their tensor index.
        if node.outputs.count > 1, specifications.count == 1, let last = producers[node.outputs[0]] {
            for (index, output) in node.outputs.enumerated().dropFirst() {
                producers[output] = last
                tensorIndices[output] = index
            }
        } else if node.outputs.count != 1 {
            throw KerasError(.writeFailed, file: file, subject: node.name, "Keras layers written by Scion have one output")
        }
    }

    /// Keras writes no mask for a recurrent layer (tf_keras never; Keras 3's `mask=` keyword is
    /// rebuilt on reload from the layer before), so the layer is written reading its sequence alone
    /// and the file says the mask only through `Embedding(mask_zero=True)` or `Masking(mask_value)`.
    /// That holds when the sequence comes from such an Embedding or Masking of the mask source (with
    /// the same mask value), directly or through Dropout and masked recurrent layers returning
    /// sequences (which pass the mask on); anything else is refused.
    private func checkImpliedMask(_ node: Node, _ a: RecurrentAttributes) throws {
        let source = node.inputs.count == 2 ? node.inputs[1] : nil
        var value = node.inputs.first
        while let current = value, let producer = graph.nodes.first(where: { $0.outputs.first == current }) {
            switch producer.op {
            case .embedding(let e) where e.maskZero && a.maskValue == 0 && producer.inputs.first == source:
                return
            case .masking(let m) where m.maskValue == a.maskValue && producer.inputs.first == source:
                return
            case .recurrent(let r) where r.returnSequences && r.maskValue == a.maskValue && r.bidirectional != .separate
                && producer.inputs.count == 2 && producer.inputs[1] == source:
                return
            case .dropout:
                value = producer.inputs.first
            default:
                value = nil
            }
        }
        throw KerasError(.writeFailed, file: file, subject: node.name,
                         "\(node.op.typeName) reads a Keras mask that Keras cannot rebuild: its input does not come from an "
                         + "Embedding(mask_zero=True) or a Masking of the mask source")
    }

    /// A masked GlobalAveragePooling1D is written reading its sequence alone, like a recurrent
    /// layer: Keras must give the sequence the same mask itself (`KerasImpliedMask`).
    private func checkImpliedPoolingMask(_ node: Node, value: Float) throws {
        guard node.inputs.count == 2,
              KerasImpliedMask.holds(in: graph, value: node.inputs[0], source: node.inputs[1], maskValue: value) else {
            throw KerasError(.writeFailed, file: file, subject: node.name,
                             "\(node.op.typeName) reads a Keras mask that Keras cannot rebuild: its input does not come from an "
                             + "Embedding(mask_zero=True) of the mask source")
        }
    }

    /// MultiHeadAttention's query and value masks likewise: Keras derives them from its inputs.
    private func checkImpliedAttentionMasks(_ node: Node, _ a: MultiHeadAttentionAttributes) throws {
        for (input, position, value) in [(0, a.queryMaskInput, a.queryMaskValue), (1, a.valueMaskInput, a.valueMaskValue)] {
            guard let position, let value else { continue }
            guard node.inputs.count == a.inputCount,
                  KerasImpliedMask.holds(in: graph, value: node.inputs[input], source: node.inputs[position], maskValue: value) else {
                throw KerasError(.writeFailed, file: file, subject: node.name,
                                 "MultiHeadAttention reads a Keras \(input == 0 ? "query" : "value") mask that Keras cannot rebuild: "
                                 + "its \(input == 0 ? "query" : "value") does not come from an Embedding(mask_zero=True) of the mask source")
            }
        }
    }

    private mutating func recordStepValue(_ value: String, of node: Node) {
        guard graph.values[value] == nil, let output = node.outputs.first, let info = graph.values[output] else { return }
        stepValues[value] = ValueInfo(name: value, shape: info.shape, dtype: info.dtype)
    }

    private func resolve(_ inputs: [KerasLayerInput]?, node: Node, stepOutputs: [String]) -> [String] {
        guard let inputs else { return node.inputs }
        return inputs.compactMap { input in
            switch input {
            case .nodeInput(let index): node.inputs.indices.contains(index) ? node.inputs[index] : nil
            case .step(let index): stepOutputs.indices.contains(index) ? stepOutputs[index] : nil
            }
        }
    }

    /// The node's weights in the order Keras 3 creates the layer's variables (`vars/0`, `vars/1`...).
    private func orderedParameters(of node: Node, className: String, config: [String: JSON]) throws -> [Parameter] {
        let parameters = try node.parameters.map { name -> Parameter in
            guard let parameter = graph.parameters[name] else {
                throw KerasError(.writeFailed, file: file, subject: node.name, "uses weight \(name), which the model does not hold")
            }
            return parameter
        }
        // The wrapper's weights are its inner layer's, in that layer's order, under its `layer` attribute.
        if className == KerasTimeDistributed.className, let inner = KerasTimeDistributed.innerLayer(.object(config)) {
            var unwrapped = parameters
            for index in unwrapped.indices { unwrapped[index].role = KerasTimeDistributed.innerRole(unwrapped[index].role) }
            return try ordered(unwrapped, of: node, className: inner.className, config: inner.config).map { parameter in
                var wrapped = parameter
                wrapped.role = .sublayer("layer", parameter.role)
                return wrapped
            }
        }
        return try ordered(parameters, of: node, className: className, config: .object(config))
    }

    private func ordered(_ parameters: [Parameter], of node: Node, className: String, config: JSON) throws -> [Parameter] {
        guard let roles = KerasWeightRoles.roles(className: className, config: config) else { return parameters }
        var byRole: [ParameterRole: Parameter] = [:]
        for parameter in parameters { byRole[parameter.role] = parameter }
        let ordered = roles.compactMap { byRole[$0] }
        guard ordered.count == parameters.count else {
            throw KerasError(.writeFailed, file: file, subject: node.name,
                             "has weights \(parameters.map(\.role.rawValue)), Keras \(className) expects \(roles.map(\.rawValue))")
        }
        return ordered
    }
}
