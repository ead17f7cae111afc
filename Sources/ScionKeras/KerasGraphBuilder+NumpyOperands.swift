import ScionIR

/// A numpy array in an arithmetic keras.ops call (`keras.ops.add(x, np.array(...))`, what Scion writes
/// for an elementwise op with a constant tensor operand: KerasModelPlan+NumpyConstants) is read as a
/// constant node the op reads like a tensor. Keras holds no variable for it, so the constant is
/// frozen: inspect lists it as a non-trainable `Constant` `<node>/array`, not counted among the
/// weights (Keras does not count it either).
extension KerasGraphBuilder {
    /// Classes whose array operand is read (the arithmetic `KerasOperationReader.binary` reads).
    static let numpyOperandClasses = Set(["Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power"])
        .union(comparisonClasses)
    /// Comparisons: their constant may also be integers or a plain number (`keras.ops.not_equal(tokens, 0)`,
    /// a padding mask), read as a constant too (an arithmetic number is a Rescaling instead).
    static let comparisonClasses: Set<String> = ["Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual"]

    /// How Keras 3 saves a constant array operand: a numpy array, or a backend tensor (a value
    /// computed when the model was built, `Embedding(...)(keras.ops.arange(n))`), both as
    /// `{"value": nested lists, "dtype": ...}`.
    static let arrayClassNames: Set<String> = ["__numpy__", "__tensor__"]

    /// A call's constant array operand, read: where it is among the arguments, what stands there in
    /// its place (a tensor of its shape and type), and its values.
    struct NumpyLiteral {
        let position: Int
        let dtype: DType
        let shape: [Int]
        let numbers: [Double]
        var placeholder: JSON {
            .object(["class_name": "__keras_tensor__",
                     "config": .object(["shape": .array(shape.map { .number(Double($0)) }), "dtype": .string(dtype.rawValue)])])
        }
    }

    /// The call's numpy array (or a comparison's number) beside its one tensor; nil when it has none.
    func numpyOperand(_ arguments: [JSON], className: String) throws -> NumpyLiteral? {
        let comparison = Self.comparisonClasses.contains(className)
        guard Self.numpyOperandClasses.contains(className), arguments.count == 2,
              let position = arguments.firstIndex(where: { Self.arrayClassNames.contains($0["class_name"]?.string ?? "")
                  || (comparison && $0.double != nil) }),
              KerasOperationReader.isTensor(arguments[1 - position]) else { return nil }
        let config = arguments[position]["config"]
        let allowed: Set<DType> = comparison ? [.float32, .float64, .int32, .int64] : [.float32, .float64]
        // A plain number takes the other operand's type (ONNX compares tensors of one type).
        let tensorType = arguments[1 - position]["config"]?["dtype"]?.string.flatMap(DType.init(kerasName:))
        let dtype = arguments[position].double != nil ? tensorType.flatMap { allowed.contains($0) ? $0 : nil } ?? .float32
            : config?["dtype"]?.string.flatMap(DType.init(kerasName:))
        guard let dtype, allowed.contains(dtype), let value = arguments[position].double.map(JSON.number) ?? config?["value"],
              let (shape, numbers) = Self.flattened(value),
              dtype.isFloatingPoint || numbers.allSatisfy({ $0 == $0.rounded() && abs($0) < 9.0e15 }) else {
            throw KerasOperationReader.Refusal(reason: "has a numpy operand that is not a rectangular "
                                               + (comparison ? "number array" : "float32 or float64 array"))
        }
        return NumpyLiteral(position: position, dtype: dtype, shape: shape, numbers: numbers)
    }

    /// The literal as a constant node `<reader>/array`; returns the call's inputs with its output at
    /// the literal's place.
    mutating func addLiteral(_ literal: NumpyLiteral, readBy reader: String, inputs: [String], scope: String) -> [String] {
        var constantName = "\(reader)/array"
        while usedNames.contains(constantName) || graph.parameters[constantName] != nil { constantName += "'" }
        usedNames.insert(constantName)
        var bytes: [UInt8] = []
        switch literal.dtype {
        case .float32: literal.numbers.map { Float($0) }.withUnsafeBytes { bytes.append(contentsOf: $0) }
        case .int64: literal.numbers.map { Int64($0) }.withUnsafeBytes { bytes.append(contentsOf: $0) }
        case .int32: literal.numbers.map { Int32($0) }.withUnsafeBytes { bytes.append(contentsOf: $0) }
        default: literal.numbers.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        graph.parameters[constantName] = Parameter(name: constantName, role: .value, shape: literal.shape, dtype: literal.dtype,
                                                   trainable: false, storage: TensorStorage(bytes: bytes))
        graph.nodes.append(Node(name: constantName, op: .onnx(.constant(ConstantAttributes(dtype: literal.dtype))), inputs: [],
                                outputs: [constantName], parameters: [constantName], scope: scope, trainable: false))
        // A literal of the call, as Keras counts it: inspect lists it among the constants, not the weights.
        graph.info.nodeTypes[constantName] = "Constant"
        var reading = inputs
        reading.insert(constantName, at: literal.position == 0 ? 0 : min(reading.count, 1))
        return reading
    }

    /// A nested JSON list's shape and numbers, row-major; nil when it is ragged or holds a non-number.
    static func flattened(_ value: JSON) -> (shape: [Int], numbers: [Double])? {
        if let number = value.double { return ([], [number]) }
        guard let items = value.array, !items.isEmpty else { return value.array != nil ? ([0], []) : nil }
        var innerShape: [Int]? = nil
        var numbers: [Double] = []
        for item in items {
            guard let (shape, values) = flattened(item), innerShape == nil || innerShape == shape else { return nil }
            innerShape = shape
            numbers += values
        }
        return ([items.count] + (innerShape ?? []), numbers)
    }
}
