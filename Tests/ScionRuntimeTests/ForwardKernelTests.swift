import ScionIR
@testable import ScionRuntime
import XCTest

/// The forward pass's shortcuts against the plain definitions they replace: the blocked broadcasts
/// against numpy's broadcasting rule written out index by index, and the convolution epilogue
/// against bias then ReLU as separate steps. (Whole models are compared with Keras and onnxruntime
/// by FixtureRunTests and Tests/Interop/check_run.py.)
final class ForwardKernelTests: XCTestCase {
    /// numpy broadcasting of `a` and `b` to `shape`, one output index at a time.
    func reference(_ a: RuntimeTensor, _ b: RuntimeTensor, _ shape: [Int], _ f: (Float, Float) -> Float) -> [Float] {
        let total = shape.reduce(1, *)
        func offset(_ flat: Int, _ operand: [Int]) -> Int {
            let padded = Array(repeating: 1, count: shape.count - operand.count) + operand
            var rest = flat, result = 0, stride = 1
            for axis in shape.indices.reversed() {
                let index = rest % shape[axis]
                rest /= shape[axis]
                if padded[axis] != 1 { result += index * stride }
                stride *= padded[axis]
            }
            return result
        }
        return (0..<total).map { f(a.data[offset($0, a.shape)], b.data[offset($0, b.shape)]) }
    }

    func tensor(_ shape: [Int], seed: Float) -> RuntimeTensor {
        let count = shape.reduce(1, *)
        return RuntimeTensor(shape: shape, data: (0..<count).map { Float($0) * 0.37 + seed })
    }

    func testBlockedBroadcastsMatchTheRule() throws {
        let cases: [([Int], [Int])] = [
            ([2, 3, 4, 5], [2, 3, 1, 1]),  // squeeze-and-excitation scale, channels-first
            ([2, 3, 4, 5], [5]),           // per-channel constant, channels-last
            ([2, 3, 4, 5], [4, 5]),
            ([2, 3, 4, 5], [1, 3, 1, 1]),  // neither pattern: the general walk
            ([2, 3, 4, 5], [1]),           // a scalar
            ([2, 3, 4, 5], []),
            ([3, 1], [3, 4]),              // both broadcast: the general walk
        ]
        for (big, small) in cases {
            let a = tensor(big, seed: 1), b = tensor(small, seed: -2)
            for (x, y) in [(a, b), (b, a)] {
                let shape = try XCTUnwrap(Broadcasting.shape([x.shape, y.shape]))
                let result = try Kernels.broadcast(x, y, node: "t", -)
                XCTAssertEqual(result.shape, shape, "\(x.shape) - \(y.shape)")
                XCTAssertEqual(result.data, reference(x, y, shape, -), "\(x.shape) - \(y.shape)")
            }
        }
    }

    func testEpilogueIsBiasThenCappedReLU() {
        let planes = 6, plane = 7, bias: [Float] = [0.5, -3, 10]
        let values = (0..<(planes * plane)).map { Float($0 % 11) - 5 }
        for cap in [nil, Float.infinity, 6] as [Float?] {
            var fused = values
            Kernels.epilogue(&fused, planes: planes, plane: plane, bias: bias, reluCap: cap)
            let expected = values.indices.map { i -> Float in
                let biased = values[i] + bias[(i / plane) % bias.count]
                return cap.map { min(max(biased, 0), $0) } ?? biased
            }
            XCTAssertEqual(fused, expected, "cap \(String(describing: cap))")
        }
    }

    /// A per-channel affine with the channels last, against the value-by-value definition: few
    /// channels are widened to rows of several pixels when the pixels divide evenly (3 channels: 16
    /// pixels a row), and stay one pixel a row when they do not.
    func testChannelsLastAffineWithFewChannelsIsTheDefinition() {
        for (channels, pixels) in [(3, 64), (3, 50), (5, 48), (12, 8), (1, 33), (16, 5), (24, 6), (48, 4), (70, 3)] {
            let scale = (0..<channels).map { Float($0) * 0.25 - 1 }, shift = (0..<channels).map { Float($0 % 4) - 1.5 }
            let values = (0..<(pixels * channels)).map { Float(($0 * 7) % 13) - 6 }
            for cap in [nil, 6] as [Float?] {
                var x = RuntimeTensor(shape: [1, pixels, 1, channels], data: values)
                Kernels.perAxisInPlace(&x, axis: 3, scale: scale, shift: shift, reluCap: cap)
                let expected = values.indices.map { i -> Float in
                    let y = values[i] * scale[i % channels] + shift[i % channels]
                    return cap.map { min(max(y, 0), $0) } ?? y
                }
                XCTAssertEqual(x.shape, [1, pixels, 1, channels])
                XCTAssertEqual(x.data, expected, "\(channels) channels, \(pixels) pixels, cap \(String(describing: cap))")
            }
        }
    }
}
