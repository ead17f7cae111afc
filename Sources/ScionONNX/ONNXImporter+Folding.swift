import ScionIR

/// Numbers of a small constant: integers stay exact (shape arithmetic uses INT64_MAX as "to the end"),
/// floating point goes through Double.
enum ConstantNumbers {
    case integers([Int64])
    case reals([Double])

    var count: Int {
        switch self {
        case .integers(let values): values.count
        case .reals(let values): values.count
        }
    }

    var reals: [Double] {
        switch self {
        case .integers(let values): values.map { Double($0) }
        case .reals(let values): values
        }
    }

    var integers: [Int64] {
        switch self {
        case .integers(let values): values
        case .reals(let values): values.map { $0.isFinite ? Int64(exactly: $0.rounded(.towardZero)) ?? ($0 < 0 ? .min : .max) : 0 }
        }
    }

    func picking(_ indices: [Int]) -> ConstantNumbers {
        switch self {
        case .integers(let values): .integers(indices.map { values[$0] })
        case .reals(let values): .reals(indices.map { values[$0] })
        }
    }
}

/// Constant folding of the shape arithmetic exporters emit (Shape, Gather, Unsqueeze, Concat,
/// Reshape of constants, Cast, ConstantOfShape...), so ops that need a static operand get one. Only
/// small tensors are computed on; reshaping and ConstantOfShape never look at values one by one.
extension ONNXImportSession {
    /// Tensors this small (elements) are decoded for folding.
    static let foldingLimit = 1 << 16
    /// The most entries a folded tensor of lengths (symbolic or not) may hold: shape values are short.
    static let symbolicLimit = 1024
    /// ConstantOfShape may make weights (onnx's light models): up to this many bytes.
    static let generatedLimit = 1 << 28

    /// True when the node was folded: its outputs are constants now.
    mutating func fold(_ node: ONNXNode, subject: String) throws -> Bool {
        let inputs = node.inputs
        let allConstant = !inputs.isEmpty && inputs.allSatisfy { $0.isEmpty || constants[$0] != nil }
        guard let output = node.outputs.first, !output.isEmpty else { return false }
        switch node.opType {
        case "Constant":
            guard let attribute = node.attributes.first else { return false }
            let result: ImportedConstant
            switch attribute.value {
            case .tensor(let tensor): result = try constant(from: tensor, fromInitializer: false)
            case .float(let value): result = make(.reals([Double(value)]), dtype: .float32, shape: [])
            case .floats(let values): result = make(.reals(values.map { Double($0) }), dtype: .float32, shape: [values.count])
            case .int(let value): result = make(.integers([value]), dtype: .int64, shape: [])
            case .ints(let values): result = make(.integers(values), dtype: .int64, shape: [values.count])
            default: return false
            }
            constants[output] = result
        case "Shape":
            // A Shape with no input is malformed; the mapping refuses it by name.
            guard let first = inputs.first,
                  let shape = known[first]?.shape ?? constants[first].map({ Shape($0.shape.map { $0 }) }) else { return false }
            guard shape.dimensions.allSatisfy({ $0 != nil }) else {
                if shape.dimensions.count(where: { $0 == nil }) == 1, node.attribute("start") == nil, node.attribute("end") == nil {
                    reportedShapes[output] = shape
                }
                return false
            }
            var dimensions = shape.dimensions.compactMap { $0 }.map { Int64($0) }
            let rank = dimensions.count
            func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + rank : value, 0), rank) }
            let start = clamp(intAttribute(node, "start", 0))
            let end = clamp(intAttribute(node, "end", rank))
            dimensions = start < end ? Array(dimensions[start..<end]) : []
            constants[output] = make(.integers(dimensions), dtype: .int64, shape: [dimensions.count])
        case "Identity" where allConstant:
            constants[output] = constants[inputs[0]]
        case "ConstantOfShape" where allConstant:
            guard let shape = try numbers(inputs[0])?.integers, shape.allSatisfy({ $0 >= 0 }) else { return false }
            var value: ImportedConstant = make(.reals([0]), dtype: .float32, shape: [])
            if case .tensor(let tensor)? = node.attribute("value") { value = try constant(from: tensor, fromInitializer: false) }
            let dimensions = shape.map { Int($0) }
            guard let count = dimensions.checkedProduct, let size = value.dtype.byteSize,
                  count * size <= Self.generatedLimit, value.elementCount == 1 else { return false }
            let element = try value.storage.bytes(keep: true)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count * size)
            if element.allSatisfy({ $0 == 0 }) {
                bytes = [UInt8](repeating: 0, count: count * size)
            } else {
                for _ in 0..<count { bytes.append(contentsOf: element) }
            }
            constants[output] = ImportedConstant(dtype: value.dtype, shape: dimensions, storage: TensorStorage(bytes: bytes),
                                                 fromInitializer: false)
        case "Reshape" where allConstant, "Unsqueeze" where allConstant, "Squeeze" where allConstant,
             "Flatten" where allConstant:
            guard let data = constants[inputs[0]], let shape = try reshapedShape(node, data: data) else { return false }
            guard shape.checkedProduct == data.elementCount else { return false }
            constants[output] = ImportedConstant(dtype: data.dtype, shape: shape, storage: data.storage, fromInitializer: data.fromInitializer)
        case "Cast" where allConstant:
            guard let target = castTarget(node), let data = try numbers(inputs[0]), let input = constants[inputs[0]] else { return false }
            let converted: ConstantNumbers = target.isFloatingPoint ? .reals(data.reals) : .integers(data.integers)
            constants[output] = make(target == .bool ? .integers(converted.integers.map { $0 != 0 ? 1 : 0 }) : converted,
                                     dtype: target, shape: input.shape)
        case "Gather" where allConstant:
            return try foldGather(node, output: output)
        case "Concat" where allConstant:
            return try foldConcat(node, output: output)
        case "Add" where allConstant, "Sub" where allConstant, "Mul" where allConstant, "Div" where allConstant,
             "Mod" where allConstant && intAttribute(node, "fmod", 0) == 0:
            return try foldArithmetic(node, output: output)
        case "Slice" where allConstant:
            return try foldSlice(node, output: output)
        case "Transpose" where allConstant:
            return try foldTranspose(node, output: output)
        case "Equal" where allConstant, "Less" where allConstant, "Greater" where allConstant, "LessOrEqual" where allConstant,
             "GreaterOrEqual" where allConstant, "And" where allConstant, "Or" where allConstant, "Xor" where allConstant,
             "Mod" where allConstant:
            return try foldBinaryLogic(node, output: output)
        case "Where" where allConstant:
            return try foldWhere(node, output: output)
        case "Not" where allConstant:
            return try foldNot(node, output: output)
        case "Expand" where allConstant:
            return try foldExpand(node, output: output)
        case "Trilu" where allConstant:
            return try foldTrilu(node, output: output)
        case "Sqrt" where allConstant, "Reciprocal" where allConstant, "Neg" where allConstant, "Abs" where allConstant,
             "Exp" where allConstant, "Log" where allConstant, "Floor" where allConstant, "Ceil" where allConstant,
             "Sign" where allConstant:
            return try foldUnary(node, output: output)
        case "Range" where allConstant:
            guard inputs.count == 3, let start = try numbers(inputs[0]), let limit = try numbers(inputs[1]),
                  let delta = try numbers(inputs[2]), let type = constants[inputs[0]]?.dtype,
                  let first = start.reals.first, let end = limit.reals.first, let step = delta.reals.first, step != 0 else { return false }
            let count = max(Int(((end - first) / step).rounded(.up)), 0)
            guard count <= Self.foldingLimit else { return false }
            let values = (0..<count).map { first + Double($0) * step }
            constants[output] = make(type.isFloatingPoint ? .reals(values) : .integers(values.map { Int64($0) }), dtype: type, shape: [count])
        default:
            return false
        }
        return true
    }

    func intAttribute(_ node: ONNXNode, _ name: String, _ fallback: Int) -> Int {
        if case .int(let value)? = node.attribute(name) { return Int(truncatingIfNeeded: value) }
        return fallback
    }

    func castTarget(_ node: ONNXNode) -> DType? {
        switch node.attribute("to") {
        case .int(let value)?: ONNXDataType(rawValue: Int32(truncatingIfNeeded: value))?.dtype
        case .string(let bytes)?: DType(kerasName: String(decoding: bytes, as: UTF8.self).lowercased())
        default: nil
        }
    }

    /// The numbers of a small constant, nil when it is too large or of a type folding skips.
    func numbers(_ name: String) throws -> ConstantNumbers? {
        guard let constant = constants[name], constant.elementCount <= Self.foldingLimit else { return nil }
        let bytes = try constant.storage.bytes(keep: true)
        guard let size = constant.dtype.byteSize, bytes.count == constant.elementCount * size else { return nil }
        return bytes.withUnsafeBytes { raw -> ConstantNumbers? in
            func load<T>(_ type: T.Type) -> [T] { (0..<constant.elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self) } }
            switch constant.dtype {
            case .float32: return .reals(load(Float.self).map { Double($0) })
            case .float64: return .reals(load(Double.self))
            case .int64: return .integers(load(Int64.self))
            case .int32: return .integers(load(Int32.self).map { Int64($0) })
            case .int16: return .integers(load(Int16.self).map { Int64($0) })
            case .int8: return .integers(load(Int8.self).map { Int64($0) })
            case .uint8, .bool: return .integers(load(UInt8.self).map { Int64($0) })
            case .uint16: return .integers(load(UInt16.self).map { Int64($0) })
            case .uint32: return .integers(load(UInt32.self).map { Int64($0) })
            default: return nil
            }
        }
    }

    /// A constant from numbers, in memory.
    func make(_ numbers: ConstantNumbers, dtype: DType, shape: [Int]) -> ImportedConstant {
        var bytes: [UInt8] = []
        func append<T>(_ values: [T]) { values.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        switch dtype {
        case .float32: append(numbers.reals.map { Float($0) })
        case .float64: append(numbers.reals)
        case .int64: append(numbers.integers)
        case .int32: append(numbers.integers.map { Int32(truncatingIfNeeded: $0) })
        case .int16: append(numbers.integers.map { Int16(truncatingIfNeeded: $0) })
        case .int8: append(numbers.integers.map { Int8(truncatingIfNeeded: $0) })
        case .uint16: append(numbers.integers.map { UInt16(truncatingIfNeeded: $0) })
        case .uint32: append(numbers.integers.map { UInt32(truncatingIfNeeded: $0) })
        case .uint64: append(numbers.integers.map { UInt64(truncatingIfNeeded: $0) })
        case .uint8, .bool: append(numbers.integers.map { UInt8(truncatingIfNeeded: $0) })
        // Two bytes each: a Cast to float16 folded as four-byte floats would not match its dims.
        case .float16: append(numbers.reals.map { Float16($0).bitPattern })
        case .bfloat16: append(numbers.reals.map { Self.bfloat16Bits(Float($0)) })
        case .string: append(numbers.reals.map { Float($0) })
        }
        return ImportedConstant(dtype: dtype, shape: shape, storage: TensorStorage(bytes: bytes), fromInitializer: false)
    }

    /// bfloat16 is float32's upper half, rounded to nearest even (NaN kept a NaN).
    static func bfloat16Bits(_ value: Float) -> UInt16 {
        if value.isNaN { return 0x7FC0 }
        let bits = value.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The shape a Reshape, Unsqueeze, Squeeze or Flatten of a constant gives.
    func reshapedShape(_ node: ONNXNode, data: ImportedConstant) throws -> [Int]? {
        let rank = data.shape.count
        switch node.opType {
        case "Reshape":
            guard let target = try node.inputs.count > 1 ? numbers(node.inputs[1])?.integers : nil else { return nil }
            var shape = target.enumerated().map { index, value in value == 0 && index < rank ? data.shape[index] : Int(value) }
            if let unknown = shape.firstIndex(of: -1) {
                let known = shape.filter { $0 != -1 }.checkedProduct ?? 0
                guard known > 0 else { return nil }
                shape[unknown] = data.elementCount / known
            }
            return shape
        case "Flatten":
            let axis = intAttribute(node, "axis", 1)
            let resolved = axis < 0 ? axis + rank : axis
            guard (0...rank).contains(resolved) else { return nil }
            return [Array(data.shape[..<resolved]).checkedProduct ?? 0, Array(data.shape[resolved...]).checkedProduct ?? 0]
        default:
            guard let axes = try axesOperand(node) else { return node.opType == "Squeeze" ? data.shape.filter { $0 != 1 } : nil }
            if node.opType == "Squeeze" {
                let resolved = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
                return data.shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element)
            }
            let outputRank = rank + axes.count
            let resolved = Set(axes.map { $0 < 0 ? $0 + outputRank : $0 })
            var remaining = data.shape.makeIterator()
            return (0..<outputRank).map { resolved.contains($0) ? 1 : (remaining.next() ?? 1) }
        }
    }

    /// Axes of Squeeze/Unsqueeze/Reduce: the attribute in older opsets, the second input later.
    func axesOperand(_ node: ONNXNode) throws -> [Int]? {
        if case .ints(let values)? = node.attribute("axes") { return values.map { Int(truncatingIfNeeded: $0) } }
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            return try numbers(node.inputs[1])?.integers.map { Int(truncatingIfNeeded: $0) }
        }
        return nil
    }
}
