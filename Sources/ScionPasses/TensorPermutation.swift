import ScionIR

/// A reordering of a row-major tensor's axes: output axis `k` is input axis `permutation[k]`, so
/// `output[i0, ..., i(n-1)] = input[j]` where `j[permutation[k]] = i[k]` (numpy's
/// `transpose(input, permutation)`, ONNX's Transpose `perm`).
///
/// Works on raw bytes with any element size, so weights are permuted without being decoded. Every
/// size is checked before anything is allocated: the shape's product must not overflow and the
/// bytes must be exactly `elements × elementSize`.
package struct TensorPermutation: Equatable, Sendable {
    /// Shape of the tensor before the permutation.
    package let shape: [Int]
    package let permutation: [Int]
    package let elementSize: Int
    /// Number of elements; checked against overflow at creation.
    package let elementCount: Int
    /// Bytes of the tensor before and after.
    package let byteCount: Int

    /// Shape after the permutation: `shape[permutation[k]]` for each `k`.
    package var permutedShape: [Int] { permutation.map { shape[$0] } }

    /// True when the permutation moves no element (only axes of length 1 move, or none at all).
    package var isIdentity: Bool {
        let moved = permutation.filter { shape[$0] != 1 }
        return moved == moved.sorted()
    }

    package init(shape: [Int], permutation: [Int], elementSize: Int) throws {
        guard permutation.sorted() == Array(0..<shape.count) else {
            throw Self.failure("permutation \(permutation) does not reorder the \(shape.count) axes of \(shape)")
        }
        guard shape.allSatisfy({ $0 >= 0 }), let elements = shape.checkedProduct else {
            throw Self.failure("shape \(shape) has a negative dimension or too many elements")
        }
        guard elementSize > 0 else { throw Self.failure("element size \(elementSize) is not positive") }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw Self.failure("shape \(shape) of \(elementSize)-byte elements is too large") }
        self.shape = shape; self.permutation = permutation; self.elementSize = elementSize
        self.elementCount = elements; self.byteCount = bytes
    }

    /// The permuted bytes. Throws when `bytes` is not exactly the tensor this permutation describes.
    package func apply(to bytes: [UInt8]) throws -> [UInt8] {
        guard bytes.count == byteCount else {
            throw Self.failure("got \(bytes.count) bytes for shape \(shape) of \(elementSize)-byte elements (\(byteCount) expected)")
        }
        if isIdentity || byteCount == 0 { return bytes }
        let plan = collapsedAxes()
        var result = [UInt8](repeating: 0, count: byteCount)
        bytes.withUnsafeBytes { source in
            result.withUnsafeMutableBytes { destination in
                Self.copy(from: source, to: destination, plan: plan)
            }
        }
        return result
    }

    /// The permuted bytes of `source` written into `destination` (both exactly `byteCount`): for a
    /// reader that permutes into memory it owns, without the zero-filled array `apply(to:)` makes.
    package func apply(from source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        guard source.count == byteCount, destination.count == byteCount else {
            throw Self.failure("got \(source.count) bytes into \(destination.count) for shape \(shape) of \(elementSize)-byte elements (\(byteCount) expected)")
        }
        if isIdentity || byteCount == 0 { return destination.copyMemory(from: source) }
        Self.copy(from: source, to: destination, plan: collapsedAxes())
    }

    /// The same permutation with runs of axes that stay adjacent merged into one and axes of length 1
    /// dropped: `[kh, kw, in, out]` by `[3, 2, 0, 1]` becomes `[kh·kw, in, out]` by `[2, 1, 0]`. Fewer
    /// axes make the copy loop shorter; when the last axis stays last its rows are copied whole.
    struct Plan {
        /// Lengths of the merged output axes, outermost first.
        var outputLengths: [Int]
        /// For each merged output axis, the byte stride of the matching input axis.
        var inputStrides: [Int]
        /// Bytes copied in one go: a whole innermost row when it stays contiguous, else one element.
        var blockBytes: Int
    }

    func collapsedAxes() -> Plan {
        // Input axes that survive (length > 1), in input order, merged where adjacent in the output.
        let kept = permutation.filter { shape[$0] != 1 }
        var groups: [[Int]] = []
        for axis in kept {
            // Adjacent in the input too (axes of length 1 in between do not count): same group.
            if var last = groups.last, let previous = last.last, previous < axis,
               (previous + 1..<axis).allSatisfy({ shape[$0] == 1 }) {
                last.append(axis)
                groups[groups.count - 1] = last
            } else {
                groups.append([axis])
            }
        }
        // Input-order of the groups gives each merged axis its stride.
        let inputOrder = groups.indices.sorted { groups[$0][0] < groups[$1][0] }
        var strides = [Int](repeating: 0, count: groups.count)
        var stride = elementSize
        for group in inputOrder.reversed() {
            strides[group] = stride
            stride *= groups[group].reduce(1) { $0 * shape[$1] }
        }
        var lengths = groups.map { $0.reduce(1) { $0 * shape[$1] } }
        var blockBytes = elementSize
        if let lastGroup = groups.last, strides[groups.count - 1] == elementSize {
            // The innermost output axis is also innermost in the input: copy it as one block.
            blockBytes = elementSize * lastGroup.reduce(1) { $0 * shape[$1] }
            lengths.removeLast()
            strides.removeLast()
        }
        return Plan(outputLengths: lengths, inputStrides: strides, blockBytes: blockBytes)
    }

    /// Walks the output in row-major order with an odometer over the merged axes, keeping the input
    /// offset in step.
    static func copy(from source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawBufferPointer, plan: Plan) {
        guard let sourceBase = source.baseAddress, let destinationBase = destination.baseAddress else { return }
        let axes = plan.outputLengths.count
        let block = plan.blockBytes
        if block == 4, axes == 2 || axes == 3, plan.inputStrides.allSatisfy({ $0 % 4 == 0 }),
           Int(bitPattern: sourceBase) % 4 == 0, Int(bitPattern: destinationBase) % 4 == 0 {
            // Kernels (HWIO ↔ OIHW, Dense rows): plain nested loops over 32-bit words, several times
            // faster than the odometer below.
            let input = sourceBase.assumingMemoryBound(to: UInt32.self)
            let output = destinationBase.assumingMemoryBound(to: UInt32.self)
            let strides = plan.inputStrides.map { $0 / 4 }
            let lengths = axes == 3 ? plan.outputLengths : [1] + plan.outputLengths
            let words = axes == 3 ? strides : [0] + strides
            if strides[0] == 1 && axes == 3 {
                // The outermost output axis is the input's contiguous one (HWIO → OIHW): walk it in
                // tiles of 16, so each input cache line is read once and 16 output rows fill in order.
                let (l0, l1, l2) = (lengths[0], lengths[1], lengths[2])
                for tile in stride(from: 0, to: l0, by: 16) {
                    let end = min(tile + 16, l0)
                    for b in 0..<l1 {
                        for c in 0..<l2 {
                            let base = b * words[1] + c * words[2]
                            for a in tile..<end { output[(a * l1 + b) * l2 + c] = input[base + a] }
                        }
                    }
                }
                return
            }
            var position = 0
            for a in 0..<lengths[0] {
                for b in 0..<lengths[1] {
                    let row = a * words[0] + b * words[1]
                    for c in 0..<lengths[2] {
                        output[position] = input[row + c * words[2]]
                        position += 1
                    }
                }
            }
            return
        }
        var index = [Int](repeating: 0, count: axes)
        var inputOffset = 0
        var outputOffset = 0
        let total = destination.count
        while outputOffset < total {
            switch block {
            case 4: destinationBase.storeBytes(of: sourceBase.loadUnaligned(fromByteOffset: inputOffset, as: UInt32.self),
                                               toByteOffset: outputOffset, as: UInt32.self)
            case 2: destinationBase.storeBytes(of: sourceBase.loadUnaligned(fromByteOffset: inputOffset, as: UInt16.self),
                                               toByteOffset: outputOffset, as: UInt16.self)
            case 8: destinationBase.storeBytes(of: sourceBase.loadUnaligned(fromByteOffset: inputOffset, as: UInt64.self),
                                               toByteOffset: outputOffset, as: UInt64.self)
            default: (destinationBase + outputOffset).copyMemory(from: sourceBase + inputOffset, byteCount: block)
            }
            outputOffset += block
            // Advance the odometer: the innermost axis first, carrying outwards.
            var axis = axes - 1
            while axis >= 0 {
                index[axis] += 1
                inputOffset += plan.inputStrides[axis]
                if index[axis] < plan.outputLengths[axis] { break }
                inputOffset -= plan.inputStrides[axis] * plan.outputLengths[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    static func failure(_ reason: String) -> PassError {
        PassError(pass: "tensor-permutation", subject: "", reason)
    }
}
