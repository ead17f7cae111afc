import Foundation
import ScionIR

/// Backward kernels (vector-Jacobian products), channels-first like the forward ones: given dL/dy,
/// the gradients with respect to the inputs and weights. Each mirrors its forward kernel's geometry
/// (`ConvGeometry`, `PoolGeometry`), so padding, strides and dilations mean the same thing.
extension Kernels {
    /// Convolution backward: dL/dkernel (always), dL/dx (when `inputGradient`), dL/dbias (per filter).
    /// Grouped convolutions unfold each group (im2col) and run two GEMMs: `dW += dz · colsᵀ` and
    /// `dcols = Wᵀ · dz`, folded back onto dx (col2im). Depthwise ones use direct loops.
    static func convolutionBackward(_ x: RuntimeTensor, kernel: [Float], kernelShape: [Int], dz: RuntimeTensor, attributes a: ConvAttributes,
                                    inputGradient: Bool, node: String) throws -> (dx: RuntimeTensor?, dKernel: [Float], dBias: [Float]) {
        let g = try ConvGeometry(input: x.shape, kernelShape: kernelShape, a, node: node)
        guard dz.shape == g.outputShape else { throw RuntimeError(node, "gradient \(dz.shape) does not match output \(g.outputShape)") }
        var dKernel = [Float](repeating: 0, count: kernel.count)
        var dx = [Float](repeating: 0, count: inputGradient ? x.count : 0)
        var dBias = [Float](repeating: 0, count: g.filters)
        for n in 0..<g.batch {
            for f in 0..<g.filters {
                let start = (n * g.filters + f) * g.plane
                dBias[f] += dz.data[start..<(start + g.plane)].reduce(0, +)
            }
        }
        if g.isDepthwise {
            depthwiseBackward(x.data, kernel, dz.data, &dKernel, &dx, g, inputGradient: inputGradient)
            return (inputGradient ? RuntimeTensor(shape: x.shape, data: dx) : nil, dKernel, dBias)
        }
        // Samples side by side: one GEMM per group for a chunk of samples (unfolded columns up to
        // about 16 MB) rather than two per sample, which for small images would be all overhead.
        let (patch, plane, fpg) = (g.patch, g.plane, g.filtersPerGroup)
        let chunk = max(1, min(g.batch, (1 << 22) / max(patch * plane, 1)))
        var columns = [Float](repeating: 0, count: patch * chunk * plane)
        var dColumns = [Float](repeating: 0, count: inputGradient ? patch * chunk * plane : 0)
        var dzGroup = [Float](repeating: 0, count: fpg * chunk * plane)
        for first in stride(from: 0, to: g.batch, by: chunk) {
            let count = min(chunk, g.batch - first), span = count * plane
            for group in 0..<g.groups {
                for s in 0..<count {
                    let n = first + s
                    im2col(x.data, offset: (n * g.channels + group * g.perGroup) * g.height * g.width, into: &columns, channels: g.perGroup,
                           height: g.height, width: g.width, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, dh: g.dh, dw: g.dw,
                           top: g.top, left: g.left, firstRow: 0, rowCount: g.oh, ow: g.ow, rowStride: span, columnOffset: s * plane)
                    for f in 0..<fpg {
                        let source = (n * g.filters + group * fpg + f) * plane
                        dzGroup.replaceSubrange((f * span + s * plane)..<(f * span + (s + 1) * plane), with: dz.data[source..<(source + plane)])
                    }
                }
                dzGroup.withUnsafeBufferPointer { gradient in
                    columns.withUnsafeBufferPointer { c in
                        dKernel.withUnsafeMutableBufferPointer { dw in
                            BLAS.gemm(m: fpg, n: patch, k: span, a: gradient.baseAddress!, b: c.baseAddress!, transposeB: true,
                                      c: dw.baseAddress! + group * fpg * patch, accumulate: true)
                        }
                    }
                    if inputGradient {
                        kernel.withUnsafeBufferPointer { w in
                            dColumns.withUnsafeMutableBufferPointer { d in
                                BLAS.splitGemm(m: patch, n: span, k: fpg, a: w.baseAddress! + group * fpg * patch, transposeA: true,
                                               b: gradient.baseAddress!, c: d.baseAddress!)
                            }
                        }
                    }
                }
                guard inputGradient else { continue }
                for s in 0..<count {
                    col2im(dColumns, into: &dx, offset: ((first + s) * g.channels + group * g.perGroup) * g.height * g.width, g,
                           rowStride: span, columnOffset: s * plane)
                }
            }
        }
        return (inputGradient ? RuntimeTensor(shape: x.shape, data: dx) : nil, dKernel, dBias)
    }

    /// Adds unfolded columns (one group's `[perGroup·kh·kw, oh·ow]`, rows `rowStride` apart from
    /// `columnOffset` on) back onto the input cells they were read from: the adjoint of `im2col`.
    static func col2im(_ columns: [Float], into dx: inout [Float], offset: Int, _ g: ConvGeometry, rowStride: Int, columnOffset: Int) {
        var row = 0
        for c in 0..<g.perGroup {
            let channel = offset + c * g.height * g.width
            for ky in 0..<g.kh {
                for kx in 0..<g.kw {
                    for oy in 0..<g.oh {
                        let y = oy * g.sh + ky * g.dh - g.top
                        let line = row * rowStride + columnOffset + oy * g.ow
                        guard y >= 0 && y < g.height else { continue }
                        for ox in 0..<g.ow {
                            let xx = ox * g.sw + kx * g.dw - g.left
                            if xx >= 0 && xx < g.width { dx[channel + y * g.width + xx] += columns[line + ox] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    /// Depthwise backward by direct loops; input channels are independent (each owns its filters
    /// and its input cells), so they are spread over the cores.
    static func depthwiseBackward(_ x: [Float], _ kernel: [Float], _ dz: [Float], _ dKernel: inout [Float], _ dx: inout [Float],
                                  _ g: ConvGeometry, inputGradient: Bool) {
        let multiplier = g.filtersPerGroup, area = g.height * g.width, taps = g.kh * g.kw
        let workers = min(CorePool.cores, g.channels)
        x.withUnsafeBufferPointer { input in
            kernel.withUnsafeBufferPointer { k in
                dz.withUnsafeBufferPointer { gradient in
                    dKernel.withUnsafeMutableBufferPointer { dk in
                        dx.withUnsafeMutableBufferPointer { d in
                            let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: k.baseAddress), Int(bitPattern: gradient.baseAddress),
                                             Int(bitPattern: dk.baseAddress), Int(bitPattern: d.baseAddress))
                            CorePool.shared.run(count: workers) { worker in
                                guard let source = UnsafePointer<Float>(bitPattern: addresses.0),
                                      let weights = UnsafePointer<Float>(bitPattern: addresses.1),
                                      let upstream = UnsafePointer<Float>(bitPattern: addresses.2),
                                      let kernelGradient = UnsafeMutablePointer<Float>(bitPattern: addresses.3) else { return }
                                let inputGradientBase = UnsafeMutablePointer<Float>(bitPattern: addresses.4)
                                for c in (g.channels * worker / workers)..<(g.channels * (worker + 1) / workers) {
                                    for n in 0..<g.batch {
                                        let image = source + (n * g.channels + c) * area
                                        for m in 0..<multiplier {
                                            let filter = c * multiplier + m
                                            let plane = upstream + (n * g.filters + filter) * g.plane
                                            for ky in 0..<g.kh {
                                                for kx in 0..<g.kw {
                                                    let tap = filter * taps + ky * g.kw + kx
                                                    let weight = weights[tap]
                                                    var sum: Float = 0
                                                    for oy in 0..<g.oh {
                                                        let y = oy * g.sh + ky * g.dh - g.top
                                                        guard y >= 0 && y < g.height else { continue }
                                                        // The columns whose tap lands inside the row, found once per row
                                                        // rather than tested per element (Kernels+GradientLoops.swift).
                                                        let offset = kx * g.dw - g.left
                                                        let columns = validColumns(offset: offset, stride: g.sw, outputs: g.ow, width: g.width)
                                                        guard !columns.isEmpty else { continue }
                                                        let row = plane + oy * g.ow, pixels = image + y * g.width + offset
                                                        for ox in columns { sum += row[ox] * pixels[ox * g.sw] }
                                                        if inputGradient, let base = inputGradientBase {
                                                            let cells = base + (n * g.channels + c) * area + y * g.width + offset
                                                            for ox in columns { cells[ox * g.sw] += row[ox] * weight }
                                                        }
                                                    }
                                                    kernelGradient[tap] += sum
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
    }

    /// Pooling backward: a max window's gradient goes to its first largest cell (the one the forward
    /// scan kept), an average window's is shared by the cells it divided by.
    static func poolBackward(_ x: RuntimeTensor, _ a: PoolAttributes, dy: RuntimeTensor, node: String) throws -> RuntimeTensor {
        let g = try PoolGeometry(input: x.shape, a, node: node)
        var dx = [Float](repeating: 0, count: x.count)
        for plane in 0..<(g.batch * g.channels) {
            let source = plane * g.height * g.width, target = plane * g.oh * g.ow
            for oy in 0..<g.oh {
                let y0 = oy * g.sh - g.rows.before
                let ys = max(y0, 0)..<min(y0 + g.kh, g.height)
                for ox in 0..<g.ow {
                    let x0 = ox * g.sw - g.cols.before
                    let xs = max(x0, 0)..<min(x0 + g.kw, g.width)
                    let upstream = dy.data[target + oy * g.ow + ox]
                    if a.kind == .max {
                        var best = -Float.infinity, at = -1
                        for y in ys { for xx in xs where x.data[source + y * g.width + xx] > best || at < 0 {
                            best = x.data[source + y * g.width + xx]; at = source + y * g.width + xx
                        } }
                        if at >= 0 { dx[at] += upstream }
                    } else {
                        let share = upstream / Float(g.divisor(a, y0: y0, x0: x0, inside: ys.count * xs.count))
                        for y in ys { for xx in xs { dx[source + y * g.width + xx] += share } }
                    }
                }
            }
        }
        return RuntimeTensor(shape: x.shape, data: dx)
    }

    static func globalPoolBackward(_ x: RuntimeTensor, _ a: GlobalPoolAttributes, dy: RuntimeTensor) -> RuntimeTensor {
        let area = x.shape.dropFirst(2).reduce(1, *)
        var dx = [Float](repeating: 0, count: x.count)
        for plane in 0..<(x.shape[0] * x.shape[1]) {
            let range = (plane * area)..<((plane + 1) * area)
            if a.kind == .max {
                if let at = range.max(by: { x.data[$0] < x.data[$1] || (x.data[$0] == x.data[$1] && $0 > $1) }) { dx[at] = dy.data[plane] }
            } else {
                let share = dy.data[plane] / Float(max(area, 1))
                for index in range { dx[index] = share }
            }
        }
        return RuntimeTensor(shape: x.shape, data: dx)
    }

    /// Sums a broadcast result's gradient back to an operand's shape (numpy broadcasting undone):
    /// a ReduceSum over the axes the operand lacks or had as 1.
    static func sumToShape(_ full: RuntimeTensor, _ shape: [Int]) throws -> RuntimeTensor {
        if full.shape == shape { return full }
        let padded = Array(repeating: 1, count: full.rank - shape.count) + shape
        let axes = full.shape.indices.filter { padded[$0] == 1 && full.shape[$0] != 1 }
        var summed = try reduce(full, ReduceAttributes(kind: .sum, axes: axes, keepDimensions: true), node: "gradient")
        summed.shape = shape
        return summed
    }

    /// The backward of a matrix product `z = x · W` with `x` `[rows, inner]`, `W` `[inner, columns]`:
    /// `dx = dz · Wᵀ` and `dW = xᵀ · dz`. Dense, EinsumDense (after moving its axes) and attention's
    /// projections are all this product.
    static func matrixProductBackward(x: [Float], weights: [Float], dz: [Float], rows: Int, inner: Int, columns: Int)
        -> (dx: [Float], dWeights: [Float])
    {
        var dx = [Float](repeating: 0, count: rows * inner)
        var dWeights = [Float](repeating: 0, count: inner * columns)
        x.withUnsafeBufferPointer { input in
            dz.withUnsafeBufferPointer { g in
                weights.withUnsafeBufferPointer { w in
                    dx.withUnsafeMutableBufferPointer { d in
                        dWeights.withUnsafeMutableBufferPointer { dw in
                            guard let input = input.baseAddress, let g = g.baseAddress, let w = w.baseAddress,
                                  let d = d.baseAddress, let dw = dw.baseAddress else { return }
                            BLAS.gemm(m: rows, n: inner, k: columns, a: g, b: w, transposeB: true, c: d)
                            BLAS.gemm(m: inner, n: columns, k: rows, a: input, transposeA: true, b: g, c: dw)
                        }
                    }
                }
            }
        }
        return (dx, dWeights)
    }

    /// A bias's gradient: `dz` summed over every axis but the last (`columns` wide).
    static func columnSums(_ dz: [Float], columns: Int) -> [Float] {
        var sums = [Float](repeating: 0, count: columns)
        for (index, value) in dz.enumerated() { sums[index % columns] += value }
        return sums
    }
}
