import ScionIR

extension KerasPatternRewriter {
    /// torch's LayerNorm as exported before ONNX had LayerNormalization (opset < 17) is one
    /// LayerNormalization:
    ///
    /// ```
    ///  x → ReduceMean(trailing axes, keepdims) → m;  d = Sub(x, m)
    ///  d → Pow(·, 2) → ReduceMean(same axes) → Add ε → Sqrt → s;  Div(d, s) → Mul γ → Add β
    ///    →  LayerNormalization(axes, epsilon ε), gamma γ and beta β
    /// ```
    ///
    /// The Mul and the Add are taken when their constants have the normalized axes' shape
    /// (`elementwise_affine=False` has neither); every value in between must have no other reader.
    mutating func foldLayerNormalizationChain(_ position: Int) throws {
        let meanNode = graph.nodes[position]
        guard case .onnx(.reduce(let reduction)) = meanNode.op, reduction.kind == .mean, reduction.keepDimensions,
              let x = meanNode.inputs.first, let rank = shape(x)?.rank, let axes = Self.trailingAxes(reduction.axes, rank: rank),
              let inputShape = shape(x), let mean = meanNode.outputs.first, let subtractor = soleReader(of: mean),
              case .elementwise(.subtract) = graph.nodes[subtractor].op, graph.nodes[subtractor].inputs == [x, mean],
              let centered = graph.nodes[subtractor].outputs.first, !graphOutputs.contains(centered),
              let readers = consumers[centered], readers.count == 2 else { return }
        // The centred value feeds the square and the division, in either order.
        guard let power = readers.first(where: { graph.nodes[$0].op == .elementwise(.power) }),
              let divider = readers.first(where: { graph.nodes[$0].op == .elementwise(.divide) }),
              graph.nodes[power].inputs.count == 2, graph.nodes[power].inputs[0] == centered,
              constant(graph.nodes[power].inputs[1])?.parameter.scalarValue == 2,
              let squared = graph.nodes[power].outputs.first, let varianceNode = soleReader(of: squared),
              case .onnx(.reduce(let second)) = graph.nodes[varianceNode].op, second.kind == .mean, second.keepDimensions,
              Self.trailingAxes(second.axes, rank: rank) == axes, graph.nodes[varianceNode].inputs == [squared],
              let variance = graph.nodes[varianceNode].outputs.first, let adder = soleReader(of: variance),
              case .elementwise(.add) = graph.nodes[adder].op, graph.nodes[adder].inputs.count == 2,
              let epsilonValue = graph.nodes[adder].inputs.first(where: { $0 != variance }),
              let epsilon = constant(epsilonValue)?.parameter.scalarValue, epsilon >= 0,
              let shifted = graph.nodes[adder].outputs.first, let rooter = soleReader(of: shifted),
              graph.nodes[rooter].op == .onnx(.unary(.squareRoot)), let deviation = graph.nodes[rooter].outputs.first,
              soleReader(of: deviation) == divider, graph.nodes[divider].inputs == [centered, deviation],
              let normalized = graph.nodes[divider].outputs.first else { return }
        let normalizedShape = axes.map { inputShape[$0] }
        guard normalizedShape.allSatisfy({ $0 != nil }) else { return }
        var attributes = LayerNormalizationAttributes(axes: axes, epsilon: Float(epsilon), center: false, scale: false)
        var parameters: [String] = []
        var output = normalized
        var folded = [meanNode.name, graph.nodes[subtractor].name, graph.nodes[power].name, graph.nodes[varianceNode].name,
                      graph.nodes[adder].name, graph.nodes[rooter].name]
        // γ then β: constants of the normalized axes' shape read by this Mul or Add alone.
        for (operation, role) in [(ElementwiseOperation.multiply, ParameterRole.gamma), (.add, .beta)] {
            guard let reader = soleReader(of: output), case .elementwise(operation) = graph.nodes[reader].op,
                  graph.nodes[reader].inputs.count == 2, let other = graph.nodes[reader].inputs.first(where: { $0 != output }),
                  let (_, parameter) = privateConstant(other), parameter.dtype == .float32,
                  parameter.shape.drop(while: { $0 == 1 }) == ArraySlice(normalizedShape.compactMap { $0 }),
                  let next = graph.nodes[reader].outputs.first else { break }
            graph.parameters[parameter.name]?.role = role
            graph.parameters[parameter.name]?.shape = normalizedShape.compactMap { $0 }
            parameters.append(parameter.name)
            if role == .gamma { attributes.scale = true } else { attributes.center = true }
            folded.append(graph.nodes[reader].name)
            output = next
        }
        // Keras's LayerNormalization with center but no scale: β without γ cannot follow a Div here.
        guard attributes.scale || !attributes.center else { return }
        graph.nodes[divider].op = .layerNormalization(attributes)
        graph.nodes[divider].inputs = [x]
        graph.nodes[divider].outputs = [output]
        graph.nodes[divider].parameters = parameters
        removed.formUnion(folded)
    }

    /// The axes of a ReduceMean when they are the last ones of a value of `rank` (sorted,
    /// non-negative); nil for all axes or any other set.
    static func trailingAxes(_ axes: [Int]?, rank: Int) -> [Int]? {
        guard let axes, !axes.isEmpty else { return nil }
        let resolved = axes.map { $0 < 0 ? $0 + rank : $0 }.sorted()
        guard Set(resolved).count == resolved.count, resolved.last == rank - 1, resolved.first ?? 0 >= 1,
              resolved == Array((rank - resolved.count)..<rank) else { return nil }
        return resolved
    }
}
