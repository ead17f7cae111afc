import CVectorKernels
import Foundation
import ScionIR

/// Depthwise convolutions (one input channel and one filter per group) in a training chain, with
/// channels innermost: on the small planes at the top of a CNN (7x7 in MobileNetV2) a plane's rows
/// are too short to vectorise, while a run over the channels is hundreds long. The input is laid out
/// `[N, H·W, C]` once per forward pass and kept for the backward pass; every loop below runs over a
/// contiguous range of channels. See Kernels+ConvolutionChain.swift for the epilogue.
extension Kernels {
    /// `[N, C, P]` as `[N, P, C]` (or back, with `inverse`), spread over the cores by sample.
    static func channelsInnermost(_ x: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int, inverse: Bool = false) -> [Float] {
        var result = uninitialized(batch * channels * plane)
        result.withUnsafeMutableBufferPointer { buffer in
            let (source, target) = (SharedFloats(base: UnsafeMutablePointer(mutating: x)), SharedFloats(base: buffer.baseAddress!))
            splitOverCores(batch) { range in
                for n in range {
                    // Each sample's matrix transposed in tiles that stay in L1 (the value-by-value loop
                    // wrote every value to another cache line: 3% of a MobileNetV2 training step).
                    let from = source.base + n * channels * plane, to = target.base + n * channels * plane
                    if inverse {
                        scion_transpose_block(from, plane, channels, channels, to, plane)
                    } else {
                        scion_transpose_block(from, channels, plane, plane, to, channels)
                    }
                }
            }
        }
        return result
    }

    /// The depthwise kernel `[C, 1, kh, kw]` as `[kh·kw, C]` (or back, with `inverse`).
    static func tapsOuter(_ kernel: [Float], channels: Int, taps: Int, inverse: Bool = false) -> [Float] {
        var result = uninitialized(kernel.count)
        for c in 0..<channels {
            for tap in 0..<taps {
                if inverse { result[c * taps + tap] = kernel[tap * channels + c] } else { result[tap * channels + c] = kernel[c * taps + tap] }
            }
        }
        return result
    }

    /// The forward pass and its epilogue; returns `y` channels-first and the input channels innermost
    /// (for the backward pass).
    static func depthwiseChainForward(_ x: RuntimeTensor, kernel: [Float], _ g: ConvGeometry, _ e: ChainEpilogue)
        -> (y: RuntimeTensor, input: [Float])
    {
        let (channels, area, plane, taps) = (g.channels, g.height * g.width, g.plane, g.kh * g.kw)
        let input = x.data.withUnsafeBufferPointer { channelsInnermost($0.baseAddress!, batch: g.batch, channels: channels, plane: area) }
        let weights = tapsOuter(kernel, channels: channels, taps: taps)
        // The inference executor's channels-last depthwise rows (CVectorKernels: several sums in
        // vector registers, taps kx-major), then the epilogue over each pixel's channels, then the
        // result laid out channels-first: a Swift loop per tap and a strided epilogue were 5% of a
        // MobileNetV2 training step.
        var z = uninitialized(g.batch * plane * channels)
        input.withUnsafeBufferPointer { source in
            weights.withUnsafeBufferPointer { w in
                z.withUnsafeMutableBufferPointer { product in
                    depthwiseChannelsLast(source.baseAddress!, kernel: w.baseAddress!, into: product.baseAddress!, g)
                }
            }
        }
        z.withUnsafeMutableBufferPointer { product in
            let zs = SharedFloats(base: product.baseAddress!)
            e.scale.withUnsafeBufferPointer { scale in
                e.shift.withUnsafeBufferPointer { shift in
                    let (ss, ts) = (SharedFloats(base: UnsafeMutablePointer(mutating: scale.baseAddress!)),
                                    SharedFloats(base: UnsafeMutablePointer(mutating: shift.baseAddress!)))
                    splitOverCores(g.batch * plane) { pixels in
                        scion_affine_rows(zs.base + pixels.lowerBound * channels, pixels.count, channels, channels, ss.base, ts.base,
                                          e.cap == nil ? 0 : 1, e.cap ?? .infinity)
                    }
                }
            }
        }
        let y = z.withUnsafeBufferPointer { channelsInnermost($0.baseAddress!, batch: g.batch, channels: channels, plane: plane, inverse: true) }
        return (RuntimeTensor(shape: g.outputShape, data: y), input)
    }

    /// The VJP from the saved channels-innermost input: dL/dz laid out channels innermost as it is
    /// computed, then the kernel's and input's gradients accumulated tap by tap, each core owning a
    /// range of channels (so no two write the same cell).
    static func depthwiseChainBackward(input: [Float], kernel: [Float], y: RuntimeTensor, dy: RuntimeTensor, _ g: ConvGeometry,
                                       _ e: ChainEpilogue, inputGradient: Bool, biasGradient: Bool)
        -> (dx: [Float]?, dKernel: [Float], dBias: [Float])
    {
        let (channels, area, plane, taps) = (g.channels, g.height * g.width, g.plane, g.kh * g.kw)
        // dL/dz channels-first, plane by plane in vector loops, then laid out channels innermost:
        // written straight into that layout, each value went to another cache line.
        let gradient = chainGradient(y: y, dy: dy, filters: channels, e).data.withUnsafeBufferPointer {
            channelsInnermost($0.baseAddress!, batch: g.batch, channels: channels, plane: plane)
        }
        let weights = tapsOuter(kernel, channels: channels, taps: taps)
        var dWeights = [Float](repeating: 0, count: kernel.count)
        var dInput = [Float](repeating: 0, count: inputGradient ? input.count : 0)
        var dBias = [Float](repeating: 0, count: biasGradient ? channels : 0)
        input.withUnsafeBufferPointer { source in
            weights.withUnsafeBufferPointer { w in
                gradient.withUnsafeBufferPointer { upstream in
                    dWeights.withUnsafeMutableBufferPointer { dw in
                        dInput.withUnsafeMutableBufferPointer { dxBuffer in
                            dBias.withUnsafeMutableBufferPointer { db in
                                let xs = SharedFloats(base: UnsafeMutablePointer(mutating: source.baseAddress!))
                                let ws = SharedFloats(base: UnsafeMutablePointer(mutating: w.baseAddress!))
                                let gs = SharedFloats(base: UnsafeMutablePointer(mutating: upstream.baseAddress!))
                                let dws = SharedFloats(base: dw.baseAddress!)
                                let dxs = inputGradient ? dxBuffer.baseAddress.map { SharedFloats(base: $0) } : nil
                                let dbs = biasGradient ? db.baseAddress.map { SharedFloats(base: $0) } : nil
                                // Ranges of whole groups of 8 channels, so each core's loops stay vector-aligned.
                                let blocks = (channels + 7) / 8
                                // CVectorKernels' loop (16 lanes where the CPU has them; Swift's build has 4), the same bits.
                                splitOverCores(blocks) { range in
                                    var arguments = scion_depthwise_backward_arguments(
                                        input: UnsafePointer(xs.base), weights: UnsafePointer(ws.base), gradient: UnsafePointer(gs.base),
                                        kernel_gradient: dws.base,
                                        input_gradient: dxs?.base, bias_gradient: dbs?.base, batch: g.batch, height: g.height,
                                        width: g.width, channels: channels, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, dh: g.dh, dw: g.dw,
                                        top: g.top, left: g.left, oh: g.oh, ow: g.ow,
                                        first: range.lowerBound * 8, last: min(range.upperBound * 8, channels))
                                    scion_depthwise_backward(&arguments)
                                }
                            }
                        }
                    }
                }
            }
        }
        let dx = inputGradient
            ? dInput.withUnsafeBufferPointer { channelsInnermost($0.baseAddress!, batch: g.batch, channels: channels, plane: area, inverse: true) }
            : nil
        return (dx, tapsOuter(dWeights, channels: channels, taps: taps, inverse: true), dBias)
    }
}
