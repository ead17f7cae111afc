import ScionIR

/// A small integer tensor whose entries are lengths known as expressions (`[batch, 12, 96]`): the
/// shape vectors exporters compute with Shape, Gather, Concat and arithmetic. Booleans are 0 and 1.
struct SymbolicTensor {
    var dtype: DType
    var shape: [Int]
    var elements: [SymbolicLength]

    /// The numbers, when no entry depends on a symbol: the tensor is an ordinary constant then.
    var constantNumbers: ConstantNumbers? {
        let values = elements.compactMap(\.constant)
        guard values.count == elements.count else { return nil }
        return dtype.isFloatingPoint ? .reals(values.map { Double($0) }) : .integers(values)
    }
}

/// What the reader knows of the lengths a file leaves open.
struct SymbolicShapeState {
    /// Shape vectors with symbolic entries, by value name. Their ONNX node is not imported unless some
    /// node needs the value at run time (`deferred`).
    var values: [String: SymbolicTensor] = [:]
    /// The ONNX node (and its position, for its name) of each value not imported yet.
    var deferred: [String: (node: ONNXNode, index: Int)] = [:]
    /// Values that are imported as the file has them (their symbolic form could not serve a reader).
    var forced: Set<String> = []
    /// Each tensor's lengths as expressions, where known (a rank).
    var dimensions: [String: [SymbolicLength]] = [:]
    /// Where a symbol can be read at run time: the tensor and axis whose length it is.
    var sources: [String: (value: String, axis: Int)] = [:]
    /// Deferred values that are all zeros (of a symbolic size): a recurrent node's zero initial state.
    var zeroFills: Set<String> = []
    /// Deferred index tensors over the batch (`Range(0, batch)` arithmetic): ONNXImporter+BatchIndices.
    var batchIndices: [String: BatchIndexTensor] = [:]
}

/// Folding of shape arithmetic whose lengths are symbolic (ONNXImporter+SymbolicDimensions for the
/// lengths of tensors and for what happens when a symbolic value is needed at run time).
extension ONNXImportSession {
    /// True when the node was folded (into a constant, or a symbolic value whose node waits) or imported
    /// with static operands. Otherwise the deferred values it reads are imported first, as the file has them.
    mutating func foldSymbolically(_ node: ONNXNode, index: Int) throws -> Bool {
        let isDefaultDomain = node.domain.isEmpty || node.domain == "ai.onnx"
        if isDefaultDomain, node.outputs.count == 1, let output = node.outputs.first, !output.isEmpty, !symbolic.forced.contains(output) {
            if let result = try symbolicResult(node) {
                if let numbers = result.constantNumbers {
                    constants[output] = make(numbers, dtype: result.dtype, shape: result.shape)
                } else {
                    symbolic.values[output] = result
                    symbolic.deferred[output] = (node, index)
                }
                return true
            }
            // Zeros of a computed size (torch's initial recurrent states): imported only when read, since
            // a recurrent node starting from zeros does not read them.
            if try isZeroFill(node) {
                symbolic.deferred[output] = (node, index)
                symbolic.zeroFills.insert(output)
                return true
            }
            if let rewritten = try withStaticOperands(node) {
                try importNode(rewritten, index: index)
                return true
            }
            // Imported as the file has it, but with the output's lengths known from the symbolic shape.
            if let lengths = symbolicOutputLengths(node) {
                symbolic.forced.insert(output)
                try materializeDeferred(node.inputs)
                try importNode(node, index: index)
                if let info = known[output], info.shape == nil || info.shape?.rank == lengths.count {
                    known[output]?.shape = Shape(lengths.map { $0.constant.map { Int($0) } })
                    graph.values[output]?.shape = known[output]?.shape
                    symbolic.dimensions[output] = lengths
                }
                return true
            }
        }
        let recurrent = ["LSTM", "GRU", "RNN"].contains(node.opType)
        // A recurrent node's initial states (inputs 5 and 6) are read through `value` only when kept.
        try materializeDeferred(node.inputs.enumerated().filter { !recurrent || $0.offset < 5 }.map(\.element))
        return false
    }

    /// Whether the node makes zeros whose size depends on a symbolic length: ConstantOfShape (zero fill)
    /// or Expand of zeros to a symbolic shape, or a piece of such zeros (the state of each layer).
    func isZeroFill(_ node: ONNXNode) throws -> Bool {
        guard let first = input(node, 0) else { return false }
        switch node.opType {
        case "ConstantOfShape":
            guard symbolic.values[first] != nil else { return false }
            guard case .tensor(let fill)? = node.attribute("value") else { return true }
            return try constant(from: fill, fromInitializer: false).storage.bytes(keep: true).allSatisfy { $0 == 0 }
        case "Expand":
            guard let shape = input(node, 1), symbolic.values[shape] != nil, let values = try numbers(first) else { return false }
            return values.reals.allSatisfy { $0 == 0 }
        case "Slice", "Gather", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Identity", "Cast":
            return symbolic.zeroFills.contains(first) && node.inputs.dropFirst().allSatisfy { $0.isEmpty || constants[$0] != nil }
        default:
            return false
        }
    }

    /// A small tensor's entries as lengths: a symbolic value, or a constant of integers (or of integral reals).
    func symbolicOperand(_ name: String) throws -> SymbolicTensor? {
        if let value = symbolic.values[name] { return value }
        guard let constant = constants[name], constant.elementCount <= 1024, let values = try numbers(name) else { return nil }
        switch values {
        case .integers(let integers):
            return SymbolicTensor(dtype: constant.dtype, shape: constant.shape, elements: integers.map { SymbolicLength($0) })
        case .reals(let reals):
            guard reals.allSatisfy({ $0.rounded() == $0 && abs($0) < 1e15 }) else { return nil }
            return SymbolicTensor(dtype: constant.dtype, shape: constant.shape, elements: reals.map { SymbolicLength(Int64($0)) })
        }
    }

    /// The node's result when it computes on shape vectors of which one at least is symbolic.
    mutating func symbolicResult(_ node: ONNXNode) throws -> SymbolicTensor? {
        let names = node.inputs.filter { !$0.isEmpty }
        if node.opType == "Shape" {
            guard let x = names.first, let dimensions = symbolicDimensions(of: x)
            else { return nil }
            let rank = dimensions.count
            func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + rank : value, 0), rank) }
            let start = clamp(intAttribute(node, "start", 0)), end = clamp(intAttribute(node, "end", rank))
            let picked = start < end ? Array(dimensions[start..<end]) : []
            return SymbolicTensor(dtype: .int64, shape: [picked.count], elements: picked)
        }
        // Ops the constant folder leaves to run time are folded here on constants too (small integers).
        // Transpose and Slice of float initializers stay ops: folding would freeze a weight a user may train.
        let foldsConstants = ["Mod", "Max", "Min", "Equal", "Where", "ReduceProd", "ReduceSum", "Expand", "ScatterND", "Not"].contains(node.opType)
            || ["Transpose", "Slice"].contains(node.opType) && names.first.flatMap { constants[$0] }.map { !$0.dtype.isFloatingPoint || !$0.fromInitializer } == true
        guard foldsConstants || names.contains(where: { symbolic.values[$0] != nil }) else { return nil }
        var operands: [SymbolicTensor] = []
        for name in names {
            guard let operand = try symbolicOperand(name) else { return nil }
            operands.append(operand)
        }
        // A node with no operand at all (a hostile file's Mod or Not) has nothing to fold.
        guard let first = operands.first else { return nil }
        switch node.opType {
        case "Identity":
            return first
        case "Cast":
            guard let target = castTarget(node), [DType.float32, .float64, .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .bool].contains(target) else { return nil }
            if target == .bool {
                let truths = first.elements.map { $0.isEqual(to: SymbolicLength(0)).map { SymbolicLength($0 ? 0 : 1) } }
                guard truths.allSatisfy({ $0 != nil }) else { return nil }
                return SymbolicTensor(dtype: .bool, shape: first.shape, elements: truths.compactMap { $0 })
            }
            return SymbolicTensor(dtype: target, shape: first.shape, elements: first.elements)
        case "Unsqueeze", "Squeeze", "Reshape", "Flatten":
            // Only the shape changes; reshapedShape needs the element count alone.
            let placeholder = ImportedConstant(dtype: first.dtype, shape: first.shape, storage: TensorStorage(bytes: []), fromInitializer: false)
            guard node.inputs.count < 2 || symbolic.values[node.inputs[1]] == nil,
                  let shape = try reshapedShape(node, data: placeholder), shape.allSatisfy({ $0 >= 0 }),
                  shape.checkedProduct == first.elements.count else { return nil }
            return SymbolicTensor(dtype: first.dtype, shape: shape, elements: first.elements)
        case "Gather":
            return symbolicGather(node, data: first, indices: operands.count == 2 ? operands[1] : nil)
        case "Concat":
            return symbolicConcat(node, operands)
        case "Slice":
            guard operands.dropFirst().allSatisfy({ $0.constantNumbers != nil }), let bounds = try sliceBounds(node) else { return nil }
            guard let kept = Self.keptIndices(shape: first.shape, bounds) else { return nil }
            return Self.picking(first, kept: kept, order: Array(0..<first.shape.count))
        case "Transpose":
            let rank = first.shape.count
            let permutation = intsAttribute(node, "perm") ?? Array((0..<rank).reversed())
            guard permutation.sorted() == Array(0..<rank) else { return nil }
            return Self.picking(first, kept: first.shape.map { Array(0..<$0) }, order: permutation)
        case "ReduceProd", "ReduceSum":
            guard first.shape.count <= 1, operands.count == 1 || operands[1].constantNumbers != nil,
                  try axesOperand(node).map({ $0.allSatisfy { $0 == 0 || $0 == -1 } }) ?? true else { return nil }
            let total = first.elements.reduce(SymbolicLength(node.opType == "ReduceProd" ? 1 : 0)) {
                node.opType == "ReduceProd" ? $0 * $1 : $0 + $1
            }
            let keep = intAttribute(node, "keepdims", 1) == 1 && !first.shape.isEmpty
            return SymbolicTensor(dtype: first.dtype, shape: keep ? [1] : [], elements: [total])
        case "Not":
            let truths = first.elements.map { $0.isEqual(to: SymbolicLength(0)).map { SymbolicLength($0 ? 1 : 0) } }
            guard truths.allSatisfy({ $0 != nil }) else { return nil }
            return SymbolicTensor(dtype: .bool, shape: first.shape, elements: truths.compactMap { $0 })
        case "Expand":
            guard operands.count == 2, operands[1].shape.count == 1, case .integers(let lengths)? = operands[1].constantNumbers,
                  let target = Broadcasting.sources([first.shape, lengths.map { Int($0) }], limit: Self.symbolicLimit) else { return nil }
            return SymbolicTensor(dtype: first.dtype, shape: target.shape, elements: target.sources[0].map { first.elements[$0] })
        case "ScatterND":
            return symbolicScatter(node, operands)
        case "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Equal", "Where":
            return symbolicElementwise(node, operands)
        default:
            return nil
        }
    }

    /// The entries at the kept indices of each axis, with the axes in `order` (a slice, a transpose).
    static func picking(_ tensor: SymbolicTensor, kept: [[Int]], order: [Int]) -> SymbolicTensor {
        let positions = ElementSelection.positions(kept: kept, shape: tensor.shape, order: order)
        return SymbolicTensor(dtype: tensor.dtype, shape: order.map { kept[$0].count }, elements: positions.map { tensor.elements[$0] })
    }

    /// ScatterND without reduction: `updates` written over `data` at the index tuples of `indices`.
    func symbolicScatter(_ node: ONNXNode, _ operands: [SymbolicTensor]) -> SymbolicTensor? {
        guard operands.count == 3, stringAttribute(node, "reduction", "none") == "none", case .integers(let indices)? = operands[1].constantNumbers,
              let depth = operands[1].shape.last, depth >= 1, depth <= operands[0].shape.count else { return nil }
        var result = operands[0]
        let strides = Self.strides(result.shape)
        let sliceSize = Array(result.shape[depth...]).checkedProduct ?? 0
        let tuples = indices.count / depth
        guard operands[2].elements.count == tuples * sliceSize else { return nil }
        for tuple in 0..<tuples {
            var offset = 0
            for axis in 0..<depth {
                let length = Int64(result.shape[axis])
                let index = indices[tuple * depth + axis] < 0 ? indices[tuple * depth + axis] + length : indices[tuple * depth + axis]
                guard (0..<length).contains(index) else { return nil }
                offset += Int(index) * strides[axis]
            }
            for element in 0..<sliceSize { result.elements[offset + element] = operands[2].elements[tuple * sliceSize + element] }
        }
        return result
    }

    func symbolicGather(_ node: ONNXNode, data: SymbolicTensor, indices: SymbolicTensor?) -> SymbolicTensor? {
        guard let indices, case .integers(let positions)? = indices.constantNumbers, !data.shape.isEmpty else { return nil }
        let rank = data.shape.count
        let attribute = intAttribute(node, "axis", 0)
        let axis = attribute < 0 ? attribute + rank : attribute
        guard let picks = Self.gatherPicks(shape: data.shape, axis: axis, indices: positions) else { return nil }
        let elements = picks.map { data.elements[$0] }
        return SymbolicTensor(dtype: data.dtype, shape: Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...]),
                              elements: elements)
    }

    func symbolicConcat(_ node: ONNXNode, _ parts: [SymbolicTensor]) -> SymbolicTensor? {
        guard let first = parts.first, !first.shape.isEmpty else { return nil }
        let rank = first.shape.count
        let attribute = intAttribute(node, "axis", 0)
        let axis = attribute < 0 ? attribute + rank : attribute
        func others(_ shape: [Int]) -> [Int] { shape.enumerated().filter { $0.offset != axis }.map(\.element) }
        guard (0..<rank).contains(axis), parts.allSatisfy({ $0.shape.count == rank && others($0.shape) == others(first.shape) }) else { return nil }
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let outer = Array(first.shape[..<axis]).checkedProduct ?? 0
        var elements: [SymbolicLength] = []
        for block in 0..<outer {
            for part in parts {
                let width = Array(part.shape[axis...]).checkedProduct ?? 0
                elements += part.elements[(block * width)..<((block + 1) * width)]
            }
        }
        return SymbolicTensor(dtype: first.dtype, shape: shape, elements: elements)
    }

    /// Broadcasting arithmetic, comparison and selection on lengths; nil as soon as one entry's result
    /// depends on the symbols' values in a way a polynomial cannot say (`batch / 3`, `batch == 4`).
    func symbolicElementwise(_ node: ONNXNode, _ operands: [SymbolicTensor]) -> SymbolicTensor? {
        guard operands.count == (node.opType == "Where" ? 3 : 2), node.attribute("broadcast") == nil,
              intAttribute(node, "fmod", 0) == 0,
              let (shape, sources) = Broadcasting.sources(operands.map(\.shape), limit: Self.symbolicLimit) else { return nil }
        let floating = operands[node.opType == "Where" ? 1 : 0].dtype.isFloatingPoint
        var elements: [SymbolicLength] = []
        for element in 0..<(shape.checkedProduct ?? 0) {
            let values = zip(operands, sources).map { $0.elements[$1[element]] }
            let result: SymbolicLength?
            switch node.opType {
            case "Add": result = values[0] + values[1]
            case "Sub": result = values[0] - values[1]
            case "Mul": result = values[0] * values[1]
            case "Div":
                // Real division has no truncation: only an exact quotient is the same polynomial.
                result = values[0].divided(by: values[1]).flatMap { !floating || $0 * values[1] == values[0] ? $0 : nil }
            case "Mod": result = floating ? nil : values[0].remainder(dividingBy: values[1])
            case "Max", "Min": result = values[0].extremum(with: values[1], maximum: node.opType == "Max")
            case "Equal": result = values[0].isEqual(to: values[1]).map { SymbolicLength($0 ? 1 : 0) }
            default: result = values[0].isEqual(to: SymbolicLength(0)).map { $0 ? values[2] : values[1] }
            }
            guard let result else { return nil }
            elements.append(result)
        }
        let dtype = node.opType == "Equal" ? DType.bool : operands[node.opType == "Where" ? 1 : 0].dtype
        return SymbolicTensor(dtype: dtype, shape: shape, elements: elements)
    }
}
