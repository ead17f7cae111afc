import ScionIR

extension KerasPatternRewriter {
    /// Replaces a matched block by one MultiHeadAttention with Keras's weight layout, when every
    /// node it removes is read only by the block (or by Shape arithmetic that dies with it).
    mutating func applyTorchAttention(_ match: TorchAttentionMatch) throws {
        guard let doomed = deadRegion(match) else { return }
        let name = attentionName(match)
        let (heads, keyDim, valueDim, width) = (match.heads, match.keyDim, match.valueDim, match.inputWidth)

        // torch scales the scores by the product of its factors; Keras by 1/sqrt(key_dim): the
        // difference (1 for nn.MultiheadAttention) goes into the query projection.
        let queryFactor = Float(match.scale * Double(keyDim).squareRoot())
        let rescale = abs(queryFactor - 1) > 1e-6
        var projections: [(sublayer: String, kernel: [Float], bias: [Float], shape: [Int])] = []
        for (sublayer, projection, offset, columns) in [("query_dense", match.query.projection, match.query.offset, keyDim),
                                                        ("key_dense", match.key.projection, match.key.offset, keyDim),
                                                        ("value_dense", match.value.projection, match.value.offset, valueDim)] {
            // Rows: x's width for the query, the memory's for key and value.
            guard let rows = linearKernel(projection)?.shape[0], let (kernel, bias) = try denseWeights(projection),
                  kernel.count / max(rows, 1) >= offset + heads * columns else { return }
            let n = kernel.count / rows
            var selected = [Float](), selectedBias = [Float]()
            selected.reserveCapacity(rows * heads * columns)
            for row in 0..<rows { selected.append(contentsOf: kernel[(row * n + offset)..<(row * n + offset + heads * columns)]) }
            selectedBias = Array(bias.map { Array($0[offset..<(offset + heads * columns)]) } ?? [Float](repeating: 0, count: heads * columns))
            if sublayer == "query_dense", rescale {
                selected = selected.map { $0 * queryFactor }
                selectedBias = selectedBias.map { $0 * queryFactor }
            }
            projections.append((sublayer, selected, selectedBias, [rows, heads, columns]))
        }
        guard let (outputKernel, outputBias) = try denseWeights(match.outputProjection),
              outputKernel.count == heads * valueDim * match.outputWidth else { return }
        projections.append(("output_dense", outputKernel, outputBias ?? [Float](repeating: 0, count: match.outputWidth),
                            [heads, valueDim, match.outputWidth]))

        // Frozen projections (Scion's own ONNX records them) give a frozen layer.
        let projectionNodes = [match.query.projection, match.key.projection, match.value.projection, match.outputProjection]
        let trainable = projectionNodes.allSatisfy { graph.nodes[$0].trainable && graph.parameters(of: graph.nodes[$0]).allSatisfy(\.trainable) }
        var parameterNames: [String] = []
        for projection in projections {
            for (role, values, shape) in [(ParameterRole.kernel, projection.kernel, projection.shape),
                                          (.bias, projection.bias, projection.sublayer == "output_dense" ? [match.outputWidth]
                                                                                                          : Array(projection.shape.dropFirst()))] {
                let parameterName = "\(name)/\(projection.sublayer)/\(role == .kernel ? "kernel" : "bias")"
                graph.parameters[parameterName] = Parameter(
                    name: parameterName, role: .sublayer(projection.sublayer, role), shape: shape, dtype: .float32, trainable: trainable,
                    storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) }))
                parameterNames.append(parameterName)
            }
        }
        var attributes = MultiHeadAttentionAttributes(numHeads: heads, keyDim: keyDim, valueDim: valueDim, useBias: true,
                                                      useCausalMask: match.causal)
        if match.outputWidth != width { attributes.outputShape = [match.outputWidth] }

        let replaced = graph.nodes[match.outputProducer]
        let dropped = doomed.subtracting([match.outputProducer])
        let stillUsed = Set(graph.nodes.enumerated().filter { !doomed.contains($0.offset) && !removed.contains($0.element.name) }
            .flatMap(\.element.parameters))
        for position in doomed {
            for parameter in graph.nodes[position].parameters where !stillUsed.contains(parameter) {
                if case .onnx(.constant) = graph.nodes[position].op { continue }
                graph.parameters[parameter] = nil
            }
        }
        graph.nodes[match.outputProducer] = Node(name: name, op: .multiHeadAttention(attributes), inputs: [match.input, match.memory],
                                                 outputs: [match.output], parameters: parameterNames, scope: replaced.scope,
                                                 trainable: trainable)
        for position in dropped { removed.insert(graph.nodes[position].name) }
        index()
    }

    /// The block's nodes plus everything feeding only them (projections, torch's Transpose to
    /// sequence-first, Shape arithmetic, constants); nil when some value the block removes is read
    /// elsewhere.
    private func deadRegion(_ match: TorchAttentionMatch) -> Set<Int>? {
        var doomed = match.core
        for position in doomed {
            for output in graph.nodes[position].outputs where output != match.output {
                if graphOutputs.contains(output) { return nil }
            }
        }
        // Ancestors of the block, the nearest first.
        var ancestors: [Int] = []
        var seen = doomed
        var frontier = Array(doomed)
        while let position = frontier.popLast() {
            for input in graph.nodes[position].inputs where input != match.input && input != match.memory {
                guard let producer = producers[input], !seen.contains(producer), !removed.contains(graph.nodes[producer].name) else { continue }
                seen.insert(producer)
                ancestors.append(producer)
                frontier.append(producer)
            }
        }
        var changed = true
        while changed {
            changed = false
            for position in ancestors where !doomed.contains(position) {
                let outputs = graph.nodes[position].outputs
                let unread = outputs.allSatisfy { output in
                    !graphOutputs.contains(output) && (consumers[output] ?? []).allSatisfy { reader in
                        doomed.contains(reader) || removed.contains(graph.nodes[reader].name)
                    }
                }
                if unread { doomed.insert(position); changed = true }
            }
        }
        // Every value a removed node produced must be read only by removed nodes.
        for position in doomed where position != match.outputProducer {
            for output in graph.nodes[position].outputs {
                for reader in consumers[output] ?? [] where !doomed.contains(reader) && !removed.contains(graph.nodes[reader].name) {
                    return nil
                }
            }
        }
        return doomed
    }

    /// A Dense's kernel `[in, out]` and bias, as floats.
    private func denseWeights(_ position: Int) throws -> (kernel: [Float], bias: [Float]?)? {
        let node = graph.nodes[position]
        guard let kernel = graph.parameter(of: node, role: .kernel), kernel.dtype == .float32 else { return nil }
        let values = try Self.allFloats(kernel)
        var bias: [Float]?
        if let parameter = graph.parameter(of: node, role: .bias) {
            guard parameter.dtype == .float32, parameter.elementCount == kernel.shape[1] else { return nil }
            bias = try Self.allFloats(parameter)
        }
        return (values, bias)
    }

    static func allFloats(_ parameter: Parameter) throws -> [Float] {
        let bytes = try parameter.storage.bytes()
        guard bytes.count == parameter.elementCount * 4 else {
            throw PassError(pass: "keras-layers", subject: parameter.name, "holds \(bytes.count) bytes, expected \(parameter.elementCount * 4)")
        }
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The torch module's path when the exporter kept it in node names (`/enc/layers.0/self_attn`),
    /// else one made from the out projection's name; unique among the nodes.
    private func attentionName(_ match: TorchAttentionMatch) -> String {
        let first = graph.nodes[match.query.projection].name, last = graph.nodes[match.outputProjection].name
        var prefix = String(zip(first, last).prefix { $0 == $1 }.map(\.0))
        if let slash = prefix.lastIndex(of: "/") { prefix = String(prefix[..<slash]) } else { prefix = "" }
        var name = prefix.count >= 3 ? prefix : "\(last)_attention"
        let taken = Set(graph.nodes.map(\.name))
        var suffix = 1
        let base = name
        while taken.contains(name) { name = "\(base)_\(suffix)"; suffix += 1 }
        return name
    }
}
