import Foundation
import ScionIR

/// The exponential as a plain function of one value that the compiler vectorises in a loop, for the
/// activations that call it on every value (EfficientNet's swish after every convolution: `expf`,
/// one call per value, was a tenth of its forward pass; this runs about ten times faster). Cephes's
/// single-precision method: `x = n·ln2 + r` with `|r| <= ln2/2`, a degree-6 polynomial for `e^r`
/// (relative error under 1e-7, as libm's), and `2^n` put into the exponent bits. Written on scalars
/// with `min`/`max`, not with `SIMD8`: the standard library's generic SIMD `pointwiseMin` and
/// float-to-integer conversions were not inlined across modules and cost more than the arithmetic.
extension Kernels {
    @inline(__always)
    static func exponential(_ x: Float) -> Float {
        // Beyond these e^x is not a normal float; clamping keeps 2^n's exponent bits valid.
        let clamped = min(max(x, -87.3), 88.3)
        // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the float's low mantissa bits.
        let shifted = clamped * 1.44269504088896341 + 12_582_912
        let n = shifted - 12_582_912
        // ln 2 in two parts, so n·ln2 is subtracted without losing r's low bits.
        let r = clamped - n * 0.693359375 + n * 2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        return y * Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
    }

    /// `sigmoid(v)`, or `v · sigmoid(v)` (swish) with `timesInput`, over a whole buffer, on both
    /// cores when it is large.
    static func sigmoidLoop(_ values: [Float], timesInput: Bool) -> [Float] {
        [Float](unsafeUninitializedCapacity: values.count) { output, initialized in
            values.withUnsafeBufferPointer { input in
                if let source = input.baseAddress, let target = output.baseAddress {
                    sigmoid(source, into: target, count: values.count, timesInput: timesInput)
                }
            }
            initialized = values.count
        }
    }

    /// `source` and `target` must not overlap: written in place, the loop is not vectorised (the
    /// compiler's overlap check sends it to the scalar loop).
    static func sigmoid(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int, timesInput: Bool) {
        // Small buffers on this thread: handing them out costs more than the loop.
        guard count >= 1 << 16 else { return sigmoidRun(source, target, 0..<count, timesInput: timesInput) }
        let addresses = (Int(bitPattern: source), Int(bitPattern: target))
        splitOverCores(count) { range in
            guard let input = UnsafePointer<Float>(bitPattern: addresses.0),
                  let output = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
            sigmoidRun(input, output, range, timesInput: timesInput)
        }
    }

    @inline(__always)
    static func sigmoidRun(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ range: Range<Int>, timesInput: Bool) {
        if timesInput {
            for i in range { let v = input[i]; output[i] = v / (1 + exponential(-v)) }
        } else {
            for i in range { output[i] = 1 / (1 + exponential(-input[i])) }
        }
    }
}
