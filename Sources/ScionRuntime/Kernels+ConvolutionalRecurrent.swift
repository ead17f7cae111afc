import ScionIR

/// Keras's ConvLSTM as the dense LSTM (`Kernels.recurrentDirection`) over unfolded patches.
///
/// A channels-last convolution is a matrix product of the input's patches with the kernel seen as a
/// matrix: Keras's kernel `[k..., channels, 4*units]` is, row-major, `[taps * channels, 4*units]` with
/// row `tap * channels + c`, which is the order `unfold` writes each patch in. So every output
/// position of every sample becomes one row of the dense cell (`rows = batch * positions`, state
/// `[rows, units]` being the channels-last state), the input is unfolded once into
/// `[rows, time, taps * channels]`, and the state is unfolded at each step ('same', stride 1) before
/// its recurrent product. The gate code, backprop through time included, is the LSTM's; the VJP of
/// an unfolding is `fold`, which adds each patch entry back where it was read.
struct RecurrentConvolutionGeometry {
    let batch: Int, time: Int, channels: Int, units: Int
    /// Output spatial lengths (the state's).
    let output: [Int]
    let input: [Int]
    /// Per output position and tap, the input position read (flattened spatial index), -1 in padding.
    let inputSources: [Int]
    /// The same for the state's 'same' stride-1 convolution over the output grid.
    let stateSources: [Int]
    let taps: Int

    /// Output positions per sample.
    var positions: Int { output.reduce(1, *) }
    /// Rows of the dense cell: one per sample and output position.
    var rows: Int { batch * positions }

    init(inputShape shape: [Int], _ a: RecurrentAttributes, _ convolution: RecurrentConvolution, node: String) throws {
        let rank = convolution.rank
        guard shape.count == rank + 3 else {
            throw RuntimeError(node, "ConvLSTM\(rank)D needs a [batch, time, \(rank) spatial axes, channels] input, got \(shape)")
        }
        (batch, time, channels, units) = (shape[0], shape[1], shape[rank + 2], a.units)
        input = Array(shape[2..<(rank + 2)])
        taps = convolution.taps
        let inputWindows = (0..<rank).map { axis in
            Kernels.window(length: shape[2 + axis], kernel: (convolution.kernelSize[axis] - 1) * convolution.dilations[axis] + 1,
                           stride: convolution.strides[axis], padding: convolution.padding, axis: axis, rank: rank)
        }
        output = inputWindows.map(\.output)
        guard output.allSatisfy({ $0 > 0 }) else {
            throw RuntimeError(node, "ConvLSTM\(rank)D's kernel \(convolution.kernelSize) does not fit its input \(shape)")
        }
        let stateWindows = (0..<rank).map { axis in
            Kernels.window(length: inputWindows[axis].output, kernel: convolution.kernelSize[axis], stride: 1, padding: .same,
                           axis: axis, rank: rank)
        }
        inputSources = Self.sources(input: input, output: output, kernel: convolution.kernelSize, strides: convolution.strides,
                                    dilations: convolution.dilations, before: inputWindows.map(\.before))
        stateSources = Self.sources(input: output, output: output, kernel: convolution.kernelSize,
                                    strides: Array(repeating: 1, count: rank), dilations: Array(repeating: 1, count: rank),
                                    before: stateWindows.map(\.before))
    }

    /// For every output position (row-major) and tap (row-major over the kernel), the flattened input
    /// position the tap reads, or -1 where it falls in the padding. Any rank.
    static func sources(input: [Int], output: [Int], kernel: [Int], strides: [Int], dilations: [Int], before: [Int]) -> [Int] {
        let rank = input.count
        let positions = output.reduce(1, *), taps = kernel.reduce(1, *)
        var result = [Int](repeating: -1, count: positions * taps)
        for position in 0..<positions {
            var outputIndex = [Int](repeating: 0, count: rank), rest = position
            for axis in (0..<rank).reversed() { outputIndex[axis] = rest % output[axis]; rest /= output[axis] }
            for tap in 0..<taps {
                var source = 0, inside = true, tapRest = tap
                var tapIndex = [Int](repeating: 0, count: rank)
                for axis in (0..<rank).reversed() { tapIndex[axis] = tapRest % kernel[axis]; tapRest /= kernel[axis] }
                for axis in 0..<rank {
                    let coordinate = outputIndex[axis] * strides[axis] + tapIndex[axis] * dilations[axis] - before[axis]
                    if coordinate < 0 || coordinate >= input[axis] { inside = false; break }
                    source = source * input[axis] + coordinate
                }
                if inside { result[position * taps + tap] = source }
            }
        }
        return result
    }

    /// Calls `body(column, image)` for each patch entry of `count` images of `imageSize` positions
    /// × `depth` values (channels last) that is not padding: `column` starts the entry's `depth`
    /// values in the unfolded rows (row `image * positions + position`, `taps * depth` wide), `image`
    /// starts the input values it reads. `unfold` and its VJP `fold` walk the same entries.
    private func forEachPatchEntry(count: Int, imageSize: Int, depth: Int, sources: [Int], _ body: (_ column: Int, _ image: Int) -> Void) {
        for image in 0..<count {
            for position in 0..<positions {
                let row = (image * positions + position) * taps * depth
                for tap in 0..<taps {
                    let source = sources[position * taps + tap]
                    guard source >= 0 else { continue }
                    body(row + tap * depth, (image * imageSize + source) * depth)
                }
            }
        }
    }

    /// Copies each patch of `images` (`count` images of `imageSize` positions × `depth` values, channels
    /// last) into rows of `taps * depth`; row `image * positions + position`.
    private func unfold(_ images: [Float], count: Int, imageSize: Int, depth: Int, sources: [Int]) -> [Float] {
        var columns = [Float](repeating: 0, count: count * positions * taps * depth)
        images.withUnsafeBufferPointer { from in
            columns.withUnsafeMutableBufferPointer { to in
                forEachPatchEntry(count: count, imageSize: imageSize, depth: depth, sources: sources) { column, image in
                    for c in 0..<depth { to[column + c] = from[image + c] }
                }
            }
        }
        return columns
    }

    /// The VJP of `unfold`: each patch entry's gradient added to the value it was read from.
    private func fold(_ columns: [Float], count: Int, imageSize: Int, depth: Int, sources: [Int]) -> [Float] {
        var images = [Float](repeating: 0, count: count * imageSize * depth)
        columns.withUnsafeBufferPointer { from in
            images.withUnsafeMutableBufferPointer { to in
                forEachPatchEntry(count: count, imageSize: imageSize, depth: depth, sources: sources) { column, image in
                    for c in 0..<depth { to[image + c] += from[column + c] }
                }
            }
        }
        return images
    }

    /// `[batch, time, spatial..., channels]` → the dense cell's input `[rows, time, taps * channels]`.
    func unfoldInput(_ x: RuntimeTensor) -> RuntimeTensor {
        let imageSize = input.reduce(1, *)
        // Unfolded per (sample, step): [batch, time, positions, patch] → [batch, positions, time, patch].
        let perStep = unfold(x.data, count: batch * time, imageSize: imageSize, depth: channels, sources: inputSources)
        let patched = RuntimeTensor(shape: [batch, time, positions, taps * channels], data: perStep)
        return RuntimeTensor(shape: [rows, time, taps * channels], data: Kernels.transpose(patched, [0, 2, 1, 3]).data)
    }

    /// The VJP of `unfoldInput`: `[rows, time, taps * channels]` → `[batch, time, spatial..., channels]`.
    func foldInput(_ columns: [Float]) -> RuntimeTensor {
        let patched = RuntimeTensor(shape: [batch, positions, time, taps * channels], data: columns)
        let perStep = Kernels.transpose(patched, [0, 2, 1, 3]).data
        return RuntimeTensor(shape: [batch, time] + input + [channels],
                             data: fold(perStep, count: batch * time, imageSize: input.reduce(1, *), depth: channels, sources: inputSources))
    }

    /// The state `[rows, units]` → its patches `[rows, taps * units]` for the recurrent product.
    func unfoldState(_ state: [Float]) -> [Float] {
        unfold(state, count: batch, imageSize: positions, depth: units, sources: stateSources)
    }

    /// The VJP of `unfoldState`.
    func foldState(_ columns: [Float]) -> [Float] {
        fold(columns, count: batch, imageSize: positions, depth: units, sources: stateSources)
    }

    /// The dense cell's outputs in Keras's shapes: a sequence `[rows, time, units]` becomes
    /// `[batch, time, spatial'..., units]`, a last output or state `[rows, units]` `[batch, spatial'..., units]`.
    func arrange(_ outputs: [RuntimeTensor]) -> [RuntimeTensor] {
        outputs.map { tensor in
            guard tensor.rank == 3 else { return RuntimeTensor(shape: [batch] + output + [units], data: tensor.data) }
            let ordered = Kernels.transpose(RuntimeTensor(shape: [batch, positions, time, units], data: tensor.data), [0, 2, 1, 3])
            return RuntimeTensor(shape: [batch, time] + output + [units], data: ordered.data)
        }
    }

    /// The inverse of `arrange`, for the outputs' gradients.
    func unarrange(_ gradients: [RuntimeTensor?]) -> [RuntimeTensor?] {
        gradients.map { gradient in
            guard let gradient else { return nil }
            guard gradient.rank == output.count + 3 else { return RuntimeTensor(shape: [rows, units], data: gradient.data) }
            let ordered = Kernels.transpose(RuntimeTensor(shape: [batch, time, positions, units], data: gradient.data), [0, 2, 1, 3])
            return RuntimeTensor(shape: [rows, time, units], data: ordered.data)
        }
    }
}
