/// Attributes of the ONNX ops torch's exporters write for index arithmetic, masks and scatter/gather
/// (Mod, ConstantOfShape, Trilu, a Slice with computed bounds, ScatterND, Einsum): each mirrors the
/// ONNX operator's meaning, so the ONNX writer emits it back unchanged.

/// ONNX Mod: the remainder of `inputs[0] / inputs[1]`.
public struct ModAttributes: Equatable, Sendable {
    /// ONNX `fmod=1`: C's fmod, the sign of the dividend. `false` (ONNX's default, numpy's `mod`):
    /// the sign of the divisor.
    public var fmod: Bool
    /// Attributes with this setting.
    public init(fmod: Bool) { self.fmod = fmod }

    /// The remainder of one pair, as ONNX defines it.
    public func remainder(_ a: Float, _ b: Float) -> Float {
        if fmod { return a.truncatingRemainder(dividingBy: b) }
        let r = a.truncatingRemainder(dividingBy: b)
        return r != 0 && (r < 0) != (b < 0) ? r + b : r
    }
}

/// ONNX ConstantOfShape: a tensor of the lengths its input holds, every element `value`.
public struct ConstantOfShapeAttributes: Equatable, Sendable {
    /// The fill value (ONNX's `value` attribute; 0 when absent).
    public var value: Double
    /// The element type of the result (float32 when the attribute is absent).
    public var dtype: DType
    /// Attributes with these values.
    public init(value: Double = 0, dtype: DType = .float32) { self.value = value; self.dtype = dtype }
}

/// ONNX Trilu: the upper or lower triangle of the last two axes, the rest zeros.
public struct TriluAttributes: Equatable, Sendable {
    /// Keeps `column - row >= k` (upper) or `column - row <= k` (lower).
    public var upper: Bool
    /// The diagonal offset when the file gives it as a constant (or omits it: 0); nil when it is the
    /// node's second input, computed at run time.
    public var k: Int?
    /// Attributes with these values.
    public init(upper: Bool, k: Int?) { self.upper = upper; self.k = k }

    /// Whether the element at `row`, `column` is kept for diagonal offset `k`.
    public static func keeps(row: Int, column: Int, k: Int, upper: Bool) -> Bool {
        upper ? column - row >= k : column - row <= k
    }
}

/// ONNX Slice whose bounds arrive as inputs computed at run time: inputs are data, starts, ends,
/// then axes and steps when the file gives them.
public struct ComputedSliceAttributes: Equatable, Sendable {
    /// Whether an `axes` input follows `ends`.
    public var hasAxes: Bool
    /// Whether a `steps` input follows (after `axes`, or after `ends` when `hasAxes` is false).
    public var hasSteps: Bool
    /// The axes sliced when they were constant at import (non-negative), so shape inference keeps
    /// the other axes' lengths; nil when unknown.
    public var knownAxes: [Int]?
    /// Attributes with these values.
    public init(hasAxes: Bool, hasSteps: Bool, knownAxes: [Int]? = nil) {
        self.hasAxes = hasAxes; self.hasSteps = hasSteps; self.knownAxes = knownAxes
    }
}

/// How ScatterND combines an update with the value already in place.
public enum ScatterReduction: String, Equatable, Sendable, CaseIterable {
    /// The update replaces the value (ONNX's default).
    case none
    /// The update is added.
    case add
    /// The value is multiplied by the update.
    case mul
}

/// ONNX ScatterND: `inputs[0]` with the slices `inputs[1]` indexes replaced by (or combined with)
/// `inputs[2]`.
public struct ScatterNDAttributes: Equatable, Sendable {
    /// How an update combines with the value in place.
    public var reduction: ScatterReduction
    /// Attributes with this reduction.
    public init(reduction: ScatterReduction) { self.reduction = reduction }
}

/// ONNX GatherND: slices of `inputs[0]` picked by the index tuples in the last axis of `inputs[1]`,
/// the first `batchDimensions` axes of both walked together.
public struct GatherNDAttributes: Equatable, Sendable {
    /// Leading axes shared by data and indices (ONNX `batch_dims`).
    public var batchDimensions: Int
    /// Attributes with these batch axes.
    public init(batchDimensions: Int) { self.batchDimensions = batchDimensions }
}

/// ONNX Einsum (and keras.ops.einsum): the equation as written, e.g. `bhid,bhjd->bhij`.
public struct EinsumAttributes: Equatable, Sendable {
    /// The equation, spaces removed.
    public var equation: String
    /// Attributes with this equation.
    public init(equation: String) { self.equation = equation.filter { $0 != " " } }

    /// The equation's operands' letters and the output's; nil when it is not of the form the
    /// executor runs (letters only, no ellipsis, no letter twice in one term, an explicit output
    /// whose letters all appear in an operand, one or two operands).
    public var terms: (operands: [[Character]], output: [Character])? {
        let characters = Array(equation)
        guard let arrow = characters.indices.dropLast().first(where: { characters[$0] == "-" && characters[$0 + 1] == ">" }) else {
            return nil
        }
        let operands: [[Character]] = characters[..<arrow].split(separator: ",", omittingEmptySubsequences: false).map { Array($0) }
        let output = Array(characters[(arrow + 2)...])
        let all = operands + [output]
        guard (1...2).contains(operands.count),
              all.allSatisfy({ (term: [Character]) in term.allSatisfy { $0.isLetter } && Set(term).count == term.count }),
              output.allSatisfy({ letter in operands.contains { $0.contains(letter) } }) else { return nil }
        return (operands, output)
    }
}

/// ONNX Pad whose pads arrive as an input computed at run time (torch pads a window to a multiple
/// of its size this way under a dynamic batch): inputs data and pads (begins, then ends, of the
/// axes padded), then the fill value when it is computed too.
public struct ComputedPadAttributes: Equatable, Sendable {
    /// What fills the padding.
    public var mode: PadMode
    /// The fill value for `constant` mode when the file gives it as a constant (or omits it: 0);
    /// nil when it is the node's third input.
    public var value: Float?
    /// The axes the pads are for when the file names them (opset 18); nil for every axis.
    public var axes: [Int]?
    /// Attributes with these values.
    public init(mode: PadMode, value: Float?, axes: [Int]? = nil) { self.mode = mode; self.value = value; self.axes = axes }
}
