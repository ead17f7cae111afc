import Foundation
import ScionIR

/// The compute kernels, channels-first (`[N, C, spatial...]`), on plain float arrays.
enum Kernels {
    /// Window geometry along one spatial axis: output length and the padding before it.
    struct Window {
        var output: Int
        var before: Int
    }

    /// Output length and leading padding for an input of `length`, window `kernel` (already dilated),
    /// `stride`; ONNX's explicit pads are `pads[axis]` before and `pads[rank + axis]` after. `same`
    /// pads as TensorFlow and ONNX's SAME_UPPER do (the odd cell at the end).
    static func window(length: Int, kernel: Int, stride: Int, padding: Padding, axis: Int, rank: Int,
                       ceilMode: Bool = false) -> Window {
        switch padding {
        case .same:
            let output = (length + stride - 1) / stride
            return Window(output: output, before: max((output - 1) * stride + kernel - length, 0) / 2)
        case .explicit(let pads):
            let before = pads.count == 2 * rank ? pads[axis] : 0
            let after = pads.count == 2 * rank ? pads[rank + axis] : 0
            let span = length + before + after - kernel
            var output = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
            // A window may not start in the end padding (ONNX, PyTorch).
            if ceilMode, (output - 1) * stride >= length + before { output -= 1 }
            return Window(output: max(output, 0), before: before)
        case .causal:
            return Window(output: (length + stride - 1) / stride, before: kernel - 1)
        case .valid:
            return Window(output: max((length - kernel) / stride + 1, 0), before: 0)
        }
    }

    /// A convolution's sizes, rank 1 running as height 1: input, kernel, strides, dilations, the
    /// padding before each axis, output; shared by the forward and backward kernels.
    struct ConvGeometry {
        var batch, channels, height, width, kh, kw, sh, sw, dh, dw, top, left, oh, ow: Int
        var filters, perGroup, groups: Int
        var oneD: Bool
        var filtersPerGroup: Int { filters / groups }
        var patch: Int { perGroup * kh * kw }
        var plane: Int { oh * ow }
        var outputShape: [Int] { oneD ? [batch, filters, ow] : [batch, filters, oh, ow] }
        var isDepthwise: Bool { perGroup == 1 && groups > 1 }

        /// A matrix product `[rows, depth] · [depth, columns]` as a 1x1 convolution of `rows` one-pixel images.
        init(pointwiseRows rows: Int, depth: Int, columns: Int) {
            (batch, channels, height, width, kh, kw, sh, sw, dh, dw) = (rows, depth, 1, 1, 1, 1, 1, 1, 1, 1)
            (top, left, oh, ow) = (0, 0, 1, 1)
            (filters, perGroup, groups, oneD) = (columns, depth, 1, false)
        }

        init(input shape: [Int], kernelShape: [Int], _ a: ConvAttributes, node: String) throws {
            guard a.rank == 1 || a.rank == 2, shape.count == a.rank + 2, kernelShape.count == a.rank + 2 else {
                throw RuntimeError(node, "convolution of rank \(a.rank) on \(shape) is not supported by the executor yet (ranks 1 and 2 are)")
            }
            oneD = a.rank == 1
            (batch, channels) = (shape[0], shape[1])
            height = oneD ? 1 : shape[2]
            width = shape[a.rank + 1]
            kh = oneD ? 1 : a.kernelSize[0]
            kw = a.kernelSize[a.rank - 1]
            (sh, sw) = oneD ? (1, a.strides[0]) : (a.strides[0], a.strides[1])
            (dh, dw) = oneD ? (1, a.dilations[0]) : (a.dilations[0], a.dilations[1])
            (filters, perGroup, groups) = (kernelShape[0], kernelShape[1], a.groups)
            guard a.groups > 0, perGroup * a.groups == channels, filters % a.groups == 0 else {
                throw RuntimeError(node, "kernel \(kernelShape) with \(a.groups) groups does not fit input \(shape)")
            }
            let rows = window(length: height, kernel: (kh - 1) * dh + 1, stride: sh, padding: oneD ? .valid : a.padding, axis: 0, rank: 2)
            let cols = window(length: width, kernel: (kw - 1) * dw + 1, stride: sw, padding: a.padding, axis: a.rank - 1, rank: a.rank)
            (oh, ow, top, left) = (rows.output, cols.output, rows.before, cols.before)
        }
    }

    /// Convolution of rank 1 or 2 (rank 1 runs as height 1), grouped, through im2col and GEMM; a
    /// depthwise convolution (one input channel per group) runs as direct loops instead.
    /// `reluCap`, when given, applies a ReLU capped there (`.infinity`: uncapped) in the same pass
    /// over the output that adds the bias (the epilogue), instead of a second pass and a copy.
    static func convolution(_ x: RuntimeTensor, kernel: [Float], kernelShape: [Int], bias: [Float]?, attributes a: ConvAttributes,
                            node: String, samplesSideBySide: Bool = false, reluCap: Float? = nil) throws -> RuntimeTensor {
        let g = try ConvGeometry(input: x.shape, kernelShape: kernelShape, a, node: node)
        let (batch, channels, height, width) = (g.batch, g.channels, g.height, g.width)
        let (kh, kw, sh, sw, dh, dw) = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw)
        let (oh, ow, filters, perGroup) = (g.oh, g.ow, g.filters, g.perGroup)
        let rows = Window(output: oh, before: g.top), cols = Window(output: ow, before: g.left)
        let outShape = g.outputShape
        // Every path below writes every output value (GEMMs with beta 0, depthwise planes cleared
        // first), so the buffer is not zero-filled beforehand.
        var output = [Float](unsafeUninitializedCapacity: batch * filters * oh * ow) { _, count in count = batch * filters * oh * ow }
        let filtersPerGroup = filters / a.groups
        let patch = perGroup * kh * kw
        let plane = oh * ow
        if perGroup == 1 && a.groups > 1 {
            depthwise(x.data, kernel, &output, batch: batch, channels: channels, multiplier: filtersPerGroup,
                      height: height, width: width, kh: kh, kw: kw, sh: sh, sw: sw, dh: dh, dw: dw,
                      top: rows.before, left: cols.before, oh: oh, ow: ow)
        } else if samplesSideBySide && batch > 1 && plane < 1024 {
            smallImageConvolution(x, kernel: kernel, into: &output, g)
        } else {
            let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && rows.before == 0 && cols.before == 0 && oh == height && ow == width
            let blockRows = max(1, min(oh, (1 << 19) / max(patch * ow, 1)))
            var columns = [Float](repeating: 0, count: direct ? 0 : patch * blockRows * ow)
            for n in 0..<batch {
                for group in 0..<a.groups {
                    let inputOffset = (n * channels + group * perGroup) * height * width
                    let outputOffset = (n * filters + group * filtersPerGroup) * plane
                    kernel.withUnsafeBufferPointer { k in
                        output.withUnsafeMutableBufferPointer { out in
                            let weights = k.baseAddress! + group * filtersPerGroup * patch
                            if direct {
                                x.data.withUnsafeBufferPointer { input in
                                    BLAS.splitGemm(m: filtersPerGroup, n: plane, k: patch, a: weights, b: input.baseAddress! + inputOffset,
                                                   c: out.baseAddress! + outputOffset)
                                }
                            } else {
                                // Output rows in blocks whose unfolded columns stay in cache (about 2 MB)
                                // between being written and being multiplied.
                                for first in stride(from: 0, to: oh, by: blockRows) {
                                    let count = min(blockRows, oh - first)
                                    im2col(x.data, offset: inputOffset, into: &columns, channels: perGroup, height: height, width: width,
                                           kh: kh, kw: kw, sh: sh, sw: sw, dh: dh, dw: dw, top: rows.before, left: cols.before,
                                           firstRow: first, rowCount: count, ow: ow)
                                    columns.withUnsafeBufferPointer { c in
                                        BLAS.splitGemm(m: filtersPerGroup, n: count * ow, k: patch, a: weights, b: c.baseAddress!,
                                                       c: out.baseAddress! + outputOffset + first * ow, ldc: plane)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        epilogue(&output, planes: batch * filters, plane: plane, bias: bias, reluCap: reluCap)
        return RuntimeTensor(shape: outShape, data: output)
    }

    /// Training on small images (outputs under 1024 cells: the top of a CNN, tiny inputs): samples
    /// side by side, so one GEMM per group covers a chunk of the batch (unfolded columns up to about
    /// 16 MB) instead of one thin GEMM per sample. Measured on MobileNetV2: its top 20 layers train
    /// faster this way (26.6 s against 30.4 s for bench/finetune_bench.py --unfreeze-top 20), while
    /// inference over its base was slower (9.1 s against 8.1 s for the 256 images), the per-sample
    /// path needing no unfolding for 1x1; so inference keeps that one.
    static func smallImageConvolution(_ x: RuntimeTensor, kernel: [Float], into output: inout [Float], _ g: ConvGeometry) {
        let (patch, plane, fpg) = (g.patch, g.plane, g.filtersPerGroup)
        let chunk = max(1, min(g.batch, (1 << 22) / max(patch * plane, 1)))
        var columns = [Float](repeating: 0, count: patch * chunk * plane)
        var result = [Float](repeating: 0, count: fpg * chunk * plane)
        for first in stride(from: 0, to: g.batch, by: chunk) {
            let count = min(chunk, g.batch - first), span = count * plane
            for group in 0..<g.groups {
                for s in 0..<count {
                    im2col(x.data, offset: ((first + s) * g.channels + group * g.perGroup) * g.height * g.width, into: &columns,
                           channels: g.perGroup, height: g.height, width: g.width, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw,
                           dh: g.dh, dw: g.dw, top: g.top, left: g.left, firstRow: 0, rowCount: g.oh, ow: g.ow,
                           rowStride: span, columnOffset: s * plane)
                }
                kernel.withUnsafeBufferPointer { k in
                    columns.withUnsafeBufferPointer { c in
                        result.withUnsafeMutableBufferPointer { r in
                            BLAS.splitGemm(m: fpg, n: span, k: patch, a: k.baseAddress! + group * fpg * patch, b: c.baseAddress!, c: r.baseAddress!)
                        }
                    }
                }
                for s in 0..<count {
                    for f in 0..<fpg {
                        let target = ((first + s) * g.filters + group * fpg + f) * plane
                        output.replaceSubrange(target..<(target + plane), with: result[(f * span + s * plane)..<(f * span + (s + 1) * plane)])
                    }
                }
            }
        }
    }

    /// Unfolds the windows of one sample's channels into columns: row `(c, y, x)` of the kernel,
    /// column `(oy, ox)` of the output; padding reads as zeros. By default the rows are
    /// `rowCount · ow` long; `rowStride` and `columnOffset` place them in a wider matrix instead
    /// (several samples side by side, for one GEMM over all of them).
    static func im2col(_ data: [Float], offset: Int, into columns: inout [Float], channels: Int, height: Int, width: Int,
                       kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int, top: Int, left: Int,
                       firstRow: Int, rowCount: Int, ow: Int, rowStride: Int? = nil, columnOffset: Int = 0) {
        let stride = rowStride ?? rowCount * ow
        // Channels are independent: spread them over the cores (the GEMM after it is threaded by
        // OpenBLAS; unfolding alone would otherwise leave all but one core idle).
        let workers = min(CorePool.cores, channels)
        data.withUnsafeBufferPointer { source in
            columns.withUnsafeMutableBufferPointer { target in
                // Addresses cross into the workers as integers: each writes its own channels' rows only.
                let inputAddress = Int(bitPattern: source.baseAddress), outputAddress = Int(bitPattern: target.baseAddress)
                CorePool.shared.run(count: workers) { worker in
                    guard let input = UnsafePointer<Float>(bitPattern: inputAddress),
                          let output = UnsafeMutablePointer<Float>(bitPattern: outputAddress) else { return }
                    let first = channels * worker / workers, last = channels * (worker + 1) / workers
                    for c in first..<last {
                        let channel = input + offset + c * height * width
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                var line = output + ((c * kh + ky) * kw + kx) * stride + columnOffset
                                for oy in firstRow..<(firstRow + rowCount) {
                                    let y = oy * sh + ky * dh - top
                                    if y < 0 || y >= height {
                                        line.update(repeating: 0, count: ow)
                                    } else if sw == 1 {
                                        // Stride 1: the valid part of the row is one contiguous copy.
                                        let shift = kx * dw - left
                                        let low = min(max(-shift, 0), ow), high = max(min(width - shift, ow), low)
                                        if low > 0 { line.update(repeating: 0, count: low) }
                                        (line + low).update(from: channel + y * width + low + shift, count: high - low)
                                        if high < ow { (line + high).update(repeating: 0, count: ow - high) }
                                    } else {
                                        let row = channel + y * width
                                        for ox in 0..<ow {
                                            let xx = ox * sw + kx * dw - left
                                            line[ox] = xx >= 0 && xx < width ? row[xx] : 0
                                        }
                                    }
                                    line += ow
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Depthwise convolution: output channel `c · multiplier + m` is input channel `c` with its own
    /// filter; a GEMM per channel would be too small to pay. Each output plane accumulates one kernel
    /// tap at a time over the run of columns that tap can reach (a contiguous, vectorisable loop for
    /// stride 1), and planes are spread over the cores.
    static func depthwise(_ x: [Float], _ kernel: [Float], _ output: inout [Float], batch: Int, channels: Int, multiplier: Int,
                          height: Int, width: Int, kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int,
                          top: Int, left: Int, oh: Int, ow: Int) {
        let planes = batch * channels * multiplier
        let workers = min(CorePool.cores, planes)
        x.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { k in
                output.withUnsafeMutableBufferPointer { out in
                    let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: k.baseAddress), Int(bitPattern: out.baseAddress))
                    CorePool.shared.run(count: workers) { worker in
                        guard let source = UnsafePointer<Float>(bitPattern: addresses.0),
                              let weights = UnsafePointer<Float>(bitPattern: addresses.1),
                              let target = UnsafeMutablePointer<Float>(bitPattern: addresses.2) else { return }
                        for plane in (planes * worker / workers)..<(planes * (worker + 1) / workers) {
                            let n = plane / (channels * multiplier), filter = plane % (channels * multiplier)
                            let c = filter / multiplier
                            let image = source + (n * channels + c) * height * width
                            let result = target + plane * oh * ow
                            result.update(repeating: 0, count: oh * ow)
                            for kx in 0..<kw {
                                // Columns whose tap falls inside the row: 0 <= ox·sw + kx·dw - left < width.
                                let shift = kx * dw - left
                                let low = min(max((-shift + sw - 1) / sw, 0), ow)
                                let high = max(min((width - 1 - shift) / sw + 1, ow), low)
                                if shift >= width { continue }
                                for ky in 0..<kh {
                                    let weight = weights[(filter * kh + ky) * kw + kx]
                                    for oy in 0..<oh {
                                        let y = oy * sh + ky * dh - top
                                        if y < 0 || y >= height { continue }
                                        let row = image + y * width + shift, line = result + oy * ow
                                        if sw == 1 {
                                            for ox in low..<high { line[ox] += weight * row[ox] }
                                        } else {
                                            for ox in low..<high { line[ox] += weight * row[ox * sw] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
