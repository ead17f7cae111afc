import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// The trainer's depthwise backward loop (CVectorKernels' `scion_depthwise_backward`, under
/// `Kernels.depthwiseChainBackward`, with the ReLU's mask and the frozen BatchNormalization's scale
/// before it, `scion_chain_gradient_transposed`) against the definition in double precision, on
/// strided, padded and dilated windows: the kernel's, the input's and the bias's gradients.
final class DepthwiseBackwardTests: XCTestCase {
    func testGradientsMatchTheDefinition() throws {
        var random = SplitMix64(seed: 17)
        for (stride, dilation, pad, cap) in [(1, 1, 1, nil), (2, 1, 1, Float(0.5)), (1, 2, 2, .infinity), (2, 2, 0, nil)] as [(Int, Int, Int, Float?)] {
            let (n, c, h, w) = (2, 20, 9, 8)
            let attributes = ConvAttributes(filters: c, kernelSize: [3, 3], strides: [stride, stride], dilations: [dilation, dilation],
                                            padding: .explicit([pad, pad, pad, pad]), groups: c, layout: .channelsFirst)
            let g = try Kernels.ConvGeometry(input: [n, c, h, w], kernelShape: [c, 1, 3, 3], attributes, node: "dw")
            let x = (0..<(n * c * h * w)).map { _ in random.uniform(-1, 1) }
            let kernel = (0..<(c * 9)).map { _ in random.uniform(-1, 1) }
            let dy = RuntimeTensor(shape: [n, c, g.oh, g.ow], data: (0..<(n * c * g.oh * g.ow)).map { _ in random.uniform(-1, 1) })
            // The chain's output (its ReLU's mask, with a cap) and its frozen BatchNormalization's scale per channel.
            let y = RuntimeTensor(shape: dy.shape, data: (0..<dy.count).map { _ in random.uniform(-1, 1) })
            let scale = (0..<c).map { _ in random.uniform(0.5, 2) }
            let input = x.withUnsafeBufferPointer { Kernels.channelsInnermost($0.baseAddress!, batch: n, channels: c, plane: h * w) }
            let epilogue = Kernels.ChainEpilogue(scale: scale, shift: Array(repeating: 0, count: c), cap: cap)
            let result = Kernels.depthwiseChainBackward(input: input, kernel: kernel, y: y, dy: dy, g, epilogue,
                                                        inputGradient: true, biasGradient: true)
            var dKernel = [Double](repeating: 0, count: c * 9), dInput = [Double](repeating: 0, count: x.count)
            var dBias = [Double](repeating: 0, count: c)
            for b in 0..<n {
                for channel in 0..<c {
                    for oy in 0..<g.oh {
                        for ox in 0..<g.ow {
                            let at = ((b * c + channel) * g.oh + oy) * g.ow + ox
                            let passes = cap.map { y.data[at] > 0 && y.data[at] < $0 } ?? true
                            let d = passes ? Double(dy.data[at]) * Double(scale[channel]) : 0
                            dBias[channel] += d
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let iy = oy * g.sh + ky * g.dh - g.top, ix = ox * g.sw + kx * g.dw - g.left
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    let source = ((b * c + channel) * h + iy) * w + ix, tap = channel * 9 + ky * 3 + kx
                                    dKernel[tap] += d * Double(x[source])
                                    dInput[source] += d * Double(kernel[tap])
                                }
                            }
                        }
                    }
                }
            }
            let dx = try XCTUnwrap(result.dx)
            for (name, got, expected) in [("kernel", result.dKernel, dKernel), ("input", dx, dInput), ("bias", result.dBias, dBias)] {
                XCTAssertEqual(got.count, expected.count, name)
                let worst = zip(got, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
                XCTAssertLessThanOrEqual(worst, 2e-5, "\(name) gradient, stride \(stride), dilation \(dilation), pad \(pad), cap \(String(describing: cap))")
            }
        }
    }
}
