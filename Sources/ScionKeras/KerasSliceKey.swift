import ScionIR

/// The key of a Keras 3 `GetItem` node (`x[:, -1, None, 1:5:2]`) as IR ops. Keras saves the key as a
/// list of items, one per indexed axis: `{"class_name": "__slice__", "config": {start, stop, step}}`,
/// an integer, `null` (numpy's newaxis) or `{"class_name": "__ellipsis__"}`; a single item for
/// `x[0]`. The read is numpy's basic indexing in three steps:
///
/// ```
///  x[:, 1:5:2, -1, None]   (N, 6, 8) -> Slice axes [1, 2] starts [1, -1] ends [5, max] steps [2, 1]
///                                    -> Squeeze [2] (the integer index)  -> (N, 2)
///                                    -> Unsqueeze [2] (where None sits in the result) -> (N, 2, 1)
/// ```
struct KerasSliceKey {
    let arguments: [JSON]
    let rank: Int

    func ops() throws -> [Op] {
        typealias Refusal = KerasOperationReader.Refusal
        guard arguments.count == 2 else { throw Refusal(reason: "has no index key") }
        let key = arguments[1]
        let items = key.array ?? [key]
        let explicit = items.filter { $0.int != nil || Self.isSlice($0) }.count
        guard explicit <= rank else { throw Refusal(reason: "indexes \(explicit) axes of a rank-\(rank) tensor") }
        guard items.filter(Self.isEllipsis).count <= 1 else { throw Refusal(reason: "has more than one Ellipsis") }
        let lengths = KerasOperationReader.shape(of: arguments[0])
        var slice = SliceAttributes(starts: [], ends: [], axes: [], steps: [])
        var squeezed: [Int] = []
        var inserted: [Int] = []
        var inputAxis = 0
        var outputAxis = 0
        for item in items {
            if Self.isEllipsis(item) {
                inputAxis += rank - explicit
                outputAxis += rank - explicit
            } else if item.isNull {
                inserted.append(outputAxis)
                outputAxis += 1
            } else if let index = item.int {
                if let length = lengths?[inputAxis], !(-length..<length).contains(index) {
                    throw Refusal(reason: "index \(index) is outside axis \(inputAxis) of length \(length)")
                }
                // x[-1] is the slice [-1:] (an end of 0 would be empty).
                append(&slice, axis: inputAxis, start: index, end: index == -1 ? Int.max : index + 1, step: 1)
                squeezed.append(inputAxis)
                inputAxis += 1
            } else if Self.isSlice(item), let bounds = item["config"] {
                let (start, stop, step) = (bounds["start"] ?? .null, bounds["stop"] ?? .null, bounds["step"] ?? .null)
                for bound in [start, stop, step] where !bound.isNull && bound.int == nil {
                    throw Refusal(reason: "has a slice bound \(bound.serialized) that is not an integer")
                }
                let stride = step.int ?? 1
                guard stride != 0 else { throw Refusal(reason: "has a slice step of 0") }
                if !(start.isNull && stop.isNull && stride == 1) {
                    // Open ends as ONNX spells them: past the end, or before the start going backwards.
                    append(&slice, axis: inputAxis, start: start.int ?? (stride > 0 ? 0 : -1),
                           end: stop.int ?? (stride > 0 ? Int.max : Int.min), step: stride)
                }
                inputAxis += 1
                outputAxis += 1
            } else {
                throw Refusal(reason: "has an index \(item.serialized) that is not an integer, a slice, None or Ellipsis")
            }
        }
        var ops: [Op] = []
        if !slice.axes.isEmpty { ops.append(.onnx(.slice(slice))) }
        if !squeezed.isEmpty { ops.append(.onnx(.squeeze(AxesAttributes(axes: squeezed)))) }
        if !inserted.isEmpty { ops.append(.onnx(.unsqueeze(AxesAttributes(axes: inserted)))) }
        return ops.isEmpty ? [.identity] : ops
    }

    private func append(_ slice: inout SliceAttributes, axis: Int, start: Int, end: Int, step: Int) {
        slice.axes.append(axis); slice.starts.append(start); slice.ends.append(end); slice.steps.append(step)
    }

    static func isSlice(_ item: JSON) -> Bool { item["class_name"]?.string == "__slice__" }
    static func isEllipsis(_ item: JSON) -> Bool { item["class_name"]?.string == "__ellipsis__" }
}
