/// Which elements of a tensor a Slice or a Transpose keeps, and where they lie: written once for the
/// ONNX importer's folding (small constants and symbolic shape vectors), the Keras rewriter's folding
/// of a weight's Slice, and the attention probe. ONNX's rules: negative starts and ends count from the
/// end, bounds are clamped to the axis, a negative step walks backwards.
public enum ElementSelection {
    /// The indices a Slice of `start`, `end`, `step` keeps along an axis of `length`, in order;
    /// none for a step of 0.
    public static func sliceIndices(length: Int, start: Int, end: Int, step: Int) -> [Int] {
        guard step != 0 else { return [] }
        var first = start < 0 ? start + length : start
        var last = end < 0 ? end + length : end
        if step > 0 {
            first = min(max(first, 0), length); last = min(max(last, 0), length)
            return Array(stride(from: first, to: last, by: step))
        }
        first = min(max(first, 0), length - 1); last = min(max(last, -1), length - 1)
        return Array(stride(from: first, to: last, by: step))
    }

    /// The indices a Slice keeps along each axis of `shape` (every index on axes it does not name);
    /// nil when it names an axis out of range or its lists differ in length.
    public static func keptIndices(shape: [Int], starts: [Int], ends: [Int], axes: [Int], steps: [Int]) -> [[Int]]? {
        guard starts.count == axes.count, ends.count == axes.count, steps.count == axes.count else { return nil }
        var kept = shape.map { Array(0..<$0) }
        for (position, rawAxis) in axes.enumerated() {
            let axis = rawAxis < 0 ? rawAxis + shape.count : rawAxis
            guard shape.indices.contains(axis) else { return nil }
            kept[axis] = sliceIndices(length: shape[axis], start: starts[position], end: ends[position], step: steps[position])
        }
        return kept
    }

    /// The row-major positions, in a tensor of `shape`, of every combination of the `kept` indices
    /// of its axes, the axes taken in `order` (a transpose; the tensor's own order by default), the
    /// last one fastest: the flat source of each element of the result.
    public static func positions(kept: [[Int]], shape: [Int], order: [Int]? = nil) -> [Int] {
        let strides = Broadcasting.strides(shape)
        var positions = [0]
        for axis in order ?? Array(shape.indices) {
            positions = positions.flatMap { base in kept[axis].map { base + $0 * strides[axis] } }
        }
        return positions
    }
}
