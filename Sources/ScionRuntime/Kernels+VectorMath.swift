import Foundation
import ScionIR

/// The exponential eight values at a time, for the activations that call it on every value
/// (EfficientNet's swish after every convolution: `expf` one value at a time was a tenth of its
/// forward pass). Cephes's single-precision method: `x = n·ln2 + r` with `|r| <= ln2/2`, a degree-6
/// polynomial for `e^r` (relative error about 1e-7, as libm's), and `2^n` put into the exponent bits.
extension Kernels {
    @inline(__always)
    static func exponential(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // Beyond these e^x is not a normal float; clamping keeps 2^n's exponent bits valid.
        let clamped = pointwiseMin(pointwiseMax(x, SIMD8(repeating: -87.3)), SIMD8(repeating: 88.3))
        // Adding 1.5·2^23 rounds x·log2(e) to an integer n in the float's low mantissa bits, where it
        // is read back as an integer (a SIMD float-to-int conversion is not vectorised in Swift).
        let shifted = clamped * 1.44269504088896341 + 12_582_912
        let n = shifted - 12_582_912
        // ln 2 in two parts, so n·ln2 is subtracted without losing r's low bits.
        let r = clamped - n * 0.693359375 + n * 2.12194440e-4
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let exponent = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: SIMD8<Float>.self)
    }

    /// `sigmoid(v)`, or `v · sigmoid(v)` (swish) with `timesInput`, over a whole buffer, on both
    /// cores when it is large.
    static func sigmoidLoop(_ values: [Float], timesInput: Bool) -> [Float] {
        [Float](unsafeUninitializedCapacity: values.count) { output, initialized in
            values.withUnsafeBufferPointer { input in
                let count = values.count
                let workers = count >= 1 << 16 ? 2 : 1
                let addresses = (Int(bitPattern: input.baseAddress), Int(bitPattern: output.baseAddress))
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    guard let source = UnsafePointer<Float>(bitPattern: addresses.0),
                          let target = UnsafeMutablePointer<Float>(bitPattern: addresses.1) else { return }
                    // Each worker's share starts on a multiple of 8.
                    let first = (count * worker / workers) / 8 * 8
                    let last = worker == workers - 1 ? count : (count * (worker + 1) / workers) / 8 * 8
                    sigmoidRun(source + first, target + first, count: last - first, timesInput: timesInput)
                }
            }
            initialized = values.count
        }
    }

    @inline(__always)
    static func sigmoidRun(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, count: Int, timesInput: Bool) {
        let whole = count / 8 * 8
        let raw = UnsafeRawPointer(source), out = UnsafeMutableRawPointer(target)
        for i in stride(from: 0, to: whole, by: 8) {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let s = 1 / (1 + exponential(-v))
            out.storeBytes(of: timesInput ? v * s : s, toByteOffset: i * 4, as: SIMD8<Float>.self)
        }
        // The last values, padded to a vector.
        guard whole < count else { return }
        var v = SIMD8<Float>(repeating: 0)
        for j in 0..<(count - whole) { v[j] = source[whole + j] }
        let s = 1 / (1 + exponential(-v))
        let y = timesInput ? v * s : s
        for j in 0..<(count - whole) { target[whole + j] = y[j] }
    }
}
