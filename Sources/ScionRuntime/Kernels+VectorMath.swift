import CVectorKernels
import Foundation
import ScionIR

/// The exponential of swish and sigmoid, stated in Swift: Cephes's single-precision method, `x =
/// n·ln2 + r` with `|r| <= ln2/2`, a degree-6 polynomial for `e^r` (relative error under 1e-7, as
/// libm's) in fused multiply-adds, and `2^n` put into the exponent bits. The loops that run it on
/// every value are C (CVectorKernels' `exponential`, for the CPU's full vector width); this is the statement they
/// follow operation for operation, and the tests hold them to it bit for bit
/// (`InferenceFusionTests`) and it to libm (`ChannelsLastPlanTests`).
extension Kernels {
    @inline(__always)
    static func exponential(_ x: Float) -> Float {
        // Beyond these e^x is not a normal float; clamping keeps 2^n's exponent bits valid.
        let clamped = min(max(x, -87.3), 88.3)
        // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the float's low mantissa bits.
        // Each step one fused multiply-add (`addingProduct`: one rounding), as the C loops.
        let shifted = Float(12_582_912).addingProduct(clamped, 1.44269504088896341)
        let n = shifted - 12_582_912
        // ln 2 in two parts, so n·ln2 is subtracted without losing r's low bits.
        let r = clamped.addingProduct(n, -0.693359375).addingProduct(n, 2.12194440e-4)
        var p: Float = 1.9875691500e-4
        p = Float(1.3981999507e-3).addingProduct(p, r)
        p = Float(8.3334519073e-3).addingProduct(p, r)
        p = Float(4.1665795894e-2).addingProduct(p, r)
        p = Float(1.6666665459e-1).addingProduct(p, r)
        p = Float(5.0000001201e-1).addingProduct(p, r)
        let y = r.addingProduct(p * r, r) + 1
        return y * Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
    }

    /// erf of every value, in place (`SCION_ACTIVATION_ERF`: within 1.5e-7), on both cores when many.
    static func errorFunctionInPlace(_ values: inout [Float]) {
        values.withUnsafeMutableBufferPointer { buffer in
            let address = Int(bitPattern: buffer.baseAddress)
            overCoresWhenLarge(buffer.count, valuesEach: 1) { range in
                guard let base = UnsafeMutablePointer<Float>(bitPattern: address) else { return }
                scion_activate_rows(base + range.lowerBound, 1, range.count, range.count, nil, SCION_ACTIVATION_ERF)
            }
        }
    }
}

extension Kernels {
    /// The index of the first NaN or infinity in `values`, nil when every value is finite. One pass
    /// 16 lanes wide first (`x · 0` is 0 for every finite `x` and NaN otherwise, and a NaN stays in
    /// a sum): a closure per value took a tenth of a batch-1 stem convolution's pass.
    static func firstNonFinite(_ values: [Float]) -> Int? {
        let clean = values.withUnsafeBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return true }
            var lanes = SIMD16<Float>(), index = 0
            while index + 16 <= buffer.count {
                lanes += UnsafeRawPointer(base + index).loadUnaligned(as: SIMD16<Float>.self) * 0
                index += 16
            }
            var tail: Float = 0
            while index < buffer.count { tail += base[index] * 0; index += 1 }
            return (lanes.sum() + tail).isFinite
        }
        return clean ? nil : values.firstIndex { !$0.isFinite }
    }
}
