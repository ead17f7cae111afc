import CVectorKernels
import Foundation
import ScionIR

/// Training kernels for a convolution with what follows it folded in (`Trainer.ConvolutionChain`):
/// `y = relu(s · (W ⋆ x) + t)` per filter, `s` and `t` a frozen BatchNormalization's constant scale
/// and shift (the convolution's bias folded into `t`), the ReLU optional and capped or not. One pass
/// writes `y` where three ops wrote three tensors; the backward pass reads the ReLU's mask from `y`
/// (`0 < y < cap` exactly where `0 < s·z + t < cap`) and scales by `s` as it lays out dL/dz, so the
/// kernel's gradient is that of the unscaled kernel: `dW = (s · dy) ⋆ x`, as the separate ops give.
///
/// Two shapes of convolution get kernels of their own, because the profile of MobileNetV2's top
/// layers (docs/benchmarks.md, issue #18) showed their generic paths costing more than their
/// arithmetic: 1x1 ("pointwise") convolutions run as one GEMM over the batch side by side, the input
/// laid out once and kept for the kernel's gradient; depthwise ones (one filter per channel) run with
/// channels innermost, so every loop runs over a contiguous run of channels (vectorised) instead of
/// 7-wide rows of a plane. Channels-first tensors come in and go out, as every other op expects.
extension Kernels {
    /// What follows the convolution, per filter.
    struct ChainEpilogue: Sendable {
        /// `s`: the BatchNormalization's `gamma / sqrt(variance + epsilon)`, ones without one.
        var scale: [Float]
        /// `t`: `beta - mean · s`, plus `s ·` the convolution's bias.
        var shift: [Float]
        /// The ReLU's cap (`.infinity` uncapped); nil without a ReLU.
        var cap: Float?
    }

    /// A buffer shared with the cores' workers, each of which writes only its own part.
    struct SharedFloats: @unchecked Sendable {
        let base: UnsafeMutablePointer<Float>
    }

    /// Runs `body` on `count` items split into one contiguous range per core.
    static func splitOverCores(_ count: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let workers = min(CorePool.cores, count)
        guard workers > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        CorePool.shared.run(count: workers) { worker in
            body((count * worker / workers)..<(count * (worker + 1) / workers))
        }
    }

    /// An uninitialised buffer every element of which the caller writes (no zero-filling pass).
    /// Large buffers are backed by huge pages where the system allows (`Allocator.preferHugePages`).
    static func uninitialized(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count >= Allocator.hugePageWorthy, let base = buffer.baseAddress {
                Allocator.preferHugePages(UnsafeMutableRawBufferPointer(start: base, count: count * MemoryLayout<Float>.stride))
            }
            initialized = count
        }
    }

    /// `y[i] = relu(s · z[i] + t)` over one filter's run of `count` contiguous values.
    @inline(__always)
    static func chainOutput(_ z: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                            scale: Float, shift: Float, cap: Float?) {
        // Each case a loop of its own, so that it vectorises.
        if let cap {
            for i in 0..<count { y[i] = min(max(z[i] * scale + shift, 0), cap) }
        } else {
            for i in 0..<count { y[i] = z[i] * scale + shift }
        }
    }

    /// `g[i] = dy[i] · s` where the ReLU passed `y[i]`, 0 where it did not: dL/dz for one run.
    @inline(__always)
    static func chainGradient(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>,
                              count: Int, scale: Float, cap: Float?) {
        scion_chain_gradient_rows(y, dy, g, count, scale, cap == nil ? 0 : 1, cap ?? .infinity)
    }

    /// The epilogue in place on a channels-first result of the generic convolution kernel.
    static func applyChainEpilogue(_ z: inout RuntimeTensor, filters: Int, _ e: ChainEpilogue) {
        let plane = z.count / max(z.shape[0] * filters, 1), planes = z.shape[0] * filters
        z.data.withUnsafeMutableBufferPointer { buffer in
            let values = SharedFloats(base: buffer.baseAddress!)
            splitOverCores(planes) { range in
                for p in range {
                    let f = p % filters, run = values.base + p * plane
                    chainOutput(run, run, count: plane, scale: e.scale[f], shift: e.shift[f], cap: e.cap)
                }
            }
        }
    }

    /// dL/dz, channels-first, from the chain's output `y` and its gradient `dy`.
    static func chainGradient(y: RuntimeTensor, dy: RuntimeTensor, filters: Int, _ e: ChainEpilogue) -> RuntimeTensor {
        let plane = y.count / max(y.shape[0] * filters, 1), planes = y.shape[0] * filters
        var g = uninitialized(y.count)
        y.data.withUnsafeBufferPointer { output in
            dy.data.withUnsafeBufferPointer { upstream in
                g.withUnsafeMutableBufferPointer { gradient in
                    let (yBase, dyBase) = (SharedFloats(base: UnsafeMutablePointer(mutating: output.baseAddress!)),
                                           SharedFloats(base: UnsafeMutablePointer(mutating: upstream.baseAddress!)))
                    let target = SharedFloats(base: gradient.baseAddress!)
                    splitOverCores(planes) { range in
                        for p in range {
                            chainGradient(yBase.base + p * plane, dyBase.base + p * plane, target.base + p * plane,
                                          count: plane, scale: e.scale[p % filters], cap: e.cap)
                        }
                    }
                }
            }
        }
        return RuntimeTensor(shape: y.shape, data: g)
    }

    /// Sums of dL/dz per filter (the bias's gradient), from a `[filters, run]` matrix.
    static func rowSums(_ matrix: [Float], rows: Int) -> [Float] {
        let run = matrix.count / max(rows, 1)
        return matrix.withUnsafeBufferPointer { m in
            (0..<rows).map { r in
                var sum: Float = 0
                for i in (r * run)..<((r + 1) * run) { sum += m[i] }
                return sum
            }
        }
    }
}

// MARK: - 1x1 convolutions: the batch side by side

extension Kernels {
    /// `x` `[N, C, spatial...]` laid out as `[C, N·P]` (P the spatial size): one GEMM's operand.
    static func sideBySide(_ x: UnsafePointer<Float>, batch: Int, rows: Int, run: Int) -> [Float] {
        var columns = uninitialized(rows * batch * run)
        columns.withUnsafeMutableBufferPointer { buffer in
            let (source, target) = (SharedFloats(base: UnsafeMutablePointer(mutating: x)), SharedFloats(base: buffer.baseAddress!))
            splitOverCores(rows) { range in
                for r in range {
                    for n in 0..<batch {
                        (target.base + (r * batch + n) * run).update(from: source.base + (n * rows + r) * run, count: run)
                    }
                }
            }
        }
        return columns
    }

    /// A 1x1, stride-1, unpadded, one-group convolution and its epilogue: `columns` (the input side
    /// by side, kept for the kernel's gradient) times the `[F, C]` kernel in one GEMM, the product
    /// written back channels-first through the epilogue.
    static func pointwiseChainForward(_ x: RuntimeTensor, kernel: [Float], filters: Int, _ e: ChainEpilogue)
        -> (y: RuntimeTensor, columns: [Float])
    {
        let (batch, channels) = (x.shape[0], x.shape[1]), run = x.count / max(batch * channels, 1), span = batch * run
        let columns = x.data.withUnsafeBufferPointer { sideBySide($0.baseAddress!, batch: batch, rows: channels, run: run) }
        var z = uninitialized(filters * span)
        var y = uninitialized(batch * filters * run)
        kernel.withUnsafeBufferPointer { w in
            columns.withUnsafeBufferPointer { c in
                z.withUnsafeMutableBufferPointer { product in
                    BLAS.splitGemm(m: filters, n: span, k: channels, a: w.baseAddress!, b: c.baseAddress!, c: product.baseAddress!)
                }
            }
        }
        z.withUnsafeBufferPointer { product in
            y.withUnsafeMutableBufferPointer { output in
                let (source, target) = (SharedFloats(base: UnsafeMutablePointer(mutating: product.baseAddress!)),
                                        SharedFloats(base: output.baseAddress!))
                splitOverCores(filters) { range in
                    for f in range {
                        for n in 0..<batch {
                            chainOutput(source.base + f * span + n * run, target.base + (n * filters + f) * run, count: run,
                                        scale: e.scale[f], shift: e.shift[f], cap: e.cap)
                        }
                    }
                }
            }
        }
        return (RuntimeTensor(shape: [batch, filters] + x.shape.dropFirst(2), data: y), columns)
    }

    /// Its VJP: dL/dz laid out `[F, N·P]` as it is computed from `y` and `dy`, then `dW = dz · columnsᵀ`
    /// and `dcolumns = Wᵀ · dz` (two GEMMs reading their operands in place), dx channels-first.
    static func pointwiseChainBackward(columns: [Float], kernel: [Float], y: RuntimeTensor, dy: RuntimeTensor, channels: Int,
                                       _ e: ChainEpilogue, inputGradient: Bool, biasGradient: Bool)
        -> (dx: [Float]?, dKernel: [Float], dBias: [Float])
    {
        let (batch, filters) = (y.shape[0], y.shape[1]), run = y.count / max(batch * filters, 1), span = batch * run
        var g = uninitialized(filters * span)
        y.data.withUnsafeBufferPointer { output in
            dy.data.withUnsafeBufferPointer { upstream in
                g.withUnsafeMutableBufferPointer { gradient in
                    let (yBase, dyBase) = (SharedFloats(base: UnsafeMutablePointer(mutating: output.baseAddress!)),
                                           SharedFloats(base: UnsafeMutablePointer(mutating: upstream.baseAddress!)))
                    let target = SharedFloats(base: gradient.baseAddress!)
                    splitOverCores(filters) { range in
                        for f in range {
                            for n in 0..<batch {
                                let at = (n * filters + f) * run
                                chainGradient(yBase.base + at, dyBase.base + at, target.base + f * span + n * run,
                                              count: run, scale: e.scale[f], cap: e.cap)
                            }
                        }
                    }
                }
            }
        }
        var dKernel = uninitialized(filters * channels)
        var dColumns = inputGradient ? uninitialized(channels * span) : []
        g.withUnsafeBufferPointer { gradient in
            columns.withUnsafeBufferPointer { c in
                dKernel.withUnsafeMutableBufferPointer { dw in
                    BLAS.splitGemm(m: filters, n: channels, k: span, a: gradient.baseAddress!, b: c.baseAddress!, transposeB: true,
                                   c: dw.baseAddress!)
                }
            }
            guard inputGradient else { return }
            kernel.withUnsafeBufferPointer { w in
                dColumns.withUnsafeMutableBufferPointer { d in
                    BLAS.splitGemm(m: channels, n: span, k: filters, a: w.baseAddress!, transposeA: true, b: gradient.baseAddress!,
                                   c: d.baseAddress!)
                }
            }
        }
        var dx: [Float]?
        if inputGradient {
            var result = uninitialized(batch * channels * run)
            dColumns.withUnsafeBufferPointer { d in
                result.withUnsafeMutableBufferPointer { buffer in
                    let (source, target) = (SharedFloats(base: UnsafeMutablePointer(mutating: d.baseAddress!)),
                                            SharedFloats(base: buffer.baseAddress!))
                    splitOverCores(channels) { range in
                        for c in range {
                            for n in 0..<batch {
                                (target.base + (n * channels + c) * run).update(from: source.base + (c * batch + n) * run, count: run)
                            }
                        }
                    }
                }
            }
            dx = result
        }
        return (dx, dKernel, biasGradient ? rowSums(g, rows: filters) : [])
    }
}
