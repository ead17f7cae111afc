import ScionIR

/// A Keras 3 operation node (a `keras.ops` call, or Python arithmetic and indexing on symbolic
/// tensors) read as IR ops. Keras saves the op's settings in `config` (`Transpose` `axes`, `Mean`
/// `axis`/`keepdims`, `Cast` `dtype`) and its constant operands in the call's `args` (`x * 2.0` is
/// `args: [tensor, 2.0]`, `x[:, 1:3]` is `args: [tensor, [slice, slice]]`):
///
/// ```
///  Matmul(a, b)                    -> MatMul            Transpose axes [0, 2, 1] -> Permute (2, 1); moving the batch -> Transpose
///  Add/Subtract/Multiply/TrueDivide/Maximum/Minimum/Power of two tensors -> elementwise
///  x + 1.0, 2.0 * x, 1.0 - x, x / 4 -> Rescaling          1.0 / x -> Reciprocal; 3.0 / x -> Reciprocal, Rescaling
///  Maximum(x, c), Minimum(x, c)    -> Clip              x ** 2 -> Multiply(x, x); x ** 0.5 -> Sqrt
///  Sqrt Abs Negative Reciprocal Log Erf Floor Ceil Sign Sin Cos  -> unary
///  Exp Tanh Sigmoid Relu Gelu Silu Softplus Softmax LogSoftmax  -> activations
///  Mean/Sum/Max/Min/Prod axis keepdims -> Reduce*       Cast dtype -> Cast
///  Reshape newshape [-1, ...] keeping the batch -> Reshape (Keras's), otherwise the ONNX form
///  ExpandDims -> Unsqueeze   Squeeze -> Squeeze         Concatenate axis -> Concatenate
///  GetItem x[:, -1, None, 1:5:2, ...] -> Slice, then Squeeze (integer indices), then Unsqueeze (None)
///  Equal NotEqual Less LessEqual Greater GreaterEqual LogicalAnd/Or/Xor/Not -> comparisons, Not
///  Where -> Where      Mod -> Mod (fmod 0)      Triu/Tril k -> Trilu      Einsum -> Einsum      TakeAlongAxis -> GatherElements
/// ```
///
/// Anything else is refused with one line naming the node and the op: an op Scion does not know
/// would leave every shape after it unknown.
struct KerasOperationReader {
    let className: String
    let config: JSON
    /// Positional arguments: `__keras_tensor__` objects and constants.
    let arguments: [JSON]

    struct Refusal: Error { let reason: String }

    /// The ops to add for the call, in order: the first reads the tensors `firstInputs` names (indices
    /// into the call's tensor operands), each later one the output of the one before.
    struct Plan {
        var firstInputs: [Int]
        var ops: [Op]
    }

    static func isTensor(_ value: JSON) -> Bool { value["class_name"]?.string == "__keras_tensor__" }

    /// A tensor argument's shape as Keras recorded it (`null` for unknown lengths).
    static func shape(of value: JSON) -> [Int?]? {
        guard let dimensions = value["config"]?["shape"]?.array else { return nil }
        return dimensions.map(\.int)
    }

    private var tensorShapes: [[Int?]?] { arguments.filter(Self.isTensor).map(Self.shape) }
    private var firstRank: Int? { tensorShapes.first??.count }

    func plan() throws -> Plan {
        let tensorCount = arguments.filter(Self.isTensor).count
        switch className {
        case "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power":
            return try binary()
        case "Matmul":
            guard tensorCount == 2, arguments.count == 2 else { throw Refusal(reason: "multiplies a constant; only two tensors are read") }
            return Plan(firstInputs: [0, 1], ops: [.onnx(.matMul)])
        case "Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual", "LogicalAnd", "LogicalOr", "LogicalXor", "Mod":
            guard tensorCount == 2, arguments.count == 2 else { throw Refusal(reason: "with a constant operand is not supported") }
            return Plan(firstInputs: [0, 1], ops: try logic())
        case "Where":
            guard tensorCount == 3, arguments.count == 3 else { throw Refusal(reason: "with a constant or omitted operand is not supported") }
            return Plan(firstInputs: [0, 1, 2], ops: [.onnx(.select)])
        case "Einsum":
            guard let subscripts = config["subscripts"]?.string, tensorCount == arguments.count,
                  EinsumAttributes(equation: subscripts).terms?.operands.count == tensorCount else {
                throw Refusal(reason: "'\(config["subscripts"]?.string ?? "")' is not supported (one or two tensors, explicit output, no ellipsis)")
            }
            return Plan(firstInputs: Array(0..<tensorCount), ops: [.onnx(.einsum(EinsumAttributes(equation: subscripts)))])
        case "TakeAlongAxis":
            guard tensorCount == 2, arguments.count == 2, let axis = config["axis"]?.int else {
                throw Refusal(reason: "needs two tensors and one integer axis")
            }
            return Plan(firstInputs: [0, 1], ops: [.onnx(.gatherElements(GatherAttributes(axis: axis)))])
        case "DotProductAttention":
            return try dotProductAttention()
        case "Concatenate":
            guard let list = arguments.first?.array, list.allSatisfy(Self.isTensor) else {
                throw Refusal(reason: "joins constants; only tensors are read")
            }
            return Plan(firstInputs: Array(0..<list.count), ops: [.concatenate(ConcatenateAttributes(axis: try integer("axis", default: 0)))])
        default:
            guard tensorCount == 1, arguments.count == 1 || className == "GetItem" || className == "Take" else {
                throw Refusal(reason: "with these arguments is not supported")
            }
            // Square multiplies its one tensor by itself.
            return Plan(firstInputs: className == "Square" ? [0, 0] : [0], ops: try unary())
        }
    }

    /// The keyword arguments an operation's call records that are its later positional ones, in order.
    static let keywordPositions = ["DotProductAttention": ["bias", "mask", "scale"]]

    /// Tensors an operation's call passes by keyword, in the order of its inputs.
    static func tensorKeywords(className: String?) -> [String] {
        className == "DotProductAttention" ? ["bias", "mask"] : []
    }

    /// The call's arguments with its keyword ones put in their positions; nil when a keyword is not one
    /// of those (the node is then kept unread).
    static func positionalArguments(className: String, _ arguments: [JSON], _ keywords: [String: JSON]) -> [JSON]? {
        guard let names = keywordPositions[className], Set(keywords.keys).isSubset(of: names), arguments.count <= 3 else { return nil }
        return arguments + names.map { keywords[$0] ?? .null }
    }

    /// keras.ops.dot_product_attention(query, key, value, bias, mask, scale) on `[B, S, heads, size]`:
    /// ONNX's Attention in that layout, the bias an additive mask, the mask a bool one.
    private func dotProductAttention() throws -> Plan {
        let isTensor = arguments.map(Self.isTensor)
        guard (3...6).contains(arguments.count), isTensor.prefix(3).allSatisfy({ $0 }) else {
            throw Refusal(reason: "needs query, key and value as its first three arguments")
        }
        let bias = isTensor.count > 3 && isTensor[3], mask = isTensor.count > 4 && isTensor[4]
        guard !(bias && mask) else { throw Refusal(reason: "with both a bias and a mask is not supported") }
        guard zip(arguments, isTensor).dropFirst(3).allSatisfy({ $1 || $0.isNull || $0.float != nil }) else {
            throw Refusal(reason: "with these arguments is not supported")
        }
        guard config["attn_logits_soft_cap"]?.isNull ?? true else {
            throw Refusal(reason: "with attn_logits_soft_cap (a TPU flash-attention setting) is not supported")
        }
        let scale = arguments.count > 5 ? arguments[5].float : nil
        let attributes = ScaledDotProductAttentionAttributes(mask: bias ? .additive : mask ? .boolean : nil,
                                                             isCausal: config["is_causal"]?.bool ?? false, scale: scale, sequenceFirst: true)
        return Plan(firstInputs: Array(0..<(bias || mask ? 4 : 3)), ops: [.onnx(.scaledDotProductAttention(attributes))])
    }

    // MARK: Arithmetic

    private func binary() throws -> Plan {
        guard arguments.count == 2 else { throw Refusal(reason: "takes two operands, got \(arguments.count)") }
        let isTensor = arguments.map(Self.isTensor)
        if isTensor == [true, true] {
            let operation: ElementwiseOperation = switch className {
            case "Add": .add
            case "Subtract": .subtract
            case "Multiply": .multiply
            case "Maximum": .maximum
            case "Minimum": .minimum
            case "Power": .power
            default: .divide
            }
            return Plan(firstInputs: [0, 1], ops: [.elementwise(operation)])
        }
        let tensorFirst = isTensor[0]
        guard isTensor.contains(true), let constant = arguments[tensorFirst ? 1 : 0].float else {
            // The operand may be a whole array: the message shows its start.
            let operand = arguments[tensorFirst ? 1 : 0].serialized
            throw Refusal(reason: "has a constant operand that is not a number (\(operand.count > 120 ? operand.prefix(120) + "…" : operand))")
        }
        func rescaling(_ scale: Float, _ offset: Float) -> Op { .rescaling(RescalingAttributes(scale: [scale], offset: [offset])) }
        switch className {
        case "Add": return Plan(firstInputs: [0], ops: [rescaling(1, constant)])
        case "Multiply": return Plan(firstInputs: [0], ops: [rescaling(constant, 0)])
        case "Subtract": return Plan(firstInputs: [0], ops: [tensorFirst ? rescaling(1, -constant) : rescaling(-1, constant)])
        case "Maximum": return Plan(firstInputs: [0], ops: [.onnx(.clip(ClipAttributes(minimum: constant, maximum: nil)))])
        case "Minimum": return Plan(firstInputs: [0], ops: [.onnx(.clip(ClipAttributes(minimum: nil, maximum: constant)))])
        case "Power" where tensorFirst:
            switch constant {
            case 1: return Plan(firstInputs: [0], ops: [.identity])
            case 2: return Plan(firstInputs: [0, 0], ops: [.elementwise(.multiply)])
            case 0.5: return Plan(firstInputs: [0], ops: [.onnx(.unary(.squareRoot))])
            case -1: return Plan(firstInputs: [0], ops: [.onnx(.unary(.reciprocal))])
            default: throw Refusal(reason: "to the constant power \(constant) is not supported (1, 2, 0.5 and -1 are)")
            }
        case "Divide", "TrueDivide":
            if tensorFirst {
                guard constant != 0 else { throw Refusal(reason: "divides by the constant 0") }
                return Plan(firstInputs: [0], ops: [rescaling(1 / constant, 0)])
            }
            let reciprocal = Op.onnx(.unary(.reciprocal))
            return Plan(firstInputs: [0], ops: constant == 1 ? [reciprocal] : [reciprocal, rescaling(constant, 0)])
        default:
            throw Refusal(reason: "with a constant \(tensorFirst ? "second" : "first") operand is not supported")
        }
    }

    /// Comparisons and logic of two tensors; NotEqual is Equal then Not, as ONNX spells it.
    private func logic() throws -> [Op] {
        switch className {
        case "Mod": return [.onnx(.mod(ModAttributes(fmod: false)))]
        case "NotEqual": return [.onnx(.comparison(.equal)), .onnx(.unary(.not))]
        default:
            guard let comparison = ComparisonOperation.allCases.first(where: { KerasOperationWriter.comparisonClass($0) == className }) else {
                throw Refusal(reason: "is not supported")
            }
            return [.onnx(.comparison(comparison))]
        }
    }

    // MARK: One tensor

    private func unary() throws -> [Op] {
        switch className {
        case "Sqrt": return [.onnx(.unary(.squareRoot))]
        case "Abs", "Absolute": return [.onnx(.unary(.absolute))]
        case "Negative": return [.onnx(.unary(.negate))]
        case "Reciprocal": return [.onnx(.unary(.reciprocal))]
        case "Log": return [.onnx(.unary(.logarithm))]
        case "Erf": return [.onnx(.unary(.errorFunction))]
        case "Floor": return [.onnx(.unary(.floor))]
        case "Ceil": return [.onnx(.unary(.ceil))]
        case "Sign": return [.onnx(.unary(.sign))]
        case "Sin": return [.onnx(.unary(.sine))]
        case "Cos": return [.onnx(.unary(.cosine))]
        case "Tan": return [.onnx(.unary(.tangent))]
        case "Arcsin": return [.onnx(.unary(.arcsine))]
        case "Arccos": return [.onnx(.unary(.arccosine))]
        case "Arctan": return [.onnx(.unary(.arctangent))]
        case "Sinh": return [.onnx(.unary(.hyperbolicSine))]
        case "Cosh": return [.onnx(.unary(.hyperbolicCosine))]
        case "Arcsinh": return [.onnx(.unary(.inverseHyperbolicSine))]
        case "Arccosh": return [.onnx(.unary(.inverseHyperbolicCosine))]
        case "Arctanh": return [.onnx(.unary(.inverseHyperbolicTangent))]
        case "LogicalNot": return [.onnx(.unary(.not))]
        case "Triu", "Tril": return [.onnx(.trilu(TriluAttributes(upper: className == "Triu", k: try integer("k", default: 0))))]
        case "Square": return [.elementwise(.multiply)]
        case "Exp": return [.activation(.exponential)]
        case "Tanh": return [.activation(.tanh)]
        case "Sigmoid": return [.activation(.sigmoid)]
        case "Relu": return [.activation(.relu(maxValue: nil, negativeSlope: 0, threshold: 0))]
        case "Relu6": return [.activation(.relu(maxValue: 6, negativeSlope: 0, threshold: 0))]
        case "Silu", "Swish": return [.activation(.swish)]
        case "Softplus": return [.activation(.softplus)]
        case "Softsign": return [.activation(.softsign)]
        case "Gelu": return [.activation(.gelu(approximate: config["approximate"]?.bool ?? true))]
        case "Softmax": return [.activation(.softmax(axis: try integer("axis", default: -1)))]
        case "LogSoftmax": return [.activation(.logSoftmax(axis: try integer("axis", default: -1)))]
        case "Mean", "Sum", "Max", "Min", "Prod", "Logsumexp": return [try reduction()]
        case "Cast":
            guard let name = config["dtype"]?.string, let dtype = DType(kerasName: name) else {
                throw Refusal(reason: "to \(config["dtype"]?.serialized ?? "no dtype") is not a known element type")
            }
            return [.onnx(.cast(CastAttributes(to: dtype)))]
        case "Transpose":
            let rank = try knownRank()
            let axes = try config["axes"].flatMap { $0.isNull ? nil : try axisList($0, rank: rank) } ?? Array((0..<rank).reversed())
            guard axes.sorted() == Array(0..<rank) else { throw Refusal(reason: "axes \(axes) are not a permutation of \(rank) axes") }
            // Keeping the batch axis it is Keras's Permute (its axes numbered from 1, as here), the
            // form every Keras writer and tf_keras know; moving it, only keras.ops.transpose.
            if axes.first == 0, rank >= 2 { return [.permute(PermuteAttributes(dimensions: Array(axes.dropFirst())))] }
            return [.transpose(TransposeAttributes(permutation: axes))]
        case "Reshape": return [try reshape()]
        case "ExpandDims":
            let rank = try knownRank()
            guard let value = config["axis"] else { throw Refusal(reason: "has no axis") }
            let count = value.array?.count ?? 1
            return [.onnx(.unsqueeze(AxesAttributes(axes: try axisList(value, rank: rank + count).sorted())))]
        case "Squeeze": return [try squeeze()]
        case "GetItem": return try KerasSliceKey(arguments: arguments, rank: try knownRank()).ops()
        case "Take": return try take()
        case "Argmax", "Argmin":
            // keras.ops.argmax with no axis searches the flattened tensor, which ONNX's ArgMax cannot.
            guard let axis = config["axis"]?.int else { throw Refusal(reason: "without an axis (over the flattened tensor) is not supported") }
            return [.onnx(.argExtreme(ArgExtremeAttributes(largest: className == "Argmax", axis: axis,
                                                           keepDimensions: config["keepdims"]?.bool ?? false)))]
        case "Cumsum":
            guard let axis = config["axis"]?.int else { throw Refusal(reason: "without an axis (over the flattened tensor) is not supported") }
            return [.onnx(.cumulativeSum(CumulativeSumAttributes(axis: axis)))]
        default:
            throw Refusal(reason: "is not supported")
        }
    }

    private func reduction() throws -> Op {
        let kind: ReduceKind = switch className {
        case "Mean": .mean
        case "Sum": .sum
        case "Max": .maximum
        case "Min": .minimum
        case "Logsumexp": .logSumExp
        default: .product
        }
        if let initial = config["initial"], !initial.isNull { throw Refusal(reason: "with an initial value is not supported") }
        let axes = try config["axis"].flatMap { $0.isNull ? nil : try axisList($0, rank: try knownRank()).sorted() }
        return .onnx(.reduce(ReduceAttributes(kind: kind, axes: axes, keepDimensions: config["keepdims"]?.bool ?? false)))
    }

    /// `newshape` names every axis, the batch included. When it keeps the batch (`-1` first, the
    /// rest holding exactly one sample's elements) it is Keras's Reshape layer, which every path
    /// (layout conversion, the Keras 2 writer) knows; otherwise the ONNX form.
    private func reshape() throws -> Op {
        guard let target = config["newshape"]?.intArray ?? config["newshape"]?.int.map({ [$0] }) else {
            throw Refusal(reason: "has no integer newshape (\(config["newshape"]?.serialized ?? "none"))")
        }
        if target.first == -1, target.dropFirst().allSatisfy({ $0 > 0 }),
           let shape = tensorShapes.first ?? nil, shape.count >= 1 {
            let sample = shape.dropFirst()
            if sample.allSatisfy({ $0 != nil }), sample.reduce(1, { $0 * ($1 ?? 1) }) == target.dropFirst().reduce(1, *) {
                return .reshape(ReshapeAttributes(targetShape: Array(target.dropFirst())))
            }
        }
        guard !target.contains(0) else { throw Refusal(reason: "to \(target) has an empty axis") }
        return .reshape(ReshapeAttributes(targetShape: target, includesBatch: true))
    }

    private func squeeze() throws -> Op {
        let shape = tensorShapes.first ?? nil
        guard let shape else { throw Refusal(reason: "of a tensor of unknown rank") }
        if let value = config["axis"], !value.isNull {
            let axes = try axisList(value, rank: shape.count).sorted()
            for axis in axes where shape[axis] != 1 && shape[axis] != nil {
                throw Refusal(reason: "of axis \(axis), whose length is \(shape[axis] ?? 0), not 1")
            }
            return .onnx(.squeeze(AxesAttributes(axes: axes)))
        }
        let axes = shape.indices.filter { shape[$0] == 1 }
        guard !axes.isEmpty else { throw Refusal(reason: "has no axis of length 1 to remove") }
        return .onnx(.squeeze(AxesAttributes(axes: axes)))
    }

    // MARK: Settings

    func knownRank() throws -> Int {
        guard let rank = firstRank else { throw Refusal(reason: "reads a tensor of unknown rank") }
        return rank
    }

    private func integer(_ key: String, default value: Int) throws -> Int {
        guard let setting = config[key], !setting.isNull else { return value }
        guard let number = setting.int else { throw Refusal(reason: "has \(key) \(setting.serialized), not one integer") }
        return number
    }

    /// One axis or a list of them, made non-negative for a tensor of `rank` axes.
    private func axisList(_ value: JSON, rank: Int) throws -> [Int] {
        guard let axes = value.intArray ?? value.int.map({ [$0] }) else {
            throw Refusal(reason: "has axes \(value.serialized), not integers")
        }
        return try axes.map { axis in
            let resolved = axis < 0 ? axis + rank : axis
            guard (0..<rank).contains(resolved) else { throw Refusal(reason: "axis \(axis) is outside a rank-\(rank) tensor") }
            return resolved
        }
    }
}
