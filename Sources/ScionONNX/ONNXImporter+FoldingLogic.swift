import Foundation
import ScionIR

/// Folding of the comparisons, logic, Where and Mod that TorchScript exports compute on shape
/// values (`Equal(shape, -1)` then `Where`, `Mod` of a length): with a static shape every operand is
/// a constant, and the ops after them (a Reshape, an Expand) need the folded values as attributes.
extension ONNXImportSession {
    /// Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor and Mod of two constants.
    mutating func foldBinaryLogic(_ node: ONNXNode, output: String) throws -> Bool {
        guard node.inputs.count == 2, node.attribute("broadcast") == nil, let left = constants[node.inputs[0]],
              let right = constants[node.inputs[1]], let a = try numbers(node.inputs[0]), let b = try numbers(node.inputs[1]),
              let (shape, sources) = Broadcasting.sources([left.shape, right.shape], limit: Self.foldingLimit) else { return false }
        let count = sources[0].count
        if node.opType == "Mod" {
            guard left.dtype == right.dtype else { return false }
            let remainder = ModAttributes(fmod: intAttribute(node, "fmod", 0) == 1)
            if left.dtype.isFloatingPoint {
                let x = a.reals, y = b.reals
                let values = (0..<count).map { Double(remainder.remainder(Float(x[sources[0][$0]]), Float(y[sources[1][$0]]))) }
                constants[output] = make(.reals(values), dtype: left.dtype, shape: shape)
                return true
            }
            let x = a.integers, y = b.integers
            var values: [Int64] = []
            for flat in 0..<count {
                let (p, q) = (x[sources[0][flat]], y[sources[1][flat]])
                guard q != 0 else { return false }
                let r = p % q
                // fmod=0 takes the divisor's sign (Python's %); fmod=1 the dividend's (C's).
                values.append(remainder.fmod || r == 0 || (r < 0) == (q < 0) ? r : r + q)
            }
            constants[output] = make(.integers(values), dtype: left.dtype, shape: shape)
            return true
        }
        // Integers compare exactly (INT64_MAX is not a Double).
        let integral = !left.dtype.isFloatingPoint && !right.dtype.isFloatingPoint
        let (xi, yi, xr, yr) = (a.integers, b.integers, a.reals, b.reals)
        let values = (0..<count).map { flat -> Int64 in
            let i = sources[0][flat], j = sources[1][flat]
            let order: Int = integral ? (xi[i] < yi[j] ? -1 : (xi[i] == yi[j] ? 0 : 1)) : (xr[i] < yr[j] ? -1 : (xr[i] == yr[j] ? 0 : 1))
            let p = xr[i] != 0, q = yr[j] != 0
            let result: Bool = switch node.opType {
            case "Equal": order == 0
            case "Less": order < 0
            case "LessOrEqual": order <= 0
            case "Greater": order > 0
            case "GreaterOrEqual": order >= 0
            case "And": p && q
            case "Or": p || q
            default: p != q
            }
            return result ? 1 : 0
        }
        constants[output] = make(.integers(values), dtype: .bool, shape: shape)
        return true
    }

    /// Where of three constants.
    mutating func foldWhere(_ node: ONNXNode, output: String) throws -> Bool {
        guard node.inputs.count == 3, let chosen = constants[node.inputs[1]], let other = constants[node.inputs[2]],
              let condition = constants[node.inputs[0]], chosen.dtype == other.dtype,
              let test = try numbers(node.inputs[0])?.integers, let x = try numbers(node.inputs[1]), let y = try numbers(node.inputs[2]),
              let (shape, sources) = Broadcasting.sources([condition.shape, chosen.shape, other.shape], limit: Self.foldingLimit) else { return false }
        let picks = sources[0].indices.map { test[sources[0][$0]] != 0 }
        let result: ConstantNumbers
        if chosen.dtype.isFloatingPoint {
            let (xr, yr) = (x.reals, y.reals)
            result = .reals(picks.indices.map { picks[$0] ? xr[sources[1][$0]] : yr[sources[2][$0]] })
        } else {
            let (xi, yi) = (x.integers, y.integers)
            result = .integers(picks.indices.map { picks[$0] ? xi[sources[1][$0]] : yi[sources[2][$0]] })
        }
        constants[output] = make(result, dtype: chosen.dtype, shape: shape)
        return true
    }

    /// Not of a constant.
    /// One-input math on a literal (TorchScript's attention scale is `Sqrt(Cast(length))`): computed
    /// in double precision and stored in the input's type. A float initializer is a weight, which
    /// training may change: what is computed from it stays a node.
    mutating func foldUnary(_ node: ONNXNode, output: String) throws -> Bool {
        guard let input = constants[node.inputs[0]], !(input.fromInitializer && input.dtype.isFloatingPoint),
              let values = try numbers(node.inputs[0]) else { return false }
        if !input.dtype.isFloatingPoint {
            let integers = values.integers
            let result: [Int64]
            switch node.opType {
            case "Neg": result = integers.map { 0 &- $0 }
            case "Abs": result = integers.map { $0 == .min ? $0 : Swift.abs($0) }
            case "Sign": result = integers.map { $0.signum() }
            default: return false
            }
            constants[output] = make(.integers(result), dtype: input.dtype, shape: input.shape)
            return true
        }
        let function: (Double) -> Double = switch node.opType {
        case "Sqrt": { $0.squareRoot() }
        case "Reciprocal": { 1 / $0 }
        case "Neg": { -$0 }
        case "Abs": { Swift.abs($0) }
        case "Exp": { Foundation.exp($0) }
        case "Log": { Foundation.log($0) }
        case "Floor": { $0.rounded(.down) }
        case "Ceil": { $0.rounded(.up) }
        default: { $0 > 0 ? 1 : $0 < 0 ? -1 : $0 }
        }
        constants[output] = make(.reals(values.reals.map(function)), dtype: input.dtype, shape: input.shape)
        return true
    }

    mutating func foldNot(_ node: ONNXNode, output: String) throws -> Bool {
        guard let input = constants[node.inputs[0]], let values = try numbers(node.inputs[0])?.integers else { return false }
        constants[output] = make(.integers(values.map { $0 == 0 ? 1 : 0 }), dtype: .bool, shape: input.shape)
        return true
    }
}
