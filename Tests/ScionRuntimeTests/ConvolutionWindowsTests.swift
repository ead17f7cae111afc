import CVectorKernels
import ScionIR
@testable import ScionRuntime
import XCTest

/// Convolutions over few channels multiplied where their windows lie (`Kernels.convolveWindows`,
/// `scion_gemm_narrow_windows`) against the definition written out value by value: windows inside
/// the image read in place, windows over the padding unfolded, in every position a row's run can
/// start and end (strides 1-3, padding on either side or none, a vertical dilation, images
/// narrower than a window's reach, blocks of pixels that end mid-row), filter counts that end a
/// vector early, both filter forms (packed by the narrow product, and one panel), a bias with a
/// ReLU, and a residual sum.
final class ConvolutionWindowsTests: XCTestCase {
    struct Case {
        var batch = 1, channels = 3, height = 9, width = 11, filters = 16, kh = 3, kw = 3, stride = 1, dilation = 1
        var padding: Padding = .same
    }

    func testWindowsReadInPlaceAreTheConvolution() throws {
        guard Kernels.narrowProductsRun else { throw XCTSkip("no AVX2 here: windows are always unfolded") }
        let cases = [
            Case(),
            Case(batch: 2, height: 40, width: 37, filters: 32, stride: 2),                                     // an RGB stem
            Case(batch: 2, height: 30, width: 31, filters: 64, kh: 7, kw: 7, stride: 2, padding: .explicit([3, 3, 3, 3])),  // ResNet's
            Case(height: 33, width: 29, filters: 5, stride: 3, padding: .valid),
            Case(batch: 3, channels: 1, height: 20, width: 23, filters: 24, kh: 5, kw: 5, padding: .explicit([1, 2, 0, 3])),
            Case(channels: 4, height: 25, width: 26, filters: 48, kh: 3, kw: 2, dilation: 2, padding: .explicit([2, 0, 2, 1])),
            Case(channels: 2, height: 6, width: 3, filters: 17, kh: 5, kw: 5, padding: .same),                  // no window inside
            Case(batch: 2, channels: 8, height: 64, width: 64, filters: 40, kh: 3, kw: 4, stride: 2, padding: .valid),
        ]
        var random = SplitMix64(seed: 2026)
        for c in cases {
            let a = ConvAttributes(filters: c.filters, kernelSize: [c.kh, c.kw], strides: [c.stride, c.stride],
                                   dilations: [c.dilation, 1], padding: c.padding, layout: .channelsFirst)
            let kernelShape = [c.filters, c.channels, c.kh, c.kw], depth = c.channels * c.kh * c.kw
            let g = try Kernels.ConvGeometry(input: [c.batch, c.channels, c.height, c.width], kernelShape: kernelShape, a, node: "windows")
            XCTAssertTrue(Kernels.readsWindowsInPlace(g), "\(c)")
            let input = (0..<(c.batch * c.height * c.width * c.channels)).map { _ in random.uniform(-1, 1) }
            let oihw = (0..<(c.filters * depth)).map { _ in random.uniform(-0.5, 0.5) }
            let bias = (0..<c.filters).map { _ in random.uniform(-0.3, 0.3) }
            let residual = (0..<(c.batch * g.oh * g.ow * c.filters)).map { _ in random.uniform(-1, 1) }
            let expected = reference(input, oihw, bias: bias, g)
            let x = RuntimeTensor(shape: [c.batch, c.height, c.width, c.channels], data: input)

            // The narrow product's own packing, from `[F, kh·kw·C]`.
            var filtersFirst = [Float](repeating: 0, count: oihw.count)
            oihw.withUnsafeBufferPointer { source in
                filtersFirst.withUnsafeMutableBufferPointer {
                    Kernels.filtersFirst(from: source, into: $0, filters: c.filters, channels: c.channels, taps: c.kh * c.kw, scales: nil)
                }
            }
            let relu = ConvolutionEpilogue(bias: bias, activation: .relu(maxValue: nil, negativeSlope: 0, threshold: 0))
            let y = Kernels.convolutionChannelsLast(x, kernel: WeightValues(filtersFirst), order: .filtersFirst, g, epilogue: relu)
            assertClose(y.data, expected.map { max($0, 0) }, "\(c), bias and ReLU")

            // One panel, and a residual sum after a linear epilogue.
            var packed = [Float](repeating: .nan, count: Kernels.panelCount(filters: c.filters, depth: depth))
            oihw.withUnsafeBufferPointer { source in
                packed.withUnsafeMutableBufferPointer {
                    Kernels.panels(source, stored: .oihw, taps: c.kh * c.kw, channels: c.channels, filters: c.filters, scales: nil, into: $0)
                }
            }
            var sum = RuntimeTensor(shape: [c.batch, g.oh, g.ow, c.filters], data: residual)
            Kernels.convolutionChannelsLast(x, kernel: WeightValues(packed), order: .panels, g,
                                            epilogue: ConvolutionEpilogue(bias: bias, activation: .linear),
                                            adding: ResidualAddition(reluCap: nil), into: &sum)
            assertClose(sum.data, zip(expected, residual).map { $0 + $1 }, "\(c), panels with a residual sum")
        }
    }

    /// The convolution of channels-last `input` by `oihw` plus `bias`, summed in Double, channels last.
    private func reference(_ input: [Float], _ oihw: [Float], bias: [Float], _ g: Kernels.ConvGeometry) -> [Float] {
        var output = [Float](repeating: 0, count: g.batch * g.oh * g.ow * g.filters)
        for n in 0..<g.batch {
            for oy in 0..<g.oh {
                for ox in 0..<g.ow {
                    for f in 0..<g.filters {
                        var total = Double(bias[f])
                        for ky in 0..<g.kh {
                            let y = oy * g.sh + ky * g.dh - g.top
                            guard (0..<g.height).contains(y) else { continue }
                            for kx in 0..<g.kw {
                                let x = ox * g.sw + kx * g.dw - g.left
                                guard (0..<g.width).contains(x) else { continue }
                                for c in 0..<g.channels {
                                    let value = input[((n * g.height + y) * g.width + x) * g.channels + c]
                                    total += Double(value) * Double(oihw[((f * g.channels + c) * g.kh + ky) * g.kw + kx])
                                }
                            }
                        }
                        output[((n * g.oh + oy) * g.ow + ox) * g.filters + f] = Float(total)
                    }
                }
            }
        }
        return output
    }

    private func assertClose(_ got: [Float], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        let scale = want.map(abs).max() ?? 0
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5 * max(scale, 1), "\(what): off by \(worst)", file: file, line: line)
    }
}
