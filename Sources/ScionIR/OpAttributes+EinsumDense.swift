/// Keras's EinsumDense: `einsum(equation, x, kernel) + bias`, then the activation. One weight
/// multiplication written as an einsum equation (`"abc,cd->abd"`, `"abc,cde->abde"`,
/// `"abcd,cde->abe"`, `"...b,bc->...c"`), the shapes of the kernel and bias following from it.
///
/// Parameters, in Keras's creation order: `kernel` (its axes the equation's second term), then
/// `bias` when `biasAxes` is given: the output's lengths from the first bias axis on, 1 along
/// axes that are not bias axes (so it broadcasts against the output's trailing axes).
public struct EinsumDenseAttributes: Equatable, Sendable {
    /// Keras's equation, as written (`input,kernel->output`).
    public var equation: String
    /// Keras's `output_shape`: the output's lengths after the batch axis (nil where Keras infers one).
    public var outputShape: [Int?]
    /// Output axes (letters of the equation's output) that get a bias; nil for none.
    public var biasAxes: String?
    public var activation: Activation

    /// Attributes with these values.
    public init(equation: String, outputShape: [Int?], biasAxes: String? = nil, activation: Activation = .linear) {
        self.equation = equation; self.outputShape = outputShape; self.biasAxes = biasAxes; self.activation = activation
    }
}

/// An einsum equation of one input and one kernel, as one matrix product: the input's axes split
/// into kept ones (rows, in the output) and contracted ones (shared with the kernel), the kernel's
/// into the contracted ones and its own (columns, in the output).
///
/// ```
///  "abc,cde->abde"   input a b | c      kernel c | d e      product [a·b, c] · [c, d·e] -> [a, b, d, e]
/// ```
public struct EinsumPlan: Equatable, Sendable {
    /// The letters of each term, an ellipsis spelled out as letters of its own.
    public let input: [Character], kernel: [Character], output: [Character]
    /// Input axes kept (in input order), contracted axes (in input order), kernel-only axes.
    public let kept: [Character], contracted: [Character], kernelOwn: [Character]

    /// The plan for `equation` applied to an input of `rank`; nil for equations that are not one
    /// matrix product (a letter summed within one term, an axis shared by all three terms, an
    /// ellipsis anywhere but at the start of the input and output).
    public init?(_ equation: String, inputRank: Int) {
        let compact = equation.filter { !$0.isWhitespace }
        let halves = compact.split(separator: "-", omittingEmptySubsequences: false)
        guard halves.count == 2, halves[1].first == ">" else { return nil }
        let sides = halves[0].split(separator: ",", omittingEmptySubsequences: false)
        guard sides.count == 2 else { return nil }
        var (input, kernel, output) = (String(sides[0]), String(sides[1]), String(halves[1].dropFirst()))
        if input.hasPrefix("...") || output.hasPrefix("...") {
            guard input.hasPrefix("..."), output.hasPrefix("..."), !kernel.contains(".") else { return nil }
            let extra = inputRank - (input.count - 3)
            let reserved = Set(input + kernel + output)
            let fresh = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".filter { !reserved.contains($0) }.prefix(max(extra, 0))
            guard extra >= 0, fresh.count == extra else { return nil }
            input = String(fresh) + input.dropFirst(3)
            output = String(fresh) + output.dropFirst(3)
        }
        let terms = [Array(input), Array(kernel), Array(output)]
        guard terms.allSatisfy({ term in term.allSatisfy { $0.isLetter } && Set(term).count == term.count }),
              terms[0].count == inputRank else { return nil }
        let (x, w, y) = (Set(terms[0]), Set(terms[1]), Set(terms[2]))
        // Every output axis comes from one side only; every input or kernel axis is kept or contracted.
        guard y.isSubset(of: x.union(w)), x.intersection(w).intersection(y).isEmpty,
              x.subtracting(w).isSubset(of: y), w.subtracting(x).isSubset(of: y) else { return nil }
        self.input = terms[0]; self.kernel = terms[1]; self.output = terms[2]
        kept = terms[0].filter { !w.contains($0) }
        contracted = terms[0].filter { w.contains($0) }
        kernelOwn = terms[1].filter { !x.contains($0) }
    }

    /// Input axes in the order kept then contracted.
    public var inputPermutation: [Int] { (kept + contracted).compactMap { input.firstIndex(of: $0) } }
    /// Kernel axes in the order contracted then its own.
    public var kernelPermutation: [Int] { (contracted + kernelOwn).compactMap { kernel.firstIndex(of: $0) } }
    /// The product's axes (kept then kernel-own) moved to the output's order.
    public var outputPermutation: [Int] { output.compactMap { (kept + kernelOwn).firstIndex(of: $0) } }

    /// The output's lengths given the input's and the kernel's; nil for a length neither gives.
    public func outputLengths(input lengths: [Int?], kernel shape: [Int]) -> [Int?] {
        output.map { letter in
            if let axis = input.firstIndex(of: letter) { return lengths[axis] }
            return kernel.firstIndex(of: letter).map { shape[$0] }
        }
    }

    /// The bias's shape: the output's lengths from the first bias axis on, 1 where not a bias axis.
    public func biasShape(_ biasAxes: String, output lengths: [Int?]) -> [Int?]? {
        let positions = biasAxes.map { output.firstIndex(of: $0) }
        guard !positions.isEmpty, positions.allSatisfy({ $0 != nil }), let first = positions.compactMap({ $0 }).min() else { return nil }
        return (first..<output.count).map { biasAxes.contains(output[$0]) ? lengths[$0] : 1 }
    }
}

/// Keras's UnitNormalization: each sample scaled to unit L2 norm over `axes`,
/// `x / max(sqrt(Σ x²), minimumNorm)`. No parameters.
public struct UnitNormalizationAttributes: Equatable, Sendable {
    /// The normalized axes (negative counts from the end).
    public var axes: [Int]
    /// The smallest norm divided by: Keras 3's 1e-12 (tf.keras's `l2_normalize` floors the squared
    /// norm at 1e-12 instead, the norm at 1e-6: the two differ only for norms below 1e-6).
    public var minimumNorm: Float

    /// Attributes with these values.
    public init(axes: [Int], minimumNorm: Float = 1e-12) { self.axes = axes; self.minimumNorm = minimumNorm }
}
