import ScionIR

/// One positional argument of an operation node's call, as the model writer spells it in
/// `inbound_nodes[i].args`: the next of the node's input tensors, all of them as one list
/// (Concatenate), or a constant (`x * 2.0` is `args: [tensor, 2.0]`).
enum KerasCallArgument: Equatable {
    case tensor
    case tensorList
    case constant(JSON)
}

/// IR ops Keras has no layer for, written as the Keras 3 operation nodes (`keras.ops` calls) it
/// saves for them, the inverse of `KerasOperationReader`: class name, module, settings in
/// `config`, constants in the call's arguments. Keras 3 reloads them from `.keras` and, because the
/// entries keep `module`, from `.h5` too; tf_keras has no `keras.ops` and cannot.
///
/// ```
///  MatMul -> Matmul      unary -> Sqrt, Absolute, Erf (keras.src.ops.math)...      Cast -> Cast (core)
///  ReduceMean/Sum/Max/Min/Prod -> Mean/Sum/Max/Min/Prod      Squeeze -> Squeeze    Unsqueeze -> ExpandDims
///  Slice -> GetItem with every axis up to the last sliced one spelled out          Clip -> Clip, Maximum, Minimum
///  Reshape naming the batch -> Reshape      Transpose moving the batch -> Transpose    Div, Pow -> TrueDivide, Power
///  Equal/Less/.../And/Or/Xor -> Equal, Less, LessEqual..., LogicalAnd...   Where -> Where   Mod (fmod 0) -> Mod
///  Trilu with a constant k -> Triu, Tril      Einsum -> Einsum      GatherElements -> TakeAlongAxis
///  Split -> Split (one layer, one tensor index per output)     Gather -> Take (constant indices in the call)
///  Expand to a constant shape -> BroadcastTo (the shape in the config)     Pad (constant) -> Pad
/// ```
enum KerasOperationWriter {
    typealias Refusal = KerasConfigWriter.Refusal

    static func call(_ className: String, module: String = "keras.src.ops.numpy", config: [String: JSON] = [:],
                          arguments: [KerasCallArgument] = [.tensor]) -> KerasLayerSpecification {
        var specification = KerasLayerSpecification(className: className, module: module, registeredName: className, config: config)
        specification.arguments = arguments
        return specification
    }

    static func layers(for operation: ONNXOperation, node: Node, inputRanks: [Int?]) throws -> [KerasLayerSpecification] {
        let rank = inputRanks.first ?? nil
        switch operation {
        case .matMul:
            guard node.parameters.isEmpty, node.inputs.count == 2 else {
                throw Refusal(reason: "MatMul with a constant operand has no Keras equivalent (a Dense holds the kernel)")
            }
            return [call("Matmul", arguments: [.tensor, .tensor])]
        case .unary(let unary):
            return [unaryOperation(unary)]
        case .reduce(let a):
            return reduction(a)
        case .cast(let a):
            return [call("Cast", module: "keras.src.ops.core", config: ["dtype": .string(a.to.rawValue)])]
        case .squeeze(let a):
            return [call("Squeeze", config: ["axis": KerasConfigWriter.ints(a.axes)])]
        case .unsqueeze(let a):
            // One ExpandDims per axis, lowest first: each inserts at its place in the final result.
            let axes = a.axes.sorted()
            guard axes.allSatisfy({ $0 >= 0 }) else { throw Refusal(reason: "Unsqueeze at negative axes \(a.axes) is not resolved") }
            return axes.enumerated().map { step, axis in
                var specification = call("ExpandDims", config: ["axis": .number(Double(axis))])
                if step > 0 { specification.inputs = [.step(step - 1)] }
                return specification
            }
        case .slice(let a):
            guard let rank else { throw Refusal(reason: "Slice of a value of unknown rank cannot be written as an index") }
            return [call("GetItem", arguments: [.tensor, .constant(try sliceKey(a, rank: rank))])]
        case .clip(let a):
            switch (a.minimum, a.maximum) {
            case (let low?, let high?):
                return [call("Clip", config: ["x_min": KerasConfigWriter.number(low), "x_max": KerasConfigWriter.number(high)])]
            case (let low?, nil): return [call("Maximum", arguments: [.tensor, .constant(KerasConfigWriter.number(low))])]
            case (nil, let high?): return [call("Minimum", arguments: [.tensor, .constant(KerasConfigWriter.number(high))])]
            case (nil, nil): return [KerasLayerSpecification(className: "Identity", config: [:])]
            }
        case .comparison(let comparison):
            return [call(comparisonClass(comparison), arguments: [.tensor, .tensor])]
        case .select:
            return [call("Where", arguments: [.tensor, .tensor, .tensor])]
        case .mod(let a):
            guard !a.fmod else { throw Refusal(reason: "Mod with fmod=1 has no keras.ops equivalent (keras.ops.mod takes the divisor's sign)") }
            return [call("Mod", arguments: [.tensor, .tensor])]
        case .trilu(let a):
            guard let k = a.k else { throw Refusal(reason: "Trilu with a diagonal offset computed at run time has no keras.ops equivalent") }
            return [call(a.upper ? "Triu" : "Tril", config: ["k": .number(Double(k))])]
        case .einsum(let a):
            return [call("Einsum", config: ["subscripts": .string(try lowercaseSubscripts(a.equation))], arguments: node.inputs.map { _ in .tensor })]
        case .gatherElements(let a):
            return [call("TakeAlongAxis", config: ["axis": .number(Double(a.axis))], arguments: [.tensor, .tensor])]
        case .gather(let a):
            // Constant indices are written into the call by the model plan (KerasModelPlan+ConstantOperands).
            guard node.inputs.count == 2 else { throw Refusal(reason: "Gather needs its data and its indices") }
            return [call("Take", config: ["axis": .number(Double(a.axis))], arguments: [.tensor, .tensor])]
        case .split(let a):
            return [try split(a, outputs: node.outputs.count)]
        case .pad(let a):
            // The layout pass's padding of a max pooling over values that may be negative.
            let rank = a.pads.count / 2
            guard a.mode == .constant, a.pads.count == 2 * rank, a.pads.allSatisfy({ $0 >= 0 }) else {
                throw Refusal(reason: "Pad in mode \(a.mode.rawValue) with pads \(a.pads) has no keras.ops equivalent here")
            }
            let widths = (0..<rank).map { KerasConfigWriter.ints([a.pads[$0], a.pads[rank + $0]]) }
            return [call("Pad", config: ["pad_width": .array(widths), "mode": "constant"],
                         arguments: [.tensor, .constant(KerasConfigWriter.number(a.value))])]
        case .argExtreme(let a):
            // keras.ops.argmax returns the first index among equals, as ONNX's default does.
            guard !a.selectLastIndex else { throw Refusal(reason: "\(operation.typeName) with select_last_index=1 has no keras.ops equivalent") }
            return [call(a.largest ? "Argmax" : "Argmin", config: ["axis": .number(Double(a.axis)), "keepdims": .bool(a.keepDimensions)])]
        case .cumulativeSum(let a):
            guard let axis = a.axis else { throw Refusal(reason: "CumSum along an axis computed at run time has no keras.ops equivalent") }
            guard !a.exclusive, !a.reverse else {
                throw Refusal(reason: "CumSum with exclusive or reverse set has no keras.ops equivalent (keras.ops.cumsum sums inclusively, forwards)")
            }
            return [call("Cumsum", config: ["axis": .number(Double(axis)), "dtype": .null])]
        case .rmsNormalization(let a):
            // Keras's layer normalizes the axes it lists; ONNX's, every axis from `axis` on.
            guard node.inputs.count == 1 else { throw Refusal(reason: "RMSNormalization with a scale computed at run time has no Keras layer (its scale is a weight)") }
            let axes: [Int]
            if a.axis < 0 {
                axes = Array(a.axis..<0)
            } else {
                guard let rank, a.axis < rank else { throw Refusal(reason: "RMSNormalization from axis \(a.axis) of a value of unknown rank") }
                axes = Array((a.axis - rank)..<0)
            }
            return [KerasLayerSpecification(className: "RMSNormalization",
                                            config: ["axis": KerasConfigWriter.ints(axes), "epsilon": KerasConfigWriter.number(a.epsilon)])]
        case .scaledDotProductAttention(let a):
            return try dotProductAttention(a, node: node, rank: rank)
        case .rotaryEmbedding, .depthSpace:
            throw Refusal(reason: "\(operation.typeName) has no Keras layer equivalent yet")
        case .expand:
            throw Refusal(reason: "Expand to a shape computed at run time has no Keras equivalent (a constant shape is keras.ops.broadcast_to)")
        case .constant, .gemm, .resize, .localResponseNormalization,
             .coercedSoftmax, .shape, .tile, .range, .constantOfShape, .computedSlice, .computedPad, .scatterND, .gatherND,
             .computedReshape, .computedBatchNormalization,
             .computedInstanceNormalization:
            throw Refusal(reason: "\(operation.typeName) has no Keras layer equivalent")
        }
    }

    /// ONNX Attention as keras.ops.dot_product_attention, which takes `[B, S, heads, size]`: ONNX's
    /// 4-D `[B, heads, S, size]` goes through a Permute on each side. A bool mask is its `mask`, a
    /// float one its `bias` (both `[B, heads, Sq, Sk]`, as ONNX's); causal is top-left there, ONNX's
    /// without a cache.
    static func dotProductAttention(_ a: ScaledDotProductAttentionAttributes, node: Node, rank: Int?) throws -> [KerasLayerSpecification] {
        guard !a.hasPast, node.outputs.count == 1 else {
            throw Refusal(reason: "Attention with a key/value cache or its present or score outputs has no keras.ops equivalent")
        }
        guard a.softcap == 0 else {
            throw Refusal(reason: "Attention's softcap has no keras.ops equivalent (dot_product_attention's soft cap is x / (1 + |x| / c), on TPUs only)")
        }
        guard a.sequenceFirst || rank == 4 else {
            throw Refusal(reason: "Attention on 3-D inputs (heads folded into the features) is not written to Keras yet; 4-D inputs are")
        }
        let none = KerasCallArgument.constant(.null)
        var attention = call("DotProductAttention", module: "keras.src.ops.nn",
                             config: ["is_causal": .bool(a.isCausal), "flash_attention": .null, "attn_logits_soft_cap": .null],
                             arguments: [.tensor, .tensor, .tensor, a.mask == .additive ? .tensor : none, a.mask == .boolean ? .tensor : none,
                                         a.scale.map { .constant(KerasConfigWriter.number($0)) } ?? none])
        guard !a.sequenceFirst else { return [attention] }
        let swap = { (input: KerasLayerInput) in
            KerasLayerSpecification(className: "Permute", config: ["dims": KerasConfigWriter.ints([2, 1, 3])], inputs: [input])
        }
        attention.inputs = [.step(0), .step(1), .step(2)] + (a.mask == nil ? [] : [.nodeInput(3)])
        return [swap(.nodeInput(0)), swap(.nodeInput(1)), swap(.nodeInput(2)), attention, swap(.step(3))]
    }

    /// keras.ops's class for a comparison or logical operation.
    static func comparisonClass(_ comparison: ComparisonOperation) -> String {
        switch comparison {
        case .equal: "Equal"
        case .greater: "Greater"
        case .greaterOrEqual: "GreaterEqual"
        case .less: "Less"
        case .lessOrEqual: "LessEqual"
        case .and: "LogicalAnd"
        case .or: "LogicalOr"
        case .xor: "LogicalXor"
        }
    }

    /// keras.ops.split: numpy's `indices_or_sections`, the number of equal parts or the offsets where
    /// each part after the first starts.
    static func split(_ a: SplitAttributes, outputs: Int) throws -> KerasLayerSpecification {
        guard a.parts == outputs, outputs >= 1 else {
            throw Refusal(reason: "Split into \(a.parts) parts for \(outputs) outputs")
        }
        let sections: JSON
        if Set(a.sizes).count <= 1 {  // equal parts, of a known length or one known at run time
            sections = .number(Double(outputs))
        } else {
            var offsets: [Int] = []
            var offset = 0
            for size in a.sizes.dropLast() { offset += size; offsets.append(offset) }
            sections = KerasConfigWriter.ints(offsets)
        }
        return call("Split", config: ["indices_or_sections": sections, "axis": .number(Double(a.axis))])
    }

    /// The equation with its index letters renamed to lower case: Keras's einsum shape inference
    /// reads only lower-case letters (an upper-case `J`, which torch's exporters write for MaxViT's
    /// relative attention, fails to load). The renaming keeps distinct letters distinct.
    static func lowercaseSubscripts(_ equation: String) throws -> String {
        let letters = Set(equation.filter(\.isLetter))
        guard letters.contains(where: \.isUppercase) else { return equation }
        var free = Array("abcdefghijklmnopqrstuvwxyz").filter { !letters.contains($0) }
        var renamed: [Character: Character] = [:]
        for letter in letters.sorted() where letter.isUppercase {
            guard !free.isEmpty else { throw Refusal(reason: "Einsum '\(equation)' uses more than 26 distinct indices; keras.ops.einsum reads only lower-case ones") }
            renamed[letter] = free.removeFirst()
        }
        return String(equation.map { renamed[$0] ?? $0 })
    }

    /// A reduction: keras.ops has mean, sum, max, min, prod and logsumexp over any axes; the norms
    /// are spelled out (keras.ops.norm over two axes is a matrix norm, not ONNX's over the elements).
    private static func reduction(_ a: ReduceAttributes) -> [KerasLayerSpecification] {
        let config: [String: JSON] = ["axis": a.axes.map(KerasConfigWriter.ints) ?? .null, "keepdims": .bool(a.keepDimensions)]
        func then(_ steps: [KerasLayerSpecification]) -> [KerasLayerSpecification] {
            steps.enumerated().map { step, specification in
                var specification = specification
                if step > 0 { specification.inputs = [.step(step - 1)] }
                return specification
            }
        }
        switch a.kind {
        case .mean: return [call("Mean", config: config)]
        case .sum: return [call("Sum", config: config)]
        case .maximum: return [call("Max", config: config)]
        case .minimum: return [call("Min", config: config)]
        case .product: return [call("Prod", config: config)]
        case .logSumExp: return [call("Logsumexp", module: "keras.src.ops.math", config: config)]
        case .sumSquare: return then([call("Square"), call("Sum", config: config)])
        case .l1: return then([call("Absolute"), call("Sum", config: config)])
        case .l2: return then([call("Square"), call("Sum", config: config), call("Sqrt")])
        }
    }

    /// Add, Subtract, Multiply, Maximum, Minimum or Average of inputs a Keras merge layer would not
    /// broadcast as numpy does (`KerasMergeShapes`): keras.ops calls of two tensors, which broadcast
    /// as numpy does, chained over the inputs (`((a + b) + c)`, Average then divided by the count, as
    /// Keras's Average computes it). Refused when the shapes do not broadcast at all.
    static func broadcastingMerge(_ operation: ElementwiseOperation, shapes: [[Int?]]) throws -> [KerasLayerSpecification] {
        let rank = shapes.map(\.count).max() ?? 0
        for axis in 0..<rank {
            // Lined up from the end, as numpy does; a missing axis is 1.
            let lengths = Set(shapes.compactMap { shape in
                let index = axis - (rank - shape.count)
                return index < 0 ? 1 : shape[index]
            })
            guard lengths.subtracting([1]).count <= 1 else {
                throw Refusal(reason: "\(operation.typeName) of shapes \(shapes.map(KerasMergeShapes.spelled).joined(separator: " and ")) does not broadcast")
            }
        }
        let className: String
        switch operation {
        case .add, .average: className = "Add"
        case .subtract where shapes.count == 2: className = "Subtract"
        case .multiply: className = "Multiply"
        case .maximum: className = "Maximum"
        case .minimum: className = "Minimum"
        default: throw Refusal(reason: "Keras has no \(operation.typeName) of \(shapes.count) inputs")
        }
        guard shapes.count >= 2 else {
            throw Refusal(reason: "\(operation.typeName) of one input of rank 0: a Keras merge layer needs a batch axis")
        }
        var steps: [KerasLayerSpecification] = []
        for next in 1..<shapes.count {
            var step = call(className, arguments: [.tensor, .tensor])
            step.inputs = [next == 1 ? .nodeInput(0) : .step(next - 2), .nodeInput(next)]
            steps.append(step)
        }
        if operation == .average {
            var divide = call("TrueDivide", arguments: [.tensor, .constant(.number(Double(shapes.count)))])
            divide.inputs = [.step(steps.count - 1)]
            steps.append(divide)
        }
        return steps
    }

    private static func unaryOperation(_ unary: UnaryOperation) -> KerasLayerSpecification {
        switch unary {
        case .negate: call("Negative")
        case .absolute: call("Absolute")
        case .squareRoot: call("Sqrt")
        case .reciprocal: call("Reciprocal")
        case .logarithm: call("Log")
        case .errorFunction: call("Erf", module: "keras.src.ops.math")
        case .floor: call("Floor")
        case .ceil: call("Ceil")
        case .round: call("Round", config: ["decimals": 0])
        case .sign: call("Sign")
        case .not: call("LogicalNot")
        case .sine: call("Sin")
        case .cosine: call("Cos")
        case .tangent: call("Tan")
        case .arcsine: call("Arcsin")
        case .arccosine: call("Arccos")
        case .arctangent: call("Arctan")
        case .hyperbolicSine: call("Sinh")
        case .hyperbolicCosine: call("Cosh")
        case .inverseHyperbolicSine: call("Arcsinh")
        case .inverseHyperbolicCosine: call("Arccosh")
        case .inverseHyperbolicTangent: call("Arctanh")
        }
    }

    /// The GetItem key of a Slice: a `__slice__` per axis up to the last one sliced (`:` for the
    /// others), open ends written as `null`, never an Ellipsis (Keras's .h5 loader cannot read one).
    static func sliceKey(_ a: SliceAttributes, rank: Int) throws -> JSON {
        var items: [JSON] = []
        var bounds: [Int: (start: Int, end: Int, step: Int)] = [:]
        for (index, axis) in a.axes.enumerated() {
            let resolved = axis < 0 ? axis + rank : axis
            guard (0..<rank).contains(resolved) else { throw Refusal(reason: "Slice axis \(axis) is outside rank \(rank)") }
            bounds[resolved] = (a.starts[index], a.ends[index], a.steps[index])
        }
        for axis in 0...(bounds.keys.max() ?? 0) {
            guard let bound = bounds[axis] else { items.append(fullSlice); continue }
            // ONNX's "to the end" spellings (INT64_MAX forwards, INT64_MIN backwards) are Python's None.
            let openEnd = bound.step > 0 ? bound.end >= Int(Int32.max) : bound.end <= -Int(Int32.max)
            let openStart = bound.step > 0 ? bound.start == 0 : bound.start == -1 || bound.start >= Int(Int32.max)
            items.append(sliceItem(start: openStart ? nil : bound.start, stop: openEnd ? nil : bound.end,
                                   step: bound.step == 1 ? nil : bound.step))
        }
        return .array(items)
    }

    /// `:`, the whole axis.
    static let fullSlice = sliceItem(start: nil, stop: nil, step: nil)

    private static func sliceItem(start: Int?, stop: Int?, step: Int?) -> JSON {
        func value(_ number: Int?) -> JSON { number.map { .number(Double($0)) } ?? .null }
        return .object(["class_name": "__slice__", "config": .object(["start": value(start), "stop": value(stop), "step": value(step)])])
    }
}
