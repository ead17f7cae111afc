import ScionIR

/// One lazy reordering of a parameter's elements, as the layout passes make them: a kernel from
/// HWIO to OIHW or back, a Dense kernel's rows after a Flatten, a Gemm's transposed weight.
///
/// The permuted bytes are computed only when a writer reads them (`PermutedTensorSource`). A
/// parameter shared by several nodes is changed once: `changes` remembers what was done to each, and
/// a second, different change of the same elements is an error rather than a silent double permute.
struct ParameterPermutation {
    /// What the change is for, in messages (`convolution kernel to OIHW`).
    var change: String
    var permutation: [Int]
    /// Reads the old tensor (or, from `firstElement` on, part of it) as this shape, with the same
    /// elements in the same order (Dense rows as `[spatial..., C, units]`). Default: its own shape.
    var viewShape: [Int]? = nil
    /// The result's shape. Default: the permuted view.
    var newShape: [Int]? = nil
    var newRole: ParameterRole? = nil
    var firstElement: Int? = nil

    /// Replaces `original` (as the source graph had it) in `parameters` by the permuted tensor,
    /// keeping its name, position and trainable flag, and returns the new parameter.
    func apply(to original: Parameter, in parameters: inout ParameterTable, changes: inout [String: String],
               pass: String, node: String) throws -> Parameter {
        let failure = { (reason: String) in PassError(pass: pass, subject: node, reason) }
        guard let current = parameters[original.name] else {
            throw failure("parameter '\(original.name)' is missing")
        }
        let view = viewShape ?? original.shape
        let key = "\(original.name) from element \(firstElement ?? 0)"
        let description = "\(change) \(view) by \(permutation)"
        if let done = changes[key] {
            guard done == description else {
                throw failure("parameter '\(original.name)' is shared with a node that needs it changed differently (\(done))")
            }
            return current
        }
        guard let elementSize = original.dtype.byteSize else {
            throw failure("parameter '\(original.name)' of type \(original.dtype) cannot be permuted")
        }
        let tensorPermutation = try TensorPermutation(shape: view, permutation: permutation, elementSize: elementSize)
        let resultShape = newShape ?? tensorPermutation.permutedShape
        guard let total = original.shape.checkedProduct, resultShape.checkedProduct == total else {
            throw failure("parameter '\(original.name)' of shape \(original.shape) cannot be shaped \(resultShape)")
        }
        var byteRange: Range<Int>?
        if let firstElement {
            let start = firstElement * elementSize
            byteRange = start..<(start + tensorPermutation.byteCount)
        } else if tensorPermutation.elementCount != total {
            throw failure("parameter '\(original.name)' of shape \(original.shape) cannot be read as \(view)")
        }
        var changed = current
        if !tensorPermutation.isIdentity {
            changed.storage = TensorStorage(source: try PermutedTensorSource(
                base: current.storage, permutation: tensorPermutation, byteRange: byteRange))
        }
        changed.shape = resultShape
        if let newRole { changed.role = newRole }
        parameters[original.name] = changed
        changes[key] = description
        return changed
    }
}
